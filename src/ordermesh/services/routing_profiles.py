"""Routing profiles: validated, versioned (every version kept), restorable, effective at once.

The allocator reads the newest version of each profile at the start of every batch, so a change
applies to the next allocation without a restart. An order uses the profile that lists one of its
tags (the most specific choice; the first in name order if several do); otherwise the profile that
lists its channel; otherwise the tenant's ``default`` profile; otherwise the built-in defaults.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.tables import RoutingProfileVersion
from ordermesh.domain.errors import Conflict, InvalidInput, NotFound
from ordermesh.domain.routing import DEFAULT_PROFILE, RoutingProfile, profile_from_dict
from ordermesh.services.unit_of_work import Caller, UnitOfWork

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
DEFAULT_NAME = "default"


def put_profile(
    uow: UnitOfWork,
    caller: Caller,
    name: str,
    definition: dict[str, Any],
    *,
    channels: Sequence[str] = (),
    tags: Sequence[str] = (),
    note: str | None = None,
) -> dict[str, Any]:
    """Validate ``definition`` and store it as the newest version of ``name``."""
    if not NAME.match(name):
        raise InvalidInput("profile name must be 1-64 letters, digits or . _ -", field="name")
    if set(definition) & {"name", "version"}:
        raise InvalidInput("name and version are set by ordermesh, not in the definition", field="definition")
    profile_from_dict({**definition, "name": name, "version": 1})  # raises InvalidInput listing every problem
    with uow:
        session = uow.session
        taken = {
            channel: row.name
            for row in session.scalars(_in_force(caller.tenant_id))
            if row.name != name
            for channel in row.channels
        }
        clashes = sorted(channel for channel in channels if channel in taken)
        if clashes:
            raise Conflict(
                f"channel(s) {', '.join(clashes)} already use profile {taken[clashes[0]]!r}",
                code="channel_has_profile",
                channels=clashes,
            )
        version = (
            session.scalar(
                select(func.max(RoutingProfileVersion.version)).where(
                    RoutingProfileVersion.tenant_id == caller.tenant_id, RoutingProfileVersion.name == name
                )
            )
            or 0
        ) + 1
        row = RoutingProfileVersion(
            tenant_id=caller.tenant_id,
            name=name,
            version=version,
            definition=dict(definition),
            channels=sorted(set(channels)),
            tags=sorted(set(tags)),
            note=note,
            actor=caller.actor,
        )
        session.add(row)
        session.flush()
        uow.record_result("routing_profile", f"{name}/{version}")
        uow.commit()
        return profile_view(row)


def restore_profile(uow: UnitOfWork, caller: Caller, name: str, version: int) -> dict[str, Any]:
    """Make an old version current again, as a new version (history is never rewritten)."""
    with uow:
        old = _version(uow, caller, name, version)
        definition, channels, tags = dict(old.definition), list(old.channels), list(old.tags or ())
    return put_profile(
        uow, caller, name, definition, channels=channels, tags=tags, note=f"restored from version {version}"
    )


def get_profile(uow: UnitOfWork, caller: Caller, name: str, version: int | None = None) -> dict[str, Any]:
    with uow:
        if version is None:
            version = uow.session.scalar(
                select(func.max(RoutingProfileVersion.version)).where(
                    RoutingProfileVersion.tenant_id == caller.tenant_id, RoutingProfileVersion.name == name
                )
            )
            if version is None:
                raise NotFound(f"no routing profile {name!r}", code="routing_profile_not_found")
        return profile_view(_version(uow, caller, name, version))


def list_profiles(uow: UnitOfWork, caller: Caller) -> list[dict[str, Any]]:
    """The version in force of every profile."""
    with uow:
        rows = uow.session.scalars(_in_force(caller.tenant_id).order_by(RoutingProfileVersion.name)).all()
        return [profile_view(row) for row in rows]


def list_versions(uow: UnitOfWork, caller: Caller, name: str) -> list[dict[str, Any]]:
    with uow:
        rows = uow.session.scalars(
            select(RoutingProfileVersion)
            .where(RoutingProfileVersion.tenant_id == caller.tenant_id, RoutingProfileVersion.name == name)
            .order_by(RoutingProfileVersion.version.desc())
        ).all()
        if not rows:
            raise NotFound(f"no routing profile {name!r}", code="routing_profile_not_found")
        return [profile_view(row) for row in rows]


def profile_view(row: RoutingProfileVersion) -> dict[str, Any]:
    return {
        "name": row.name,
        "version": row.version,
        "channels": row.channels,
        "tags": row.tags or [],
        "definition": profile_of(row).to_dict(),
        "note": row.note,
        "actor": row.actor,
        "created_at": row.created_at,
    }


def profile_of(row: RoutingProfileVersion) -> RoutingProfile:
    return profile_from_dict({**row.definition, "name": row.name, "version": row.version})


class ProfileChooser:
    """The profiles in force for one tenant, loaded once per allocation batch."""

    def __init__(self, profiles: Sequence[RoutingProfileVersion]) -> None:
        self._by_channel = {channel: profile_of(row) for row in profiles for channel in row.channels}
        self._by_tag: dict[str, RoutingProfile] = {}
        for row in sorted(profiles, key=lambda r: r.name):
            for tag in row.tags or ():
                self._by_tag.setdefault(tag, profile_of(row))
        default = next((row for row in profiles if row.name == DEFAULT_NAME), None)
        self._default = profile_of(default) if default else DEFAULT_PROFILE

    @classmethod
    def load(cls, session: Session, tenant_id: int) -> ProfileChooser:
        return cls(session.scalars(_in_force(tenant_id)).all())

    def for_channel(self, channel_code: str) -> RoutingProfile:
        return self._by_channel.get(channel_code, self._default)

    def for_order(self, channel_code: str, tags: Sequence[str] | None) -> RoutingProfile:
        for tag in sorted(tags or ()):
            if tag in self._by_tag:
                return self._by_tag[tag]
        return self.for_channel(channel_code)


def _in_force(tenant_id: int) -> Select[RoutingProfileVersion]:
    """The newest version of each of the tenant's profiles."""
    newest = (
        select(RoutingProfileVersion.name, func.max(RoutingProfileVersion.version).label("version"))
        .where(RoutingProfileVersion.tenant_id == tenant_id)
        .group_by(RoutingProfileVersion.name)
        .subquery()
    )
    return (
        select(RoutingProfileVersion)
        .join(
            newest, (newest.c.name == RoutingProfileVersion.name) & (newest.c.version == RoutingProfileVersion.version)
        )
        .where(RoutingProfileVersion.tenant_id == tenant_id)
    )


def _version(uow: UnitOfWork, caller: Caller, name: str, version: int) -> RoutingProfileVersion:
    row = uow.session.scalar(
        select(RoutingProfileVersion).where(
            RoutingProfileVersion.tenant_id == caller.tenant_id,
            RoutingProfileVersion.name == name,
            RoutingProfileVersion.version == version,
        )
    )
    if row is None:
        raise NotFound(f"no version {version} of routing profile {name!r}", code="routing_profile_not_found")
    return row
