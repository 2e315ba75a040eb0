"""``ordermesh channels add`` and ``ordermesh simulate channel``, as subprocesses."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ordermesh.adapters.secrets import SecretBox
from ordermesh.adapters.store import migrate
from ordermesh.adapters.store.tables_channels import ChannelConnection
from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from tests.conftest import make_app
from tests.e2e.test_cli import COMMAND, _env, assert_one_line_error

KEY = SecretBox.generate_key()
ADD = [
    "channels",
    "add",
    "shopee-vn",
    "--tenant",
    "acme",
    "--kind",
    "shopee",
    "--base-url",
    "http://127.0.0.1:9002",
    "--credential",
    "partner_id=2001887",
    "--credential",
    "partner_key=secret",
    "--credential",
    "shop_id=600000",
    "--credential",
    "access_token=tok",
    "--share",
    "60",
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("channel-cli") / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(template: Path, tmp_path: Path) -> str:
    path = tmp_path / "ordermesh.db"
    shutil.copy(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def application(database_url: str) -> Iterator[Application]:
    application = make_app(database_url)
    yield application
    application.close()


def run(database_url: str, cwd: Path, *args: str, key: str | None = KEY) -> subprocess.CompletedProcess[str]:
    env = _env(database_url)
    if key:
        env["ORDERMESH_SECRET_KEY"] = key
    return subprocess.run([*COMMAND, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def connections(application: Application) -> int:
    with application.read_uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(ChannelConnection)) or 0)


def test_channels_add_seals_credentials_and_prints_the_connection(
    database_url: str,
    application: Application,
    tmp_path: Path,
) -> None:
    tenants.create_tenant(application.uow(), "acme")
    result = run(database_url, tmp_path, *ADD)
    assert result.returncode == 0, result.stderr
    view = json.loads(result.stdout)
    assert (view["code"], view["kind"], view["stock_rules"]["share_percent"]) == ("shopee-vn", "shopee", 60)
    assert "secret" not in result.stdout
    assert connections(application) == 1


def test_channels_add_refusals_are_one_line_and_store_nothing(
    database_url: str,
    application: Application,
    tmp_path: Path,
) -> None:
    tenants.create_tenant(application.uow(), "acme")
    no_key = run(database_url, tmp_path, *ADD, key=None)
    assert_one_line_error(no_key, no_key.stderr.strip().removeprefix("error: "))
    assert "ORDERMESH_SECRET_KEY" in no_key.stderr
    bad = run(database_url, tmp_path, *ADD[:-2], "--credential", "nonsense")
    assert_one_line_error(bad, "--credential 'nonsense': use KEY=VALUE")
    missing = run(database_url, tmp_path, *ADD[:9], "--base-url", "http://x", "--credential", "partner_id=1")
    assert_one_line_error(missing, "shopee credentials need partner_key, shop_id, access_token")
    assert connections(application) == 0


def test_simulate_channel_needs_the_platforms_credentials(database_url: str, tmp_path: Path) -> None:
    result = run(database_url, tmp_path, "simulate", "channel", "shopee", "--partner-id", "x1", "--partner-key", "k")
    assert_one_line_error(result, "the shopee simulator needs --partner-id (a number) and --partner-key")
    unknown = run(database_url, tmp_path, "simulate", "channel", "ebay")
    assert_one_line_error(unknown, "unknown channel simulator 'ebay'; choose one of shopify, shopee, lazada, tiktok")
