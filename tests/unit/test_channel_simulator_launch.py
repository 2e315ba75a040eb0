"""`ordermesh simulate channel lazada|tiktok`: bad options are one line and a non-zero exit, good ones build the app."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ordermesh.cli import app
from ordermesh.simulators.launch import build_channel_simulator


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["shopify-ish", "--port", "9000", "--app-key", "k", "--app-secret", "s"], "unknown channel simulator"),
        (["lazada", "--port", "9000"], "needs --app-key and --app-secret"),
        (["tiktok", "--port", "9000", "--app-key", "k"], "needs --app-key and --app-secret"),
        (["tiktok", "--port", "9000", "--app-key", "k", "--app-secret", "s", "--push-url", "nowhere"], "--push-url"),
        (["lazada", "--port", "9000", "--app-key", "k", "--app-secret", "s", "--shop-cipher", "c"], "shop cipher"),
    ],
)
def test_bad_options_exit_non_zero_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "channel", *args])
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_port_out_of_range_is_refused_by_the_option_parser() -> None:
    result = CliRunner().invoke(
        app, ["simulate", "channel", "lazada", "--port", "0", "--app-key", "k", "--app-secret", "s"]
    )
    assert result.exit_code == 2


@pytest.mark.parametrize("kind", ["lazada", "tiktok"])
def test_good_options_build_a_simulator_serving_the_platform_paths(kind: str) -> None:
    simulator = build_channel_simulator(kind, app_key="k", app_secret="s", push_url="http://127.0.0.1:1/hook")
    paths = {getattr(route, "path", "") for route in simulator.routes}
    expected = "/rest/{api_path:path}" if kind == "lazada" else "/order/{rest:path}"
    assert expected in paths
    assert "/_sim/faults" in paths
    simulator.state.pushes.close()
