"""SKUs (with bundles) and locations."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, select

from ordermesh.adapters.store.tables import InventoryLevel, Location, OrderLine, Sku, SkuComponent
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.services.rerouting import request_reroute
from ordermesh.services.unit_of_work import Caller, UnitOfWork

SKU_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
LOCATION_KINDS = ("warehouse", "3pl", "store")


@dataclass(frozen=True, slots=True)
class SkuInput:
    code: str
    name: str
    weight_grams: int = 0
    components: dict[str, int] = field(default_factory=dict)  # component code -> units per bundle


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # 1-based position in the input (a CSV's line number is added by the caller)
    field: str
    message: str


def validate_skus(items: Sequence[SkuInput], known_plain_codes: set[str] | None = None) -> list[RowError]:
    """Every problem with ``items``, one per row and field, without touching the database.
    ``known_plain_codes``: codes of existing non-bundle SKUs a bundle may use as components."""
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    plain_in_batch = {item.code for item in items if not item.components}
    for index, item in enumerate(items, start=1):
        if not SKU_CODE.match(item.code or ""):
            errors.append(RowError(index, "code", "code must be 1-64 letters, digits or . _ -"))
        elif item.code in seen:
            errors.append(RowError(index, "code", f"duplicate code {item.code!r} (it appears earlier in the input)"))
        else:
            seen[item.code] = index
        if not (item.name or "").strip():
            errors.append(RowError(index, "name", "name is required"))
        if item.weight_grams < 0:
            errors.append(RowError(index, "weight_grams", "weight cannot be negative"))
        for component, quantity in item.components.items():
            if component == item.code:
                errors.append(RowError(index, "components", "a bundle cannot contain itself"))
            elif quantity <= 0:
                errors.append(RowError(index, "components", f"component {component!r} needs a positive quantity"))
            elif known_plain_codes is not None and component not in plain_in_batch | known_plain_codes:
                errors.append(RowError(index, "components", f"component {component!r} is not a known non-bundle SKU"))
    return errors


def upsert_skus(
    uow: UnitOfWork, caller: Caller, items: Sequence[SkuInput], progress: Callable[[int], None] | None = None
) -> list[str]:
    """Create or update SKUs all-or-nothing; returns the codes written. ``progress`` is called with
    the number of rows just written, as the work goes."""
    with uow:
        session = uow.session
        existing = {row.code: row for row in session.scalars(select(Sku).where(Sku.tenant_id == caller.tenant_id))}
        bundle_ids = set(
            session.scalars(select(SkuComponent.bundle_sku_id).where(SkuComponent.tenant_id == caller.tenant_id))
        )
        known_plain = {code for code, row in existing.items() if row.id not in bundle_ids}
        # A SKU that is someone's component must stay plain; we check the batch against itself too.
        errors = validate_skus(items, known_plain - {i.code for i in items if i.components})
        # ... and existing bundles (not rewritten here) keep their components plain.
        ids = {row.id: code for code, row in existing.items()}
        redefined = {item.code for item in items}
        in_use = {
            ids[component_id]
            for bundle_id, component_id in session.execute(
                select(SkuComponent.bundle_sku_id, SkuComponent.component_sku_id).where(
                    SkuComponent.tenant_id == caller.tenant_id
                )
            )
            if ids[bundle_id] not in redefined
        }
        errors += [
            RowError(index, "components", f"{item.code!r} is a component of another bundle and must stay plain")
            for index, item in enumerate(items, start=1)
            if item.components and item.code in in_use
        ]
        # ... and a SKU that holds stock (or sits on orders) cannot turn into a bundle: its units and
        # reservations would be orphaned, and captured orders keep what they were sold as.
        converting = {item.code for item in items if item.components and item.code in known_plain}
        if converting:
            ids_by_code = {code: existing[code].id for code in converting}
            stocked = set(
                session.scalars(
                    select(InventoryLevel.sku_id).where(
                        InventoryLevel.tenant_id == caller.tenant_id,
                        InventoryLevel.sku_id.in_(ids_by_code.values()),
                        (InventoryLevel.on_hand != 0) | (InventoryLevel.reserved != 0),
                    )
                )
            ) | set(
                session.scalars(
                    select(OrderLine.sku_id).where(
                        OrderLine.tenant_id == caller.tenant_id, OrderLine.sku_id.in_(ids_by_code.values())
                    )
                )
            )
            errors += [
                RowError(
                    index, "components", f"{item.code!r} holds stock or appears on orders; it cannot become a bundle"
                )
                for index, item in enumerate(items, start=1)
                if item.code in converting and ids_by_code[item.code] in stocked
            ]
        errors.sort(key=lambda error: error.row)
        if errors:
            first = errors[0]
            raise InvalidInput(
                f"row {first.row}: {first.field}: {first.message}",
                code="invalid_rows",
                errors=[{"row": e.row, "field": e.field, "message": e.message} for e in errors],
            )
        now = utcnow()
        rows: dict[str, Sku] = {}
        for item in items:
            row = existing.get(item.code)
            if row is None:
                row = Sku(tenant_id=caller.tenant_id, code=item.code, created_at=now)
                session.add(row)
            row.name, row.weight_grams, row.updated_at = item.name.strip(), item.weight_grams, now
            rows[item.code] = row
            if progress and len(rows) % 500 == 0:
                session.flush()
                progress(500)
        session.flush()
        by_code = {**existing, **rows}
        # Rewritten bundles lose their old components in one statement per 1,000, not one per SKU:
        # each ORM delete also searched every object in the session (quadratic; a 10,000-SKU
        # import spent most of its time there).
        redefined_bundles = sorted(rows[code].id for code in rows if rows[code].id in bundle_ids)
        for start in range(0, len(redefined_bundles), 1000):
            session.execute(
                delete(SkuComponent)
                .where(SkuComponent.bundle_sku_id.in_(redefined_bundles[start : start + 1000]))
                .execution_options(synchronize_session=False)
            )
        for item in items:
            bundle = rows[item.code]
            for component, quantity in item.components.items():
                session.add(
                    SkuComponent(
                        tenant_id=caller.tenant_id,
                        bundle_sku_id=bundle.id,
                        component_sku_id=by_code[component].id,
                        quantity=quantity,
                    )
                )
        uow.commit()
        if progress:
            progress(len(rows) % 500)
        return [item.code for item in items]


def list_skus(
    uow: UnitOfWork, caller: Caller, *, after: str | None = None, limit: int = 100
) -> list[dict[str, object]]:
    with uow:
        query = select(Sku).where(Sku.tenant_id == caller.tenant_id).order_by(Sku.code).limit(limit)
        if after:
            query = query.where(Sku.code > after)
        skus = uow.session.scalars(query).all()
        return [_sku_view(uow, sku) for sku in skus]


def get_sku(uow: UnitOfWork, caller: Caller, code: str) -> dict[str, object]:
    with uow:
        sku = uow.session.scalar(select(Sku).where(Sku.tenant_id == caller.tenant_id, Sku.code == code))
        if sku is None:
            raise NotFound(f"no SKU {code!r}", code="sku_not_found")
        return _sku_view(uow, sku)


def _sku_view(uow: UnitOfWork, sku: Sku) -> dict[str, object]:
    components = uow.session.execute(
        select(Sku.code, SkuComponent.quantity)
        .join(SkuComponent, SkuComponent.component_sku_id == Sku.id)
        .where(SkuComponent.bundle_sku_id == sku.id)
        .order_by(Sku.code)
    ).all()
    return {
        "code": sku.code,
        "name": sku.name,
        "weight_grams": sku.weight_grams,
        "components": dict(components),
    }


@dataclass(frozen=True, slots=True)
class LocationInput:
    name: str
    kind: str = "warehouse"
    latitude: float | None = None
    longitude: float | None = None
    daily_capacity: int | None = None
    cutoff_time: str | None = None  # HH:MM local
    time_zone: str = "UTC"
    active: bool = True
    country: str | None = None  # ISO 3166-1 alpha-2
    province: str | None = None
    channels: list[str] | None = None  # channel codes it ships for; None: all
    working_weekdays: list[int] | None = None  # 0 = Monday; None: Monday to Saturday
    closed_dates: list[str] | None = None  # ISO dates, besides public holidays


def upsert_location(uow: UnitOfWork, caller: Caller, code: str, data: LocationInput) -> tuple[dict[str, object], bool]:
    _validate_location(code, data)
    with uow:
        row = uow.session.scalar(select(Location).where(Location.tenant_id == caller.tenant_id, Location.code == code))
        created = row is None
        if row is None:
            row = Location(tenant_id=caller.tenant_id, code=code)
            uow.session.add(row)
        going_offline = not created and row.active and not data.active
        row.name, row.kind = data.name.strip(), data.kind
        row.latitude, row.longitude = data.latitude, data.longitude
        row.daily_capacity, row.cutoff_time = data.daily_capacity, data.cutoff_time
        row.time_zone, row.active, row.updated_at = data.time_zone, data.active, utcnow()
        row.country = data.country.upper() if data.country else None
        row.province, row.channels = data.province, sorted(set(data.channels)) if data.channels is not None else None
        row.working_weekdays = sorted(set(data.working_weekdays)) if data.working_weekdays is not None else None
        row.closed_dates = sorted(set(data.closed_dates)) if data.closed_dates is not None else None
        uow.session.flush()
        if going_offline:
            request_reroute(uow.session, caller.tenant_id, row.id, None, f"location {row.code} went offline")
            uow.wake_allocator = True
        uow.record_result("location", row.code)
        uow.commit()
        return location_view(row), created


def list_locations(uow: UnitOfWork, caller: Caller) -> list[dict[str, object]]:
    with uow:
        rows = uow.session.scalars(
            select(Location).where(Location.tenant_id == caller.tenant_id).order_by(Location.code)
        ).all()
        return [location_view(row) for row in rows]


def get_location(uow: UnitOfWork, caller: Caller, code: str) -> dict[str, object]:
    with uow:
        row = uow.session.scalar(select(Location).where(Location.tenant_id == caller.tenant_id, Location.code == code))
        if row is None:
            raise NotFound(f"no location {code!r}", code="location_not_found")
        return location_view(row)


def location_view(row: Location) -> dict[str, object]:
    return {
        "code": row.code,
        "name": row.name,
        "kind": row.kind,
        "latitude": row.latitude,
        "longitude": row.longitude,
        "daily_capacity": row.daily_capacity,
        "cutoff_time": row.cutoff_time,
        "time_zone": row.time_zone,
        "active": row.active,
        "country": row.country,
        "province": row.province,
        "channels": row.channels,
        "working_weekdays": row.working_weekdays,
        "closed_dates": row.closed_dates,
    }


def _validate_location(code: str, data: LocationInput) -> None:
    if not SKU_CODE.match(code):
        raise InvalidInput("location code must be 1-64 letters, digits or . _ -", field="code")
    if not data.name.strip():
        raise InvalidInput("name is required", field="name")
    if data.kind not in LOCATION_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(LOCATION_KINDS)}", field="kind")
    if (data.latitude is None) != (data.longitude is None):
        raise InvalidInput("give both latitude and longitude, or neither", field="latitude")
    if data.latitude is not None and not -90 <= data.latitude <= 90:
        raise InvalidInput("latitude must be between -90 and 90", field="latitude")
    if data.longitude is not None and not -180 <= data.longitude <= 180:
        raise InvalidInput("longitude must be between -180 and 180", field="longitude")
    if data.daily_capacity is not None and data.daily_capacity < 0:
        raise InvalidInput("daily_capacity cannot be negative", field="daily_capacity")
    if data.cutoff_time is not None:
        try:
            if not re.fullmatch(r"\d{2}:\d{2}", data.cutoff_time):
                raise ValueError
            time.fromisoformat(data.cutoff_time)
        except ValueError:
            raise InvalidInput("cutoff_time must be HH:MM (24-hour, local time)", field="cutoff_time") from None
    try:
        ZoneInfo(data.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {data.time_zone!r}", field="time_zone") from None
    if data.country is not None and not re.fullmatch(r"[A-Za-z]{2}", data.country):
        raise InvalidInput("country must be an ISO 3166-1 alpha-2 code such as VN", field="country")
    if data.working_weekdays is not None and (
        not data.working_weekdays or not set(data.working_weekdays) <= set(range(7))
    ):
        raise InvalidInput("working_weekdays: one or more of 0 (Monday) to 6 (Sunday)", field="working_weekdays")
    for day in data.closed_dates or ():
        try:
            date.fromisoformat(day)
        except ValueError:
            raise InvalidInput(f"closed_dates: {day!r} is not a date (YYYY-MM-DD)", field="closed_dates") from None
