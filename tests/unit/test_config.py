from __future__ import annotations

import pytest

from ordermesh.config import Settings, normalize_database_url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (None, "sqlite:///./ordermesh.db"),
        ("", "sqlite:///./ordermesh.db"),
        ("postgresql://postgres@127.0.0.1:5432/om", "postgresql+psycopg://postgres@127.0.0.1:5432/om"),
        ("postgres://u:p@db/om", "postgresql+psycopg://u:p@db/om"),
        ("postgresql+psycopg2://u@db/om", "postgresql+psycopg://u@db/om"),
        ("postgresql+psycopg://u@db/om", "postgresql+psycopg://u@db/om"),
        ("sqlite:////var/lib/om.db", "sqlite:////var/lib/om.db"),
    ],
)
def test_database_urls_work_as_people_write_them(given: str | None, used: str) -> None:
    assert normalize_database_url(given) == used


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERMESH_DATABASE_URL", "postgresql://x@h/db")
    monkeypatch.setenv("ORDERMESH_PORT", "9001")
    monkeypatch.setenv("ORDERMESH_AUTO_RELEASE", "true")
    settings = Settings()
    assert settings.sqlalchemy_url == "postgresql+psycopg://x@h/db"
    assert settings.port == 9001
    assert settings.auto_release is True
