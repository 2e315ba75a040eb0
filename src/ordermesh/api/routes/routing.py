from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from ordermesh.api.deps import AppDep, CatalogWriter, IdempotencyDep, IdPath, Reader, write_uow
from ordermesh.api.schemas import RoutingProfilePublic, RoutingProfilePut, RoutingSimulationRequest
from ordermesh.services import routing_profiles, routing_simulation, routing_views

router = APIRouter(prefix="/v1", tags=["routing"])
ProfileName = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]


@router.put("/routing/profiles/{name}", response_model=RoutingProfilePublic)
def put_profile(name: ProfileName, body: RoutingProfilePut, app: AppDep, caller: CatalogWriter) -> Any:
    """Store a new version of a profile (validated; every version is kept). It applies to the next
    allocation batch. The profile named ``default`` serves every channel no other profile lists."""
    return routing_profiles.put_profile(
        app.uow(), caller, name, body.definition, channels=body.channels, tags=body.tags, note=body.note
    )


@router.get("/routing/profiles", response_model=list[RoutingProfilePublic])
def list_profiles(app: AppDep, caller: Reader) -> Any:
    """The version in force of every profile."""
    return routing_profiles.list_profiles(app.read_uow(), caller)


@router.get("/routing/profiles/{name}", response_model=RoutingProfilePublic)
def get_profile(name: ProfileName, app: AppDep, caller: Reader) -> Any:
    return routing_profiles.get_profile(app.read_uow(), caller, name)


@router.get("/routing/profiles/{name}/versions", response_model=list[RoutingProfilePublic])
def list_versions(name: ProfileName, app: AppDep, caller: Reader) -> Any:
    """Every version, newest first."""
    return routing_profiles.list_versions(app.read_uow(), caller, name)


@router.post("/routing/profiles/{name}/versions/{version}/restore", response_model=RoutingProfilePublic)
def restore(name: ProfileName, version: IdPath, app: AppDep, caller: CatalogWriter, key: IdempotencyDep) -> Any:
    """Make an old version current again (written as the newest version)."""
    return routing_profiles.restore_profile(write_uow(app, caller, key), caller, name, version)


@router.get("/orders/{order_id}/routing", tags=["orders"])
def order_routing(order_id: IdPath, app: AppDep, caller: Reader) -> Any:
    """Every routing decision made for the order, newest first: candidates, why each excluded node
    was excluded, each criterion's score, the plans weighed, the chosen one and the profile version."""
    return routing_views.decisions_for_order(app.read_uow(), caller, order_id)


@router.post("/routing/simulate")
def simulate(body: RoutingSimulationRequest, app: AppDep, caller: Reader) -> Any:
    """Run a draft profile over the newest orders (or a time window) and compare it with the profiles
    in force: orders that would move node, and the change in distance, cost, splits and SLA-feasible
    share. Changes nothing; each order is decided independently against today's stock."""
    return routing_simulation.simulate(
        app.read_uow(),
        caller,
        body.definition,
        channel=body.channel,
        last=body.last,
        placed_after=body.placed_after,
        placed_before=body.placed_before,
    )
