"""The ``ordermesh`` command. Errors print one line to stderr and exit non-zero; never a traceback."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ordermesh.adapters.secrets import ConfigurationError, SecretError
from ordermesh.adapters.store import migrate
from ordermesh.adapters.store.tables import Tenant
from ordermesh.bootstrap import bootstrap
from ordermesh.config import Settings, get_settings
from ordermesh.domain.errors import NotFound, OrdermeshError
from ordermesh.services import catalog, tenants
from ordermesh.services.unit_of_work import Caller

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="ordermesh: order management for multi-channel sellers.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
tenant_app = typer.Typer(no_args_is_help=True, help="Tenants.")
apikey_app = typer.Typer(no_args_is_help=True, help="API keys.")
import_app = typer.Typer(no_args_is_help=True, help="Bulk imports.")
simulate_app = typer.Typer(
    no_args_is_help=True, help="Run a local simulator of a marketplace or carrier (real paths, signatures, faults)."
)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(import_app, name="import")
app.add_typer(simulate_app, name="simulate")

err = Console(stderr=True, soft_wrap=True)  # one message, one line, whatever the width


def fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations to the configured database (ORDERMESH_DATABASE_URL; default ./ordermesh.db)."""
    settings = get_settings()
    logging.getLogger("alembic").setLevel(logging.WARNING)
    migrate.upgrade(settings.database_url, revision)
    err.print(f"database at {settings.sqlalchemy_url.split('@')[-1]} is at {revision}")


@tenant_app.command("create")
def tenant_create(name: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Create a tenant with an admin API key (shown once) and its ``direct`` channel."""
    created = tenants.create_tenant(bootstrap().uow(), name)
    if as_json:
        typer.echo(json.dumps({"tenant": created.name, "tenant_id": created.tenant_id, "api_key": created.api_key}))
    else:
        typer.echo(f"tenant {created.name} (id {created.tenant_id})\nadmin API key (shown once): {created.api_key}")


@apikey_app.command("create")
def apikey_create(
    tenant: Annotated[str, typer.Option(help="tenant name or id")],
    role: Annotated[str, typer.Option(help="admin, operator, integration or viewer")] = "operator",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create an API key for a tenant (shown once; stored hashed)."""
    key = tenants.create_api_key(bootstrap().uow(), tenant, role)
    typer.echo(json.dumps({"api_key": key, "role": role}) if as_json else key)


@apikey_app.command("list")
def apikey_list(
    tenant: Annotated[str, typer.Option(help="tenant name or id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The tenant's keys: prefix, role, created, revoked (never the key itself)."""
    keys = tenants.list_api_keys(bootstrap().read_uow(), tenant)
    if as_json:
        typer.echo(json.dumps(keys))
        return
    for key in keys:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "live"
        typer.echo(f"{key['prefix']}  {key['role']:<11}  created {key['created_at']}  {state}")


@apikey_app.command("revoke")
def apikey_revoke(
    prefix: Annotated[str, typer.Argument(help="the key's prefix as `apikey list` shows it, e.g. om_AbC123")],
    tenant: Annotated[str, typer.Option(help="tenant name or id")],
) -> None:
    """Revoke a key. Running servers stop accepting it within 30 seconds (their auth cache)."""
    count = tenants.revoke_api_key(bootstrap().uow(), tenant, prefix)
    err.print(f"revoked {count} key(s) with prefix {prefix}", markup=False)


def _system_caller(tenant: str) -> Caller:
    application = bootstrap()
    with application.read_uow() as uow:
        row = uow.session.scalar(select(Tenant).where(Tenant.name == tenant))
        if row is None and tenant.isdigit():
            row = uow.session.get(Tenant, int(tenant))
        if row is None:
            raise NotFound(f"no tenant {tenant!r}", code="tenant_not_found")
        return Caller(tenant_id=row.id, role="admin", actor="cli")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    )


@import_app.command("skus")
def import_skus(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    tenant: Annotated[str, typer.Option(help="tenant name or id")],
) -> None:
    """Import SKUs from CSV: columns code,name[,weight_grams][,components]; components as
    ``CODE:QTY;CODE:QTY``. Every invalid row is reported with its line number; nothing is written
    unless every row is valid."""
    caller = _system_caller(tenant)
    items: list[catalog.SkuInput] = []
    problems: list[str] = []
    line_of: list[int] = []
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"code", "name"} - set(reader.fieldnames or [])
        if missing:
            raise fail(f"{file}: line 1: missing column(s) {', '.join(sorted(missing))}")
        for record in reader:
            line = reader.line_num
            try:
                weight = int((record.get("weight_grams") or "0").strip() or 0)
            except ValueError:
                problems.append(f"line {line}: weight_grams: not a whole number: {record.get('weight_grams')!r}")
                weight = 0
            components: dict[str, int] = {}
            for part in filter(None, (p.strip() for p in (record.get("components") or "").split(";"))):
                code, _, quantity = part.partition(":")
                try:
                    components[code.strip()] = int(quantity or 1)
                except ValueError:
                    problems.append(f"line {line}: components: bad quantity in {part!r} (use CODE:QTY)")
            items.append(
                catalog.SkuInput((record.get("code") or "").strip(), record.get("name") or "", weight, components)
            )
            line_of.append(line)
    application = bootstrap()
    with application.read_uow() as uow:
        from ordermesh.adapters.store.tables import Sku, SkuComponent

        bundle_ids = set(
            uow.session.scalars(select(SkuComponent.bundle_sku_id).where(SkuComponent.tenant_id == caller.tenant_id))
        )
        known = {
            code
            for sku_id, code in uow.session.execute(select(Sku.id, Sku.code).where(Sku.tenant_id == caller.tenant_id))
            if sku_id not in bundle_ids
        }
    problems += [
        f"line {line_of[e.row - 1]}: {e.field}: {e.message}"
        for e in catalog.validate_skus(items, known - {i.code for i in items if i.components})
    ]
    if problems:
        problems.sort(key=lambda p: int(p.split(":")[0].split()[1]))
        for problem in problems:
            err.print(f"{file}: {problem}", highlight=False, markup=False, soft_wrap=True)
        raise fail(f"{len(problems)} invalid row(s); nothing was imported")
    if not items:
        raise fail(f"{file}: no rows to import")
    with _progress() as progress:
        task = progress.add_task("importing SKUs", total=len(items))
        catalog.upsert_skus(application.uow(), caller, items, progress=lambda n: progress.advance(task, n))
    err.print(f"imported {len(items)} SKU(s) into tenant {tenant}", markup=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="default ORDERMESH_HOST or 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(help="default ORDERMESH_PORT or 8000")] = None,
    workers: Annotated[
        bool, typer.Option("--workers/--no-workers", help="run the background workers in this process")
    ] = True,
) -> None:
    """Run the HTTP API (and, by default, the background workers) in this process."""
    import uvicorn

    from ordermesh.api.app import create_app

    settings = get_settings()
    application = bootstrap(settings)
    if workers is False and not application.is_postgres:
        err.print(
            "note: with SQLite, run the workers in one process (drop --no-workers) unless another process runs them"
        )
    uvicorn.run(
        create_app(application, run_workers=workers),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        access_log=settings.log_level == "debug",
    )


CARRIER_OPTIONS = {
    "ghn": ("token", "shop_id"),
    "ghtk": ("token", "client_source"),
    "ninjavan": ("client_id", "client_secret"),
}


@simulate_app.command("carrier")
def simulate_carrier(
    kind: Annotated[str, typer.Argument(help="ghn, ghtk or ninjavan")],
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8700,
    host: str = "127.0.0.1",
    token: Annotated[str | None, typer.Option(help="GHN / GHTK API token to accept")] = None,
    shop_id: Annotated[str | None, typer.Option(help="GHN ShopId to accept")] = None,
    client_source: Annotated[str | None, typer.Option(help="GHTK X-Client-Source to accept")] = None,
    client_id: Annotated[str | None, typer.Option(help="Ninja Van OAuth client id")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Ninja Van client secret (signs its webhooks)")] = None,
    push_url: Annotated[str | None, typer.Option(help="ordermesh webhook URL to push tracking to")] = None,
    zones: Annotated[Path | None, typer.Option(help="JSON zone table {zone: {fee, per_extra_500g, lead_days}}")] = None,
) -> None:
    """Run a carrier simulator (real paths, auth, envelopes and webhooks; faults under /_sim)."""
    from ordermesh.simulators import common, ghn, ghtk, ninjavan

    if kind not in CARRIER_OPTIONS:
        raise fail(f"unknown carrier {kind!r}: choose ghn, ghtk or ninjavan")
    given = {
        "token": token,
        "shop_id": shop_id,
        "client_source": client_source,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    foreign = sorted(name for name, value in given.items() if value is not None and name not in CARRIER_OPTIONS[kind])
    if foreign:
        options = ", ".join("--" + name.replace("_", "-") for name in foreign)
        raise fail(f"{kind} does not use {options}")
    table = None
    if zones is not None:
        try:
            table = json.loads(zones.read_text(encoding="utf-8"))
            for zone in ("same_province", "other"):
                for key in ("fee", "per_extra_500g", "lead_days"):
                    int(table[zone][key])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise fail(
                f"--zones {zones}: needs same_province and other, each with fee, per_extra_500g, lead_days ({error})"
            ) from None
    credentials = {name: value for name, value in given.items() if value is not None}
    factory = {"ghn": ghn.create_app, "ghtk": ghtk.create_app, "ninjavan": ninjavan.create_app}[kind]
    simulator = factory(**credentials, push_url=push_url, zones=table)  # type: ignore[operator]
    err.print(f"{kind} simulator on http://{host}:{port} (faults: /_sim/faults; tracking: /_sim/advance)")
    common.serve(simulator, host=host, port=port)


@app.command("secret-key")
def secret_key() -> None:
    """Print a new key for ORDERMESH_SECRET_KEY (seals channel and carrier credentials at rest)."""
    from ordermesh.adapters.secrets import SecretBox

    typer.echo(SecretBox.generate_key())


@app.command()
def worker() -> None:
    """Run the background workers (allocation, outbox delivery) until interrupted."""
    import signal

    from ordermesh.workers.runner import Worker

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runner = Worker(bootstrap(settings), name="worker")
    signal.signal(signal.SIGTERM, lambda *_: runner.stop_event.set())
    err.print("worker running; Ctrl-C to stop")
    runner.start()
    try:
        while not runner.stop_event.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()


@app.command()
def demo(
    orders: Annotated[int, typer.Option(help="orders to fire")] = 3000,
    concurrency: Annotated[int, typer.Option(help="concurrent HTTP clients")] = 16,
    shop_orders: Annotated[
        int, typer.Option(min=0, help="orders simulated buyers place on the four marketplaces (0: skip)")
    ] = 300,
    shop_rate: Annotated[float, typer.Option(min=0.1, help="marketplace orders per second")] = 20.0,
    hot_units: Annotated[int, typer.Option(min=2, help="units of the flash-sale SKU the marketplaces share")] = 60,
) -> None:
    """Set up a demo tenant, fire a burst of orders through the HTTP API and summarise; then connect the
    four marketplace simulators, let buyers order on them and check every shop agrees with ordermesh."""
    from ordermesh.demo import run_demo

    run_demo(orders=orders, concurrency=concurrency, shop_orders=shop_orders, shop_rate=shop_rate, hot_units=hot_units)


from ordermesh import cli_channels  # noqa: E402  (registers `channels` and `simulate channel|scenario`)

cli_channels.register(app, simulate_app)


def main() -> None:
    try:
        Settings()  # surface configuration errors as one line
        app(standalone_mode=True)
    except OrdermeshError as error:
        raise SystemExit(_one_line(error.detail)) from None
    except (ConfigurationError, SecretError) as error:  # e.g. ORDERMESH_SECRET_KEY unset or wrong
        raise SystemExit(_one_line(str(error))) from None
    except OperationalError as error:
        raise SystemExit(_one_line(f"cannot use the database: {error.orig}")) from None
    except SQLAlchemyError as error:
        raise SystemExit(_one_line(f"database error: {error}")) from None


def _one_line(message: str) -> str:
    first = str(message).strip().splitlines()[0] if str(message).strip() else "failed"
    return f"error: {first}"


if __name__ == "__main__":
    main()
    sys.exit(0)
