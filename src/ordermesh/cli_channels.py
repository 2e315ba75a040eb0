"""``ordermesh channels ...`` and ``ordermesh simulate channel|scenario ...``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ordermesh.adapters.secrets import ConfigurationError
from ordermesh.bootstrap import bootstrap
from ordermesh.services import channels

channels_app = typer.Typer(no_args_is_help=True, help="Sales-channel connections (Shopify, Shopee, ...).")


def register(app: typer.Typer, simulate_app: typer.Typer) -> None:
    app.add_typer(channels_app, name="channels")
    simulate_app.command("channel")(simulate_channel)
    simulate_app.command("scenario")(simulate_scenario)


def _fail(message: str) -> typer.Exit:
    from ordermesh.cli import fail

    return fail(message)


@channels_app.command("add")
def channels_add(
    code: Annotated[str, typer.Argument(help="the channel's code, e.g. shopee-vn")],
    tenant: Annotated[str, typer.Option(help="tenant name or id")],
    kind: Annotated[str, typer.Option(help="shopify, shopee, lazada or tiktok")],
    base_url: Annotated[str, typer.Option(help="the platform's API host, or a simulator's URL")],
    credential: Annotated[
        list[str], typer.Option(help="KEY=VALUE in the platform's terms, repeated (e.g. partner_id=2001887)")
    ],
    location: Annotated[list[str] | None, typer.Option(help="location code feeding the channel (repeat)")] = None,
    buffer: Annotated[int, typer.Option(help="units always held back")] = 0,
    share: Annotated[int, typer.Option(help="percent of available stock offered")] = 100,
    max_exposed: Annotated[int | None, typer.Option(help="never show more than this")] = None,
    push_url: Annotated[str | None, typer.Option(help="callback URL exactly as registered (Shopee)")] = None,
    name: Annotated[str | None, typer.Option(help="display name")] = None,
) -> None:
    """Create or update a connection. Credentials are sealed with ORDERMESH_SECRET_KEY."""
    from ordermesh.cli import _system_caller

    credentials: dict[str, str] = {}
    for item in credential:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _fail(f"--credential {item!r}: use KEY=VALUE")
        credentials[key.strip()] = value
    application = bootstrap()
    try:
        box = application.secrets
    except ConfigurationError as error:
        raise _fail(str(error)) from None
    data = channels.ConnectionInput(
        kind=kind,
        name=name,
        base_url=base_url,
        push_url=push_url,
        credentials=credentials,
        locations=location or [],
        buffer=buffer,
        share_percent=share,
        max_exposed=max_exposed,
    )
    view, created = channels.put_connection(application.uow(), _system_caller(tenant), box, code, data)
    typer.echo(json.dumps(view, default=str))
    typer.echo(
        f"{'created' if created else 'updated'} {view['kind']} connection {code}; webhook {view['webhook_path']}",
        err=True,
    )


@channels_app.command("list")
def channels_list(tenant: Annotated[str, typer.Option(help="tenant name or id")]) -> None:
    from ordermesh.cli import _system_caller

    for view in channels.list_connections(bootstrap().read_uow(), _system_caller(tenant)):
        typer.echo(f"{view['code']}  {view['kind']:<8}  {view['base_url']}  webhook {view['webhook_path']}")


def simulate_channel(
    kind: Annotated[str, typer.Argument(help="shopify, shopee, lazada or tiktok")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 9001,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    push_url: Annotated[
        str | None, typer.Option(help="where to send webhooks/pushes (ordermesh's webhook URL)")
    ] = None,
    client_secret: Annotated[str | None, typer.Option(help="Shopify: the app's client secret (signs webhooks)")] = None,
    access_token: Annotated[str | None, typer.Option(help="the access token to accept")] = None,
    shop_domain: Annotated[str, typer.Option(help="Shopify: the shop's domain")] = "sim-shop.myshopify.com",
    partner_id: Annotated[str | None, typer.Option(help="Shopee: partner id")] = None,
    partner_key: Annotated[str | None, typer.Option(help="Shopee: partner key (signs calls and pushes)")] = None,
    shop_id: Annotated[str, typer.Option(help="Shopee: shop id")] = "600000",
    app_key: Annotated[str | None, typer.Option(help="Lazada, TikTok: the app key requests must carry")] = None,
    app_secret: Annotated[str | None, typer.Option(help="Lazada, TikTok: the app secret signatures use")] = None,
    shop_cipher: Annotated[str | None, typer.Option(help="TikTok: accept only this shop cipher")] = None,
) -> None:
    """Serve a marketplace simulator with the platform's real paths, signatures and faults."""
    from ordermesh.simulators.common import serve
    from ordermesh.simulators.launch import build_channel_simulator

    try:
        simulator = build_channel_simulator(
            kind,
            app_key=app_key,
            app_secret=app_secret,
            access_token=access_token,
            shop_cipher=shop_cipher,
            push_url=push_url,
            client_secret=client_secret,
            shop_domain=shop_domain,
            partner_id=partner_id,
            partner_key=partner_key,
            shop_id=shop_id,
        )
    except ValueError as error:
        raise _fail(str(error)) from None
    typer.echo(f"{kind} simulator on http://{host}:{port} (control API under /_sim)", err=True)
    serve(simulator, host=host, port=port)


def simulate_scenario(
    shop: Annotated[
        list[str], typer.Option(help="KIND=URL of a running simulator (repeat), e.g. shopee=http://127.0.0.1:9002")
    ],
    sku: Annotated[list[str], typer.Option(help="a seller SKU the simulated shops list (repeat)")],
    orders: Annotated[int, typer.Option(help="orders to place")] = 100,
    rate: Annotated[float, typer.Option(help="orders per second, over all shops")] = 5.0,
    seed: Annotated[int | None, typer.Option(help="random seed, for a repeatable run")] = None,
) -> None:
    """Buyers placing orders on simulated shops at a steady rate."""
    from ordermesh.simulators.launch import KINDS
    from ordermesh.simulators.scenario import Shop, run_scenario

    shops = []
    for item in shop:
        kind, sep, url = item.partition("=")
        if not sep or kind not in KINDS or not url.startswith(("http://", "https://")):
            raise _fail(f"--shop {item!r}: use KIND=URL with KIND one of {', '.join(KINDS)}")
        shops.append(Shop(kind, url))
    try:
        report = run_scenario(shops, sku, orders=orders, rate_per_second=rate, seed=seed)
    except ValueError as error:
        raise _fail(str(error)) from None
    typer.echo(json.dumps({"placed": report.placed, "refused": report.refused, "seconds": round(report.seconds, 3)}))
    if report.refused:
        raise typer.Exit(1)
