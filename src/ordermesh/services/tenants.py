"""Tenants and API keys. A key is shown once and stored as its SHA-256 digest (keys are 256-bit
random tokens, so a fast hash is enough; see docs/adr/0003-api-keys.md)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ordermesh.adapters.store.tables import ApiKey, Channel, Tenant
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.access import Role
from ordermesh.domain.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from ordermesh.services.unit_of_work import Caller, UnitOfWork

KEY_PREFIX = "om_"
DIRECT_CHANNEL = "direct"


@dataclass(frozen=True, slots=True)
class NewTenant:
    tenant_id: int
    name: str
    api_key: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> tuple[str, str]:
    secret = secrets.token_urlsafe(32)
    key = f"{KEY_PREFIX}{secret}"
    return key, key[: len(KEY_PREFIX) + 6]


def create_tenant(uow: UnitOfWork, name: str) -> NewTenant:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("tenant name must be 1 to 200 characters", field="name")
    with uow:
        if uow.session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
            raise Conflict(f"tenant {name!r} already exists", code="tenant_exists", name=name)
        tenant = Tenant(name=name)
        uow.session.add(tenant)
        uow.session.flush()
        uow.session.add(Channel(tenant_id=tenant.id, code=DIRECT_CHANNEL, kind="direct", name="Direct (API)"))
        key, prefix = _new_key()
        uow.session.add(ApiKey(tenant_id=tenant.id, role=Role.ADMIN.value, prefix=prefix, key_hash=hash_key(key)))
        try:
            uow.commit()
        except IntegrityError:
            raise Conflict(f"tenant {name!r} already exists", code="tenant_exists", name=name) from None
        return NewTenant(tenant.id, tenant.name, key)


def create_api_key(uow: UnitOfWork, tenant: str, role: str) -> str:
    try:
        role_value = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}; one of {roles}", field="role") from None
    with uow:
        tenant_row = _tenant(uow, tenant)
        key, prefix = _new_key()
        uow.session.add(ApiKey(tenant_id=tenant_row.id, role=role_value.value, prefix=prefix, key_hash=hash_key(key)))
        uow.commit()
        return key


def authenticate(uow: UnitOfWork, key: str) -> Caller:
    with uow:
        row = uow.session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None)))
        if row is None:
            raise Unauthenticated("unknown or revoked API key")
        return Caller(tenant_id=row.tenant_id, role=row.role, actor=f"key:{row.prefix}")


def revoke_api_key(uow: UnitOfWork, tenant: str, prefix: str) -> int:
    """Revoke every live key of ``tenant`` whose shown prefix is ``prefix``; returns how many. A
    process that authenticated the key in the last 30 seconds may still accept it until its cache
    entry expires (see api/deps.py)."""
    with uow:
        tenant_row = _tenant(uow, tenant)
        keys = uow.session.scalars(
            select(ApiKey).where(
                ApiKey.tenant_id == tenant_row.id, ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None)
            )
        ).all()
        if not keys:
            raise NotFound(f"no live key {prefix!r} for tenant {tenant!r}", code="api_key_not_found")
        for key in keys:
            key.revoked_at = utcnow()
        uow.commit()
        return len(keys)


def list_api_keys(uow: UnitOfWork, tenant: str) -> list[dict[str, object]]:
    with uow:
        tenant_row = _tenant(uow, tenant)
        return [
            {
                "prefix": key.prefix,
                "role": key.role,
                "created_at": key.created_at.isoformat(),
                "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
            }
            for key in uow.session.scalars(select(ApiKey).where(ApiKey.tenant_id == tenant_row.id).order_by(ApiKey.id))
        ]


def _tenant(uow: UnitOfWork, tenant: str) -> Tenant:
    row = uow.session.scalar(select(Tenant).where(Tenant.name == tenant))
    if row is None and tenant.isdigit():
        row = uow.session.get(Tenant, int(tenant))
    if row is None:
        raise NotFound(f"no tenant {tenant!r}", code="tenant_not_found")
    return row
