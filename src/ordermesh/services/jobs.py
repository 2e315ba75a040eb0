"""Periodic jobs (polling fallbacks, monitors): each runs at most once per interval across all workers.

A worker that finds a job due takes it by moving ``last_started_at`` forward in one conditional UPDATE; a
second worker racing it updates nothing and skips. The job itself runs outside that transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from ordermesh.adapters.store.tables_inbox import JobRun
from ordermesh.adapters.store.types import utcnow
from ordermesh.services.unit_of_work import UnitOfWork

log = logging.getLogger("ordermesh.jobs")


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    seconds: float
    run: Callable[[], object]


def take_if_due(uow: UnitOfWork, job: Job) -> bool:
    now = utcnow()
    with uow:
        taken = uow.session.execute(
            update(JobRun)
            .where(JobRun.name == job.name, JobRun.last_started_at <= now - timedelta(seconds=job.seconds))
            .values(last_started_at=now)
            .returning(JobRun.name)
        ).first()
        if taken is not None:
            uow.commit()
            return True
        if uow.session.get(JobRun, job.name) is not None:
            return False
        uow.session.add(JobRun(name=job.name, last_started_at=now))
        try:
            uow.commit()
        except IntegrityError:  # another worker created it first and runs it
            return False
    return True


def run_due(new_uow: Callable[[], UnitOfWork], jobs: list[Job]) -> int:
    """Run every due job once; returns how many ran. A failing job is logged and recorded, never raised."""
    ran = 0
    for job in jobs:
        if not take_if_due(new_uow(), job):
            continue
        ran += 1
        error: str | None = None
        try:
            job.run()
        except Exception as caught:
            log.exception("periodic job %s failed", job.name)
            error = f"{type(caught).__name__}: {caught}"[:2000]
        with new_uow() as uow:
            row = uow.session.get(JobRun, job.name)
            if row is not None:
                row.last_finished_at, row.last_error = utcnow(), error
                uow.commit()
    return ran
