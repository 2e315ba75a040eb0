from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from ordermesh.api.deps import AppDep, CatalogWriter, IdempotencyDep, Reader, write_uow
from ordermesh.api.schemas import LocationPublic, LocationPut, SkuBulkUpsert, SkuPublic
from ordermesh.services import catalog

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.post("/skus", response_model=list[SkuPublic])
def upsert_skus(body: SkuBulkUpsert, app: AppDep, caller: CatalogWriter) -> Any:
    """Create or update many SKUs at once, all or nothing. Bundles list their components."""
    items = [catalog.SkuInput(s.code, s.name, s.weight_grams, dict(s.components)) for s in body.skus]
    codes = catalog.upsert_skus(app.uow(), caller, items)
    return [catalog.get_sku(app.read_uow(), caller, code) for code in codes[:100]]


@router.get("/skus", response_model=list[SkuPublic])
def list_skus(
    app: AppDep, caller: Reader, after: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> Any:
    return catalog.list_skus(app.read_uow(), caller, after=after, limit=limit)


@router.get("/skus/{code}", response_model=SkuPublic)
def get_sku(code: str, app: AppDep, caller: Reader) -> Any:
    return catalog.get_sku(app.read_uow(), caller, code)


@router.put("/locations/{code}", response_model=LocationPublic)
def put_location(
    code: str, body: LocationPut, app: AppDep, caller: CatalogWriter, key: IdempotencyDep, response: Response
) -> Any:
    data = catalog.LocationInput(
        **body.model_dump(exclude={"closed_dates"}),
        closed_dates=[day.isoformat() for day in body.closed_dates] if body.closed_dates is not None else None,
    )
    view, created = catalog.upsert_location(write_uow(app, caller, key), caller, code, data)
    response.status_code = 201 if created else 200
    return view


@router.get("/locations", response_model=list[LocationPublic])
def list_locations(app: AppDep, caller: Reader) -> Any:
    return catalog.list_locations(app.read_uow(), caller)


@router.get("/locations/{code}", response_model=LocationPublic)
def get_location(code: str, app: AppDep, caller: Reader) -> Any:
    return catalog.get_location(app.read_uow(), caller, code)
