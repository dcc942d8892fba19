"""`haorui-async send`, `emulator` and `demo`, through click's CliRunner (and one real run)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from haorui_async.cli._app import app
from haorui_async.cli._common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_SENT, EXIT_UNKNOWN
from haorui_async.cli._demo import emulator_arguments, emulator_process, percentile
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD

from .conftest import ROOT

pytestmark = pytest.mark.integration

PHONE = "+86 139 1234 5678"


def env_for(url: str, password: str = DEMO_API_PASSWORD) -> dict[str, str]:
    return {
        "HAORUI_API_ID": DEMO_API_ID,
        "HAORUI_API_PASSWORD": password,
        "HAORUI_BASE_URL": url,
        "HAORUI_SENDER_ID": "HAORUI",
    }


def test_send_prints_the_message_id_and_exits_0(emulator_url: str) -> None:
    result = CliRunner().invoke(
        app, ["send", PHONE, "Your code is 1", "--uid", "cli-1"], env=env_for(emulator_url)
    )
    assert result.exit_code == EXIT_SENT, result.output
    assert "sent: message_id=" in result.output
    assert "uid=cli-1" in result.output
    stats = httpx.get(emulator_url + "/_emulator/stats").json()
    assert stats["accepted"] >= 1


def test_send_reads_credentials_from_a_file(emulator_url: str, tmp_path: Path) -> None:
    credentials = tmp_path / "haorui.env"
    credentials.write_text(
        f"# demo account\nHAORUI_API_ID={DEMO_API_ID}\n"
        f"export HAORUI_API_PASSWORD='{DEMO_API_PASSWORD}'\nHAORUI_BASE_URL={emulator_url}\n"
    )
    result = CliRunner().invoke(
        app,
        [
            "send",
            PHONE,
            "hi",
            "--credentials-file",
            str(credentials),
            "--sender-id",
            "HAORUI",
            "--method",
            "get",
            "--sms-type",
            "p",
            "--encoding",
            "U",
        ],
        env={"HAORUI_API_ID": "", "HAORUI_API_PASSWORD": "", "HAORUI_BASE_URL": ""},
    )
    assert result.exit_code == EXIT_SENT, result.output


def test_send_refused_by_the_gateway_exits_1_without_showing_the_password(
    emulator_url: str,
) -> None:
    result = CliRunner().invoke(
        app, ["send", PHONE, "hi"], env=env_for(emulator_url, password="not-the-password")
    )
    assert result.exit_code == EXIT_FAILED
    assert "Invalid API credentials" in result.output
    assert "not-the-password" not in result.output


def test_send_rejected_by_http_exits_1(emulator_url: str) -> None:
    result = CliRunner().invoke(app, ["send", PHONE, "hi"], env=env_for(emulator_url + "/nowhere"))
    assert result.exit_code == EXIT_FAILED
    assert "Rejected" in result.output
    assert "may have been sent" not in result.output.split(".")[-1]


def test_send_whose_outcome_is_unknown_exits_3(failing_emulator_url: str) -> None:
    result = CliRunner().invoke(app, ["send", PHONE, "hi"], env=env_for(failing_emulator_url))
    assert result.exit_code == EXIT_UNKNOWN
    assert "check by its uid" in result.output


@pytest.mark.parametrize(
    ("arguments", "environment"),
    [
        (["send", "12", "hi"], None),
        (["send", PHONE, "hi", "--callback-url", "not a url"], None),
        (["send", PHONE, "hi"], {"HAORUI_API_PASSWORD": ""}),
    ],
)
def test_send_with_bad_input_exits_2_and_sends_nothing(
    emulator_url: str, arguments: list[str], environment: dict[str, str] | None
) -> None:
    before = httpx.get(emulator_url + "/_emulator/stats").json()["received"]
    result = CliRunner().invoke(
        app, arguments, env={**env_for(emulator_url), **(environment or {})}
    )
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert httpx.get(emulator_url + "/_emulator/stats").json()["received"] == before


def test_send_offers_no_password_option() -> None:
    result = CliRunner().invoke(app, ["send", "--help"])
    assert result.exit_code == 0
    assert "--credentials-file" in result.output
    assert "--api-password" not in result.output
    assert "--password" not in result.output


def test_the_emulator_command_refuses_a_bad_rate() -> None:
    result = CliRunner().invoke(app, ["emulator", "--rate-500", "2"])
    assert result.exit_code == 2
    assert "rate_500" in result.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_the_emulator_command_serves_until_sigterm() -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from haorui_async.cli import main; main()",
            "emulator",
            "--port",
            str(port),
            "--rate-503",
            "0.5",
            "--faults-accept",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == f"listening on http://127.0.0.1:{port}\n"
        stats = httpx.get(f"http://127.0.0.1:{port}/_emulator/stats", timeout=10).json()
        assert stats["received"] == 0
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out == ""


def test_demo_runs_on_the_fast_backend() -> None:
    result = CliRunner().invoke(app, ["demo", "-n", "50", "--backend", "fast"])
    assert result.exit_code == 0, result.output
    assert "backend: fast" in result.output
    assert re.search(r"\bsent\W+50\b", result.output), result.output


def test_demo_sends_one_then_fans_out_and_the_counts_add_up() -> None:
    result = CliRunner().invoke(app, ["demo", "-n", "150", "--concurrency", "4"])
    assert result.exit_code == 0, result.output
    assert "one SMS: status=S" in result.output
    assert "150 sends" in result.output
    assert re.search(r"\bsent\W+150\b", result.output), result.output
    assert "messages/s" in result.output
    assert "p99" in result.output
    assert '"accepted": 151' in result.output


def test_demo_with_faults_sorts_the_failures_into_classes() -> None:
    result = CliRunner().invoke(
        app, ["demo", "-n", "40", "--rate-500", "1", "--method", "GET", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"outcome unknown\W+40\b", result.output), result.output
    assert re.search(r"\bsent\W+0\b", result.output), result.output
    assert '"faults": {"500": 41}' in result.output


def test_demo_refuses_a_bad_emulator_option() -> None:
    result = CliRunner().invoke(app, ["demo", "--slow-rate", "3"])
    assert result.exit_code == 2


def test_emulator_arguments_pass_only_what_differs_from_the_defaults() -> None:
    assert emulator_arguments({"rate_503": 0.0, "seed": None, "record": "uids"}) == []
    assert emulator_arguments({"rate_503": 0.5, "faults_accept": True}) == [
        "--rate-503",
        "0.5",
        "--faults-accept",
    ]


def test_percentile_uses_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


@pytest.mark.slow
def test_the_installed_command_runs_the_demo() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", "from haorui_async.cli import main; main()", "demo", "-n", "200"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "200 sends" in completed.stdout


async def test_an_emulator_that_does_not_start_is_reported() -> None:
    with pytest.raises(click.ClickException, match="did not start"):
        async with emulator_process(["--rate-500", "2"]):
            pass  # pragma: no cover - never entered
