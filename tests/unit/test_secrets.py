"""Credentials at rest: sealed, opened only with the right key, rotatable, and a clear error without a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ordermesh.adapters.secrets import ConfigurationError, SecretBox, SecretError
from ordermesh.bootstrap import bootstrap
from ordermesh.config import Settings


def test_sealed_credentials_open_with_the_key_and_hide_their_values() -> None:
    box = SecretBox(SecretBox.generate_key())
    token = box.seal({"partner_key": "shpk-very-secret", "shop_id": "600000"})
    assert "shpk-very-secret" not in token
    assert box.open(token) == {"partner_key": "shpk-very-secret", "shop_id": "600000"}


def test_another_key_or_a_tampered_token_cannot_open_them() -> None:
    box = SecretBox(SecretBox.generate_key())
    token = box.seal({"access_token": "abc"})
    with pytest.raises(SecretError):
        SecretBox(SecretBox.generate_key()).open(token)
    with pytest.raises(SecretError):
        box.open(token[:-4] + "AAAA")


def test_a_rotated_key_still_opens_what_the_old_one_sealed() -> None:
    old, new = SecretBox.generate_key(), SecretBox.generate_key()
    token = SecretBox(old).seal({"token": "t"})
    rotated = SecretBox(f"{new},{old}")
    assert rotated.open(token) == {"token": "t"}
    assert SecretBox(new).open(rotated.seal({"token": "t"})) == {"token": "t"}


def test_a_malformed_key_or_none_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="32 bytes"):
        SecretBox("not-a-key")
    app = bootstrap(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    try:
        with pytest.raises(ConfigurationError, match="ORDERMESH_SECRET_KEY is not set"):
            _ = app.secrets
    finally:
        app.close()
