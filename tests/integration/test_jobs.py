"""Periodic jobs run once per interval across workers, and a failing job is recorded, not raised."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from ordermesh.adapters.store.tables_inbox import JobRun
from ordermesh.adapters.store.types import utcnow
from ordermesh.bootstrap import Application
from ordermesh.services import jobs
from ordermesh.services.jobs import Job
from tests.conftest import make_app


def test_a_job_runs_when_due_and_not_again_within_its_interval(
    app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [utcnow()]
    monkeypatch.setattr(jobs, "utcnow", lambda: now[0])
    runs: list[str] = []
    wired = list(app.jobs)  # the jobs bootstrap() wires for the integration areas are not this test's
    app.every("poll-shopee", 60, lambda: runs.append("poll"))
    own = [job for job in app.jobs if job not in wired]

    assert jobs.run_due(app.uow, own) == 1
    now[0] += timedelta(seconds=30)
    assert jobs.run_due(app.uow, own) == 0
    now[0] += timedelta(seconds=31)
    assert jobs.run_due(app.uow, own) == 1
    assert runs == ["poll", "poll"]
    with pytest.raises(ValueError, match="already registered"):
        app.every("poll-shopee", 60, lambda: None)


def test_a_failing_job_is_recorded_and_the_others_still_run(app: Application) -> None:
    ran = []

    def broken() -> None:
        raise RuntimeError("Shopee token expired")

    wired = list(app.jobs)  # the jobs bootstrap() wires for the integration areas are not this test's
    app.every("broken", 60, broken)
    app.every("fine", 60, lambda: ran.append(True))
    assert jobs.run_due(app.uow, [job for job in app.jobs if job not in wired]) == 2
    assert ran == [True]
    with app.read_uow() as uow:
        row = uow.session.get(JobRun, "broken")
        assert row is not None
        assert row.last_error == "RuntimeError: Shopee token expired"


@pytest.mark.postgres
def test_racing_workers_run_a_due_job_once(pg_url: str) -> None:
    app = make_app(pg_url)
    try:
        runs: list[int] = []
        job = Job("sla-monitor", 60, lambda: runs.append(1))
        start = threading.Barrier(5)

        def worker() -> None:
            start.wait()
            jobs.run_due(app.uow, [job])

        threads = [threading.Thread(target=worker) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert runs == [1]
    finally:
        app.close()
