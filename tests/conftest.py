"""Shared fixtures. Every storage test runs on SQLite and on PostgreSQL.

PostgreSQL: the suite migrates one template database per test process, then gives each test a fresh
copy (``CREATE DATABASE ... TEMPLATE``), so tests never see each other's rows. With ``CI=true`` an
unreachable server fails the run loudly; elsewhere PostgreSQL tests skip with the reason.
Point ``ORDERMESH_TEST_PG`` at another server (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings

from ordermesh.adapters.store import migrate
from ordermesh.adapters.store.tables import Base
from ordermesh.bootstrap import Application, bootstrap
from ordermesh.config import Settings
from ordermesh.services import tenants
from ordermesh.services.unit_of_work import Caller

# Speed belongs in bench/, never in tests: a property test must not fail because a shared 2-core
# machine was busy (Hypothesis' default 200 ms deadline and its too-slow health check do exactly that).
settings.register_profile("ordermesh", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ordermesh")

PG_ADMIN_URL = os.environ.get("ORDERMESH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]


def _pg_url(database: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    problem = _pg_reachable()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI and unreachable at {PG_ADMIN_URL}: {problem}", pytrace=False)
        pytest.skip(f"PostgreSQL unreachable at {PG_ADMIN_URL}: {problem}")
    name = f"om_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(_pg_url(name))
    yield name
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


def fresh_pg_database(template: str) -> Iterator[str]:
    name = f"om_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database (for tests that only make sense on PostgreSQL)."""
    template = request.getfixturevalue("pg_template")
    yield from fresh_pg_database(template)


@pytest.fixture(scope="session")
def pg_reused(pg_template: str) -> Iterator[str]:
    """One migrated PostgreSQL database per test process, emptied before each test that uses it
    (TRUNCATE is ~20x faster than creating and dropping a database per test)."""
    yield from fresh_pg_database(pg_template)


TABLES = ", ".join(f'"{table.name}"' for table in reversed(Base.metadata.sorted_tables))


def empty_pg_database(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET lock_timeout = '10s'")
        connection.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated, empty database: each test runs once per backend."""
    if request.param == "sqlite":
        path = tmp_path / "ordermesh.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_reused")
        empty_pg_database(url)
        yield url


# A fixed test key for sealing credentials (never used outside tests).
TEST_SECRET_KEY = "tnrDHm0v0mSwN1YkqvQUqL0uM3iNnJ0Y6VSpLRMN8vw="


def make_app(url: str, **overrides: object) -> Application:
    overrides.setdefault("secret_key", TEST_SECRET_KEY)
    return bootstrap(Settings(database_url=url, **overrides))  # type: ignore[arg-type]


@pytest.fixture
def app(db_url: str) -> Iterator[Application]:
    application = make_app(db_url)
    yield application
    application.close()


@pytest.fixture
def tenant(app: Application) -> tenants.NewTenant:
    return tenants.create_tenant(app.uow(), f"tenant-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def caller(tenant: tenants.NewTenant) -> Caller:
    return Caller(tenant_id=tenant.tenant_id, role="admin", actor="test")
