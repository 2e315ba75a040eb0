"""The ``ordermesh`` command, run as a subprocess against a temporary SQLite file.

Errors must be one line on stderr, a non-zero exit and never a traceback. State the command needs is
set up in-process (faster than another subprocess); independent commands run side by side.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ordermesh.api.app import create_app
from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from tests.conftest import make_app
from tests.e2e.conftest import bearer, row_counts

_SCRIPT = Path(sys.executable).with_name("ordermesh")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ordermesh.cli"]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERMESH_")}
    env["ORDERMESH_DATABASE_URL"] = database_url
    return env


def run_all(commands: Sequence[tuple[Sequence[str], str]], cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Run (args, database url) commands concurrently; results in the same order."""
    processes = [
        (
            list(args),
            subprocess.Popen(
                [*COMMAND, *args],
                env=_env(url),
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for args, url in commands
    ]
    results = []
    for args, process in processes:
        stdout, stderr = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(args, process.returncode, stdout, stderr))
    return results


def assert_one_line_error(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """Exit non-zero, nothing on stdout, exactly ``error: <expected>`` on stderr."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"error: {expected}"]


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database migrated by ``ordermesh db upgrade`` (once per module; each test gets a copy)."""
    directory = tmp_path_factory.mktemp("cli")
    path = directory / "template.db"
    [result] = run_all([(["db", "upgrade"], f"sqlite:///{path}")], cwd=directory)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"database at sqlite:///{path} is at head"
    return path


@pytest.fixture
def database_url(migrated: Path, tmp_path: Path) -> str:
    path = tmp_path / "ordermesh.db"
    shutil.copy(migrated, path)
    return f"sqlite:///{path}"


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    def run_one(*args: str) -> subprocess.CompletedProcess[str]:
        [result] = run_all([(args, database_url)], cwd=tmp_path)
        return result

    return run_one


@pytest.fixture
def application(database_url: str) -> Iterator[Application]:
    application = make_app(database_url)
    yield application
    application.close()


@pytest.fixture
def acme(application: Application) -> tenants.NewTenant:
    return tenants.create_tenant(application.uow(), "acme")


def test_tenant_create_json_prints_tenant_id_and_a_working_admin_key(run: Run, application: Application) -> None:
    result = run("tenant", "create", "acme", "--json")

    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    created = json.loads(result.stdout)
    assert sorted(created) == ["api_key", "tenant", "tenant_id"]
    assert created["tenant"] == "acme"
    assert isinstance(created["tenant_id"], int)
    assert created["api_key"].startswith("om_")
    with TestClient(create_app(application, run_workers=False)) as client:
        headers = bearer(created["api_key"])
        assert client.get("/v1/orders", headers=headers).json() == {"items": [], "next_cursor": None}
        skus = client.post("/v1/skus", headers=headers, json={"skus": [{"code": "A", "name": "Alpha"}]})
        assert skus.status_code == 200


def test_apikey_create_json_prints_a_working_key_with_that_role(
    database_url: str, tmp_path: Path, application: Application, acme: tenants.NewTenant
) -> None:
    by_name, by_id = run_all(
        [
            (["apikey", "create", "--tenant", "acme", "--role", "viewer", "--json"], database_url),
            (["apikey", "create", "--tenant", str(acme.tenant_id), "--role", "integration", "--json"], database_url),
        ],
        cwd=tmp_path,
    )

    assert by_name.returncode == 0, by_name.stderr
    assert by_id.returncode == 0, by_id.stderr
    viewer, integration = json.loads(by_name.stdout), json.loads(by_id.stdout)
    assert sorted(viewer) == ["api_key", "role"]
    assert (viewer["role"], integration["role"]) == ("viewer", "integration")
    sku = {"skus": [{"code": "A", "name": "Alpha"}]}
    with TestClient(create_app(application, run_workers=False)) as client:
        assert client.get("/v1/orders", headers=bearer(viewer["api_key"])).status_code == 200
        assert client.post("/v1/skus", headers=bearer(viewer["api_key"]), json=sku).status_code == 403
        assert client.post("/v1/skus", headers=bearer(integration["api_key"]), json=sku).status_code == 200


def test_cli_errors_are_one_line_without_traceback(
    database_url: str,
    tmp_path: Path,
    application: Application,
    acme: tenants.NewTenant,
    subtests: pytest.Subtests,
) -> None:
    before = row_counts(application)
    cases = {
        "unknown role": (
            ["apikey", "create", "--tenant", "acme", "--role", "superuser", "--json"],
            "unknown role 'superuser'; one of admin, operator, integration, viewer",
        ),
        "unknown tenant": (["apikey", "create", "--tenant", "nobody", "--role", "viewer"], "no tenant 'nobody'"),
        "duplicate tenant": (["tenant", "create", "acme", "--json"], "tenant 'acme' already exists"),
        "import for unknown tenant": (
            ["import", "skus", str(_write(tmp_path, "code,name\nA,Alpha\n")), "--tenant", "nobody"],
            "no tenant 'nobody'",
        ),
    }
    results = run_all([(args, database_url) for args, _ in cases.values()], cwd=tmp_path)

    for (case, (_, expected)), result in zip(cases.items(), results, strict=True):
        with subtests.test(case=case):
            assert_one_line_error(result, expected)
    assert row_counts(application) == before


def test_bad_database_url_is_a_one_line_error(tmp_path: Path) -> None:
    cases = [
        ("postgresql://nobody@127.0.0.1:1/none", "error: cannot use the database: connection failed: "),
        ("bogus://somewhere", "error: database error: Can't load plugin: sqlalchemy.dialects:bogus"),
        (f"sqlite:///{tmp_path}/no/such/dir/x.db", "error: cannot use the database: unable to open database file"),
    ]
    results = run_all([(["tenant", "create", "acme", "--json"], url) for url, _ in cases], cwd=tmp_path)

    for (url, expected), result in zip(cases, results, strict=True):
        assert result.returncode != 0, url
        assert "Traceback" not in result.stderr, url
        assert result.stdout == "", url
        lines = result.stderr.splitlines()
        assert len(lines) == 1, (url, result.stderr)
        assert lines[0].startswith(expected), (url, lines[0])


def _write(directory: Path, text: str, name: str = "skus.csv") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_skus_imports_every_row_including_bundles(
    run: Run, tmp_path: Path, application: Application, acme: tenants.NewTenant
) -> None:
    csv = _write(
        tmp_path,
        "code,name,weight_grams,components\nA,Alpha,100,\nB,Beta,,\nKIT,Alpha and two Betas,350,A:1;B:2\n",
    )

    result = run("import", "skus", str(csv), "--tenant", "acme")

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "imported 3 SKU(s) into tenant acme"
    with TestClient(create_app(application, run_workers=False)) as client:
        skus = client.get("/v1/skus", headers=bearer(acme.api_key)).json()
    assert skus == [
        {"code": "A", "name": "Alpha", "weight_grams": 100, "components": {}},
        {"code": "B", "name": "Beta", "weight_grams": 0, "components": {}},
        {"code": "KIT", "name": "Alpha and two Betas", "weight_grams": 350, "components": {"A": 1, "B": 2}},
    ]


def test_import_skus_reports_every_invalid_row_and_writes_nothing(
    run: Run, tmp_path: Path, application: Application, acme: tenants.NewTenant
) -> None:
    # The directory name is long, so a report line only stays one line if the CLI never wraps it;
    # "[/b]" would be taken for console markup if the CLI printed the CSV's text as markup.
    directory = tmp_path / ("a-rather-long-directory-name-" * 3)
    directory.mkdir()
    csv = _write(
        directory,
        "code,name,weight_grams,components\n"
        "A,Alpha,100,\n"  # line 2: fine
        ",No code,1,\n"  # line 3
        "C,,[/b],\n"  # line 4: two problems
        "A,Alpha again,1,\n"  # line 5
        "KIT,Kit,1,A:1;GHOST:2\n"  # line 6
        "K2,Kit two,1,A:lots\n"  # line 7
        "B,Beta,-5,\n",  # line 8
    )
    before = row_counts(application)

    result = run("import", "skus", str(csv), "--tenant", "acme")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines == [
        f"{csv}: line 3: code: code must be 1-64 letters, digits or . _ -",
        f"{csv}: line 4: weight_grams: not a whole number: '[/b]'",
        f"{csv}: line 4: name: name is required",
        f"{csv}: line 5: code: duplicate code 'A' (it appears earlier in the input)",
        f"{csv}: line 6: components: component 'GHOST' is not a known non-bundle SKU",
        f"{csv}: line 7: components: bad quantity in 'A:lots' (use CODE:QTY)",
        f"{csv}: line 8: weight_grams: weight cannot be negative",
        "error: 7 invalid row(s); nothing was imported",
    ]
    assert row_counts(application) == before


def test_import_skus_without_required_columns_names_them(run: Run, tmp_path: Path, acme: tenants.NewTenant) -> None:
    csv = _write(tmp_path, "sku,title\nA,Alpha\n")
    result = run("import", "skus", str(csv), "--tenant", "acme")
    assert_one_line_error(result, f"{csv}: line 1: missing column(s) code, name")


def test_a_revoked_key_stops_working(run: Run, application: Application, acme: tenants.NewTenant) -> None:
    key = tenants.create_api_key(application.uow(), "acme", "viewer")
    prefix = key[:9]

    listed = json.loads(run("apikey", "list", "--tenant", "acme", "--json").stdout)
    revoked = run("apikey", "revoke", prefix, "--tenant", "acme")
    again = run("apikey", "revoke", prefix, "--tenant", "acme")

    assert [(k["prefix"], k["revoked_at"]) for k in listed if k["prefix"] == prefix] == [(prefix, None)]
    assert (revoked.returncode, revoked.stderr.strip()) == (0, f"revoked 1 key(s) with prefix {prefix}")
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: no live key '{prefix}' for tenant 'acme'"
    after = json.loads(run("apikey", "list", "--tenant", "acme", "--json").stdout)
    assert [k["revoked_at"] is not None for k in after if k["prefix"] == prefix] == [True]
    with TestClient(create_app(application, run_workers=False)) as client:
        response = client.get("/v1/orders", headers=bearer(key))
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")


def test_demo_runs_both_phases_and_checks_every_shop_agrees(run: Run) -> None:
    # Small numbers: the HTTP burst, then four marketplace simulators (child processes) with buyers on them.
    result = run("demo", "--orders", "20", "--shop-orders", "24", "--shop-rate", "200", "--hot-units", "6")

    assert result.returncode == 0, result.stderr + result.stdout
    text = " ".join(result.stdout.split())
    assert "demo finished: every order was captured and allocated or backordered." in text
    assert "oversell check: no SKU is reserved beyond its on-hand stock at any location" in text
    assert "every order a shop accepted reached ordermesh, and every shop shows what ordermesh says it should" in text
    for code in ("shopify-vn", "shopee-vn", "lazada-vn", "tiktok-vn"):
        assert code in text
