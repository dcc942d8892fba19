"""`haorui-async send`, `emulator` and `demo`, through click's CliRunner (and one real run)."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

from haorui_async._bulk import KINDS
from haorui_async.cli._app import app
from haorui_async.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_SENT,
    EXIT_UNKNOWN,
    percentile,
)
from haorui_async.cli._demo import emulator_arguments
from haorui_async.cli._emulator import emulator_process
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD

from .conftest import ROOT, without_modules

pytestmark = pytest.mark.integration

PHONE = "+86 139 1234 5678"
#: The arguments to `python` that run the installed `haorui-async` command.
COMMAND = ["-c", "from haorui_async.cli import main; main()"]


def env_for(url: str, password: str = DEMO_API_PASSWORD) -> dict[str, str]:
    return {
        "HAORUI_API_ID": DEMO_API_ID,
        "HAORUI_API_PASSWORD": password,
        "HAORUI_BASE_URL": url,
        "HAORUI_SENDER_ID": "HAORUI",
    }


def stats(emulator_url: str) -> dict[str, Any]:
    """The emulator's counters."""
    counters: dict[str, Any] = httpx.get(emulator_url + "/_emulator/stats", timeout=10).json()
    return counters


def run_python(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python *arguments` to its end (at most a minute); its exit code and output."""
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def assert_install_hint(completed: subprocess.CompletedProcess[str], hint: str) -> None:
    """Check that a command missing an extra exited 2 with `hint`, and no traceback."""
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    assert hint in completed.stderr


def test_send_prints_the_message_id_and_exits_0(emulator_url: str) -> None:
    result = CliRunner().invoke(
        app, ["send", PHONE, "Your code is 1", "--uid", "cli-1"], env=env_for(emulator_url)
    )
    assert result.exit_code == EXIT_SENT, result.output
    assert "sent: message_id=" in result.output
    assert "uid=cli-1" in result.output
    assert stats(emulator_url)["accepted"] >= 1


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


def test_send_rejected_by_http_exits_1_and_states_each_fact_once(emulator_url: str) -> None:
    result = CliRunner().invoke(app, ["send", PHONE, "hi"], env=env_for(emulator_url + "/nowhere"))
    assert result.exit_code == EXIT_FAILED
    assert result.output.startswith("rejected: "), result.output
    assert "Rejected" in result.output
    assert result.output.count("HTTP 404") == 1, result.output
    assert result.output.count("uid=") == 1, result.output
    assert "may have been sent" not in result.output


def test_send_whose_outcome_is_unknown_exits_3_and_says_so_once(
    failing_emulator_url: str,
) -> None:
    result = CliRunner().invoke(app, ["send", PHONE, "hi"], env=env_for(failing_emulator_url))
    assert result.exit_code == EXIT_UNKNOWN
    assert result.output.startswith("unknown: "), result.output
    assert "check by its uid" in result.output
    assert result.output.count("HTTP 500") == 1, result.output
    assert result.output.count("may have been sent") == 1, result.output


def test_send_without_a_sender_id_names_the_option_and_the_variable_and_sends_nothing(
    emulator_url: str,
) -> None:
    before = stats(emulator_url)["received"]
    result = CliRunner().invoke(
        app, ["send", PHONE, "hi"], env={**env_for(emulator_url), "HAORUI_SENDER_ID": None}
    )
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert "--sender-id" in result.output
    assert "HAORUI_SENDER_ID" in result.output
    assert "AsyncSender(" not in result.output
    assert stats(emulator_url)["received"] == before


def every_command(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    """Every command under `group`, by its full name ("campaign enqueue")."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        found[prefix + name] = command
        if isinstance(command, click.Group):
            found.update(every_command(command, f"{prefix}{name} "))
    return found


def test_every_command_with_a_sender_id_option_reads_it_from_haorui_sender_id() -> None:
    with_option = {
        name: param
        for name, command in every_command(app).items()
        for param in command.params
        if param.name == "sender_id"
    }
    assert set(with_option) == {"send", "bulk", "bench", "campaign enqueue", "worker"}
    assert {param.envvar for param in with_option.values()} == {"HAORUI_SENDER_ID"}


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
    before = stats(emulator_url)["received"]
    result = CliRunner().invoke(
        app, arguments, env={**env_for(emulator_url), **(environment or {})}
    )
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert stats(emulator_url)["received"] == before


def test_send_offers_no_password_option() -> None:
    result = CliRunner().invoke(app, ["send", "--help"])
    assert result.exit_code == 0
    assert "--credentials-file" in result.output
    assert "--api-password" not in result.output
    assert "--password" not in result.output


def test_the_emulator_without_uvicorn_prints_the_install_hint_and_exits_2(
    tmp_path: Path,
) -> None:
    completed = run_python(
        "-m", "haorui_async.testing", "--port", "0", env=without_modules(tmp_path, "uvicorn")
    )
    assert_install_hint(completed, "needs uvicorn: pip install 'haorui-async[emulator]'")
    assert completed.stdout == ""


def test_the_emulator_command_without_uvicorn_prints_the_install_hint_and_exits_2(
    tmp_path: Path,
) -> None:
    completed = run_python(*COMMAND, "emulator", env=without_modules(tmp_path, "uvicorn"))
    assert_install_hint(completed, "needs uvicorn: pip install 'haorui-async[emulator]'")


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
            *COMMAND,
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
        assert stats(f"http://127.0.0.1:{port}")["received"] == 0
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


def test_demo_with_faults_counts_the_outcomes_by_kind() -> None:
    result = CliRunner().invoke(
        app, ["demo", "-n", "40", "--rate-500", "1", "--method", "GET", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    rows = re.findall(r"^\W*([a-z_]+)\W+(\d+)\W*$", result.output, flags=re.MULTILINE)
    expected = [(kind, "40" if kind == "unknown" else "0") for kind in KINDS]
    assert rows == [*expected, ("total", "40")], result.output
    assert "one SMS: unknown: gateway answered HTTP 500 (OutcomeUnknown" in result.output
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
    completed = run_python(*COMMAND, "demo", "-n", "200", cwd=ROOT)
    assert completed.returncode == 0, completed.stderr
    assert "200 sends" in completed.stdout


async def test_an_emulator_that_does_not_start_is_reported() -> None:
    with pytest.raises(click.ClickException, match="did not start"):
        async with emulator_process(["--rate-500", "2"]):
            pass  # pragma: no cover - never entered
