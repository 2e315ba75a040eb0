"""Engines and sessions.

SQLite: WAL journal, foreign keys on, ``synchronous=FULL`` (an acknowledged order survives power loss,
not only a process crash), and every write transaction starts with ``BEGIN IMMEDIATE`` so two writers
never deadlock upgrading a read lock; reads use ``BEGIN DEFERRED`` and never block the writer.
PostgreSQL: psycopg 3, READ COMMITTED, explicit row locks where a rule needs them.
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from ordermesh.config import normalize_database_url

WRITER_QUEUE_SECONDS = 60  # as long as SQLite's own busy timeout: then the writer gives up loudly
# Rows per multi-row INSERT ... RETURNING (SQLAlchemy's "insertmanyvalues"). psycopg parses each
# statement's text for placeholders in Python, and that costs more per row the longer the text:
# measured 42 us/row at 50 rows, 49 at 100, 88 at 500, 100 at 1,000 (SQLAlchemy's default).
INSERT_PAGE_ROWS = 100


def json_dumps(value: Any) -> str:
    """How JSON columns are written: orjson, several times faster than the standard library on
    the allocator's traces, events and outbox payloads (profiled: json.dumps was 7.5% of a batch).
    Integer keys become strings, as json.dumps does."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def make_engine(url: str | None, *, pool_size: int = 10, pool_timeout: float = 30.0, echo: bool = False) -> Engine:
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 60, "factory": _locking_connection_class()},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=pool_timeout,
            json_serializer=json_dumps,
            json_deserializer=orjson.loads,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        echo=echo,
        insertmanyvalues_page_size=INSERT_PAGE_ROWS,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        pool_pre_ping=True,
        json_serializer=json_dumps,
        json_deserializer=orjson.loads,
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    # SQLite has one writer at a time. Waiting for it inside SQLite means its busy handler, which
    # sleeps in growing steps and collapses throughput under contention; so writers of this process
    # queue on a lock first and only then BEGIN IMMEDIATE (which still guards against other
    # processes). The lock is released by the DBAPI connection's own commit/rollback.
    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        raw = connection.connection.dbapi_connection
        if mode == "IMMEDIATE":
            raw.hold_write_lock()
        try:
            connection.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            raw.release_write_lock()
            raise


def _locking_connection_class() -> type[sqlite3.Connection]:
    write_lock = threading.Lock()

    class LockingConnection(sqlite3.Connection):
        _holding = False

        def hold_write_lock(self) -> None:
            if not write_lock.acquire(timeout=WRITER_QUEUE_SECONDS):
                raise sqlite3.OperationalError(f"database is busy: no write slot within {WRITER_QUEUE_SECONDS} s")
            self._holding = True

        def release_write_lock(self) -> None:
            if self._holding:
                self._holding = False
                write_lock.release()

        def commit(self) -> None:
            try:
                super().commit()
            finally:
                self.release_write_lock()

        def rollback(self) -> None:
            try:
                super().rollback()
            finally:
                self.release_write_lock()

        def close(self) -> None:
            try:
                super().close()
            finally:
                self.release_write_lock()

    return LockingConnection


def make_session_factories(engine: Engine) -> tuple[sessionmaker[Session], sessionmaker[Session]]:
    """(writer, reader) session factories. They differ only on SQLite, where readers begin deferred."""
    writer = sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)
    if engine.dialect.name == "sqlite":
        reader_bind = engine.execution_options(sqlite_begin="DEFERRED")
        reader = sessionmaker(bind=reader_bind, expire_on_commit=False, autoflush=False)
    else:
        reader = writer
    return writer, reader
