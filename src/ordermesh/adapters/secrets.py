"""Credentials at rest: sealed with a key that lives only in the environment (``ORDERMESH_SECRET_KEY``).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) gives authenticated encryption, so a tampered or
foreign token fails to open instead of yielding garbage. ``ORDERMESH_SECRET_KEY`` may list several keys separated by
commas: the first seals, all of them open, which is how a key is rotated without downtime.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class ConfigurationError(RuntimeError):
    """The deployment is missing something it needs; the message says what to set."""


class SecretError(ValueError):
    """A sealed value could not be opened with any configured key."""


class SecretBox:
    def __init__(self, key: str) -> None:
        keys = [part.strip() for part in key.split(",") if part.strip()]
        if not keys:
            raise ConfigurationError("ORDERMESH_SECRET_KEY is empty")
        try:
            self._fernet = MultiFernet([Fernet(part.encode()) for part in keys])
        except ValueError as error:
            raise ConfigurationError(
                "ORDERMESH_SECRET_KEY must be url-safe base64 of 32 bytes (make one with `ordermesh secret-key`)"
            ) from error

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, values: Mapping[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(dict(values), sort_keys=True).encode()).decode()

    def open(self, token: str) -> dict[str, str]:
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken as error:
            raise SecretError("sealed credentials cannot be opened with the configured ORDERMESH_SECRET_KEY") from error
        if not isinstance(data, dict):
            raise SecretError("sealed credentials are not a mapping")
        return {str(k): str(v) for k, v in data.items()}
