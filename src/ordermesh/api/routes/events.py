from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ordermesh.api.deps import Administrator, AppDep, IdempotencyDep, IdPath, Reader, write_uow
from ordermesh.api.schemas import EventPage, EventPublic
from ordermesh.services import events

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", response_model=EventPage)
def feed(
    app: AppDep,
    caller: Reader,
    after: Annotated[
        str | None, Query(max_length=40, description="a cursor from a previous page; 0 or none: the beginning")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Every fact ordermesh recorded for this tenant, in commit order. Pass ``next_cursor`` back as
    ``after``; no event is ever skipped, even when transactions commit out of id order."""
    return events.read_feed(app.read_uow(), caller, after=after, limit=limit)


@router.get("/dead-letters", response_model=list[EventPublic])
def dead_letters(app: AppDep, caller: Reader) -> Any:
    return events.list_dead_letters(app.read_uow(), caller)


@router.post("/{event_id}/retry", response_model=EventPublic)
def retry(event_id: IdPath, app: AppDep, caller: Administrator, key: IdempotencyDep) -> Any:
    """Put a dead letter back in the delivery queue."""
    return events.retry_dead_letter(write_uow(app, caller, key), caller, event_id)
