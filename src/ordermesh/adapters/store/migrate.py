"""Alembic, driven from code so ``ordermesh db upgrade`` works from any directory."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from ordermesh.config import normalize_database_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = normalize_database_url(url)
    return config


def upgrade(url: str | None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def check(url: str | None) -> None:
    """Raise if the models and the migrations disagree (alembic's ``check``)."""
    command.check(alembic_config(url))
