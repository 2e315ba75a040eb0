"""Wiring of SLAs, cancellations and returns into the running application: the SLA monitor and
the short-pick settlement as periodic worker jobs, and the carrier's return-to-sender events."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.services import cancellations, returns, sla
from ordermesh.services.outbox import Envelope
from ordermesh.services.unit_of_work import Caller

if TYPE_CHECKING:  # bootstrap() calls wire(): import the type only
    from ordermesh.bootstrap import Application

log = logging.getLogger("ordermesh.aftersales")

SLA_MONITOR_SECONDS = 60.0
SHORT_PICK_SETTLEMENT_SECONDS = 5.0
CARRIER_ACTOR = "carrier"


def wire(app: Application) -> None:
    app.every("sla-monitor", SLA_MONITOR_SECONDS, lambda: sla.run_monitor(app.uow()))
    app.every(
        "short-pick-settlement", SHORT_PICK_SETTLEMENT_SECONDS, lambda: cancellations.settle_short_picks(app.uow())
    )
    app.subscribe("shipment.returned_to_sender", lambda envelope: on_returned_to_sender(app, envelope))


def on_returned_to_sender(app: Application, envelope: Envelope) -> None:
    """``shipment.returned_to_sender`` (payload: shipment_id, order_id, tenant_id): open the
    carrier's return once per shipment. A shipment ordermesh does not know, or one that never
    shipped, is logged and skipped (retrying would not change the answer)."""
    payload = envelope.payload
    tenant_id = int(payload.get("tenant_id", envelope.tenant_id))
    caller = Caller(tenant_id, "system", CARRIER_ACTOR)
    try:
        return_id = returns.open_from_carrier(app.uow(), caller, int(payload["shipment_id"]))
    except (NotFound, InvalidInput) as error:
        log.warning("return to sender of shipment %s ignored: %s", payload.get("shipment_id"), error)
        return
    log.info("shipment %s returned to sender: return %s", payload["shipment_id"], return_id)
