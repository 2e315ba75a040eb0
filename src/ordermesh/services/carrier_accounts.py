"""Carrier accounts: a tenant's contracts with GHN, GHTK and Ninja Van, and the adapters built from them.

Credentials are given in each carrier's own terms, sealed with the application's secret box before they
are stored, and never returned. Each account gets a webhook id (its name in the webhook URL) and, for
the carriers that sign nothing, a secret the carrier sends back in that URL.
"""

from __future__ import annotations

import re
import secrets as token_source
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from ordermesh.adapters.carriers import ADAPTERS, KINDS, CarrierAdapter, adapter_for
from ordermesh.adapters.carriers.base import CarrierAddress
from ordermesh.adapters.store.tables import Location
from ordermesh.adapters.store.tables_carriers import CarrierAccount
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import Conflict, InvalidInput, NotFound
from ordermesh.services.unit_of_work import Caller, UnitOfWork

# The carriers' webhook query parameter holding the account's secret (GHN: ours; GHTK: its own ``hash``).
SECRET_PARAMETER = {"ghn": "token", "ghtk": "hash"}
ADDRESS_FIELDS = ("name", "phone", "line1", "ward", "district", "province", "country", "postal_code")
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TIMEOUT_SECONDS = 10.0


class Box(Protocol):
    def seal(self, values: Mapping[str, str]) -> str: ...

    def open(self, token: str) -> dict[str, str]: ...


class Http:
    """The one outbound client carriers are called with (connection reuse); tests swap ``client``."""

    client = httpx.Client(timeout=TIMEOUT_SECONDS)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    kind: str
    base_url: str
    credentials: Mapping[str, str] | None  # None on an update: keep the stored ones
    service_levels: Sequence[str] = ()
    pickup_addresses: Mapping[str, Mapping[str, Any]] | None = None
    active: bool = True


def check_credentials(kind: str, credentials: Mapping[str, str]) -> dict[str, str]:
    names = ADAPTERS[kind].credential_names
    missing = [name for name in names if not str(credentials.get(name, "")).strip()]
    unknown = sorted(set(credentials) - set(names))
    if missing or unknown:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unknown {', '.join(unknown)}"] if unknown else []
        )
        raise InvalidInput(
            f"{kind} credentials are {', '.join(names)}: " + "; ".join(parts),
            code="invalid_credentials",
            field="credentials",
        )
    if kind == "ghn" and not str(credentials["shop_id"]).strip().isdigit():
        raise InvalidInput("ghn shop_id is a number", code="invalid_credentials", field="credentials.shop_id")
    return {name: str(credentials[name]).strip() for name in names}


def check_address(where: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where} must be an object", field=where)
    problems = [name for name in ("name", "phone", "line1", "province") if not str(raw.get(name) or "").strip()]
    if problems:
        raise InvalidInput(f"{where} needs {', '.join(problems)}", field=where)
    address: dict[str, Any] = {name: str(raw[name]) for name in ADDRESS_FIELDS if raw.get(name) not in (None, "")}
    if raw.get("district_id") is not None:
        try:
            address["district_id"] = int(raw["district_id"])
        except (TypeError, ValueError):
            raise InvalidInput(f"{where}.district_id must be a number", field=f"{where}.district_id") from None
    if raw.get("ward_code"):
        address["ward_code"] = str(raw["ward_code"])
    return address


def put_account(uow: UnitOfWork, caller: Caller, box: Box, code: str, spec: AccountSpec) -> tuple[dict[str, Any], bool]:
    """Create or replace the account ``code``. Returns its public view and whether it was created."""
    if not CODE.match(code):
        raise InvalidInput("carrier account codes are 1-64 letters, digits, '.', '_' or '-'", field="code")
    if spec.kind not in ADAPTERS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="kind")
    url = urlsplit(spec.base_url)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise InvalidInput("base_url must be an http(s) URL", field="base_url")
    levels = [str(level).strip() for level in spec.service_levels if str(level).strip()]
    credentials = check_credentials(spec.kind, spec.credentials) if spec.credentials is not None else None
    with uow:
        session = uow.session
        account = session.scalar(
            select(CarrierAccount).where(CarrierAccount.tenant_id == caller.tenant_id, CarrierAccount.code == code)
        )
        if account is not None and account.kind != spec.kind:
            raise Conflict(f"carrier account {code!r} is a {account.kind} account", code="carrier_kind_fixed")
        if account is None and credentials is None:
            raise InvalidInput("a new carrier account needs credentials", field="credentials")
        pickups: dict[str, Any] = {}
        if spec.pickup_addresses is not None:
            known = set(
                session.scalars(
                    select(Location.code).where(
                        Location.tenant_id == caller.tenant_id, Location.code.in_(list(spec.pickup_addresses))
                    )
                )
            )
            for location, raw in spec.pickup_addresses.items():
                if location not in known:
                    raise InvalidInput(f"unknown location {location!r}", field=f"pickup_addresses.{location}")
                pickups[location] = check_address(f"pickup_addresses.{location}", raw)
        now = utcnow()
        created = account is None
        if account is None:
            account = CarrierAccount(
                tenant_id=caller.tenant_id,
                code=code,
                kind=spec.kind,
                webhook_id=token_source.token_hex(12),
                webhook_secret=token_source.token_urlsafe(24),
                created_at=now,
                pickup_addresses={},
            )
            session.add(account)
        account.base_url = spec.base_url.rstrip("/")
        if credentials is not None:
            account.credentials = box.seal(credentials)
        account.service_levels = levels
        if spec.pickup_addresses is not None:
            account.pickup_addresses = pickups
        account.active = spec.active
        account.updated_at = now
        session.flush()
        view = public(account)
        uow.commit()
        return view, created


def public(account: CarrierAccount, *, reveal_webhook_secret: bool = True) -> dict[str, Any]:
    """The account as the API shows it: never its credentials; the webhook URL's secret only to admins."""
    return {
        "code": account.code,
        "kind": account.kind,
        "base_url": account.base_url,
        "credentials": sorted(ADAPTERS[account.kind].credential_names),  # names only, never values
        "service_levels": list(account.service_levels),
        "pickup_addresses": dict(account.pickup_addresses),
        "active": account.active,
        "webhook_url": webhook_path(account) if reveal_webhook_secret else webhook_path(account).split("?")[0],
        "created_at": account.created_at,
        "updated_at": account.updated_at,
    }


def webhook_path(account: CarrierAccount) -> str:
    """Where the carrier must send this account's tracking webhooks (register it with the carrier)."""
    path = f"/webhooks/{account.kind}/{account.webhook_id}"
    parameter = SECRET_PARAMETER.get(account.kind)
    return f"{path}?{parameter}={account.webhook_secret}" if parameter else path


def _reveals(caller: Caller) -> bool:
    return caller.role == "admin"


def list_accounts(uow: UnitOfWork, caller: Caller) -> list[dict[str, Any]]:
    with uow:
        accounts = uow.session.scalars(
            select(CarrierAccount).where(CarrierAccount.tenant_id == caller.tenant_id).order_by(CarrierAccount.code)
        ).all()
        return [public(account, reveal_webhook_secret=_reveals(caller)) for account in accounts]


def load(uow: UnitOfWork, caller: Caller, code: str) -> CarrierAccount:
    account = uow.session.scalar(
        select(CarrierAccount).where(CarrierAccount.tenant_id == caller.tenant_id, CarrierAccount.code == code)
    )
    if account is None:
        raise NotFound(f"no carrier account {code!r}", code="carrier_account_not_found")
    return account


def get_account(uow: UnitOfWork, caller: Caller, code: str) -> dict[str, Any]:
    with uow:
        return public(load(uow, caller, code), reveal_webhook_secret=_reveals(caller))


def adapter(account: CarrierAccount, box: Box, client: httpx.Client | None = None) -> CarrierAdapter:
    return adapter_for(account.kind, account.base_url, box.open(account.credentials), client or Http.client)


def pickup_address(account: CarrierAccount, location_code: str) -> CarrierAddress | None:
    raw = (account.pickup_addresses or {}).get(location_code)
    return carrier_address(raw) if raw else None


def carrier_address(raw: Mapping[str, Any]) -> CarrierAddress:
    return CarrierAddress(
        name=str(raw.get("name") or ""),
        phone=str(raw.get("phone") or ""),
        line1=str(raw.get("line1") or ""),
        ward=raw.get("ward"),
        district=raw.get("district"),
        province=raw.get("province"),
        country=str(raw.get("country") or "VN"),
        postal_code=raw.get("postal_code"),
        district_id=raw.get("district_id"),
        ward_code=raw.get("ward_code"),
    )
