"""Configuration from the environment (prefix ``ORDERMESH_``); see the README's table."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = "./ordermesh.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORDERMESH_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="Unset: a SQLite file ./ordermesh.db in WAL mode. Or postgresql://user@host:port/db.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Workers
    auto_release: bool = Field(default=False, description="Release orders to nodes as soon as allocated.")
    allocation_batch_size: int = Field(default=500, ge=1, le=10_000)
    allocation_batch_max: int = Field(
        default=2000, ge=1, le=10_000, description="Largest batch when a backlog builds up (the batch size doubles)."
    )
    worker_poll_seconds: float = Field(default=0.5, gt=0)
    allocation_linger_seconds: float = Field(
        default=0.05, ge=0, description="Pause between allocation passes so orders arriving together share a batch."
    )
    outbox_max_attempts: int = Field(default=10, ge=1)
    # Storage
    db_pool_size: int = Field(default=10, ge=1)
    db_pool_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Longest wait for a pooled connection; then the API answers 429."
    )
    # Intake under load (see docs/benchmarks.md)
    group_commit: bool = Field(default=True, description="Concurrent order captures share one transaction.")
    group_commit_max_orders: int = Field(default=256, ge=1, le=5000)
    max_pending_writes: int = Field(
        default=256, ge=1, description="Write requests one server process holds at once; more are answered 429."
    )
    opentelemetry: bool = Field(
        default=False,
        description="FastAPI's native OpenTelemetry spans and metrics for an OpenTelemetry SDK you configure. "
        "Off: /metrics (Prometheus) is the built-in export, and the check ran on every request.",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) sealing channel and carrier credentials at rest; the first of a comma list seals.",
    )

    @property
    def sqlalchemy_url(self) -> str:
        return normalize_database_url(self.database_url)


def normalize_database_url(url: str | None) -> str:
    """Accept URLs the way people write them and pick the driver ordermesh ships with."""
    if not url:
        return f"sqlite:///{DEFAULT_SQLITE_PATH}"
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache
def get_settings() -> Settings:
    return Settings()
