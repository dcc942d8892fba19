"""`haorui-async bench`: the SDK alone against a gateway (an emulator here), or the emulator."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from haorui_async.cli._app import app
from haorui_async.cli._common import EXIT_SENT, EXIT_UNKNOWN
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, DEMO_SENDER_ID

from .conftest import without_modules

pytestmark = pytest.mark.integration

CREDENTIALS = {
    "HAORUI_API_ID": DEMO_API_ID,
    "HAORUI_API_PASSWORD": DEMO_API_PASSWORD,
    "HAORUI_SENDER_ID": DEMO_SENDER_ID,
}
PHONE = "8613912345678"


def _outcomes(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("outcomes: "))
    pairs = re.findall(r"([a-z_]+) ([\d,]+)", line.removeprefix("outcomes: "))
    return {kind: int(count.replace(",", "")) for kind, count in pairs}


def _received(url: str) -> int:
    received: int = httpx.get(url + "/_emulator/stats", timeout=10).json()["received"]
    return received


def test_bench_without_a_url_starts_the_emulator_and_prints_rate_latency_and_outcomes() -> None:
    result = CliRunner().invoke(app, ["bench", "--count", "60", "--concurrency", "4"])
    assert result.exit_code == EXIT_SENT, result.output
    assert "(the built-in emulator, in a subprocess)" in result.output
    assert "60 sends to http://127.0.0.1:" in result.output
    assert "backend httpx, POST, 4 in flight" in result.output
    assert re.search(
        r"[\d,]+ messages/s over [\d.]+ s; latency p50 [\d.]+ ms, p99 [\d.]+ ms", result.output
    )
    assert _outcomes(result.output) == {
        "sent": 60,
        "failed": 0,
        "rejected": 0,
        "not_sent": 0,
        "unknown": 0,
        "invalid": 0,
    }


def test_bench_sends_to_the_url_with_the_backend_and_method_asked_for(emulator_url: str) -> None:
    before = _received(emulator_url)
    args = ["bench", "--url", emulator_url, "--to", PHONE, "-n", "30", "-c", "3"]
    result = CliRunner().invoke(
        app, [*args, "--backend", "fast", "--method", "get"], env=CREDENTIALS
    )
    assert result.exit_code == EXIT_SENT, result.output
    assert f"30 sends to {emulator_url}: backend fast, GET, 3 in flight" in result.output
    assert _outcomes(result.output)["sent"] == 30
    assert _received(emulator_url) - before == 30


def test_bench_counts_failures_by_kind_and_exits_as_bulk_does(failing_emulator_url: str) -> None:
    args = ["bench", "--url", failing_emulator_url, "--to", PHONE, "-n", "5", "-c", "2"]
    result = CliRunner().invoke(app, args, env=CREDENTIALS)
    assert result.exit_code == EXIT_UNKNOWN, result.output
    assert _outcomes(result.output)["unknown"] == 5
    assert _outcomes(result.output)["sent"] == 0
    assert "first failure: unknown: gateway answered HTTP 500" in result.output


def test_bench_says_why_messages_are_invalid(emulator_url: str) -> None:
    env = {**CREDENTIALS, "HAORUI_SENDER_ID": None}
    args = ["bench", "--url", emulator_url, "--to", PHONE, "-n", "3"]
    result = CliRunner().invoke(app, args, env=env)
    assert _outcomes(result.output)["invalid"] == 3
    assert "first failure: invalid: " in result.output
    assert "sender_id" in result.output


def test_bench_with_a_url_needs_a_phone_number(emulator_url: str) -> None:
    before = _received(emulator_url)
    result = CliRunner().invoke(app, ["bench", "--url", emulator_url], env=CREDENTIALS)
    assert result.exit_code == 2
    assert "--to" in result.output
    assert _received(emulator_url) == before


def test_bench_with_a_url_and_no_credentials_is_bad_input(emulator_url: str) -> None:
    env = {"HAORUI_API_ID": None, "HAORUI_API_PASSWORD": None}
    result = CliRunner().invoke(app, ["bench", "--url", emulator_url, "--to", PHONE], env=env)
    assert result.exit_code == 2, result.output
    assert "api_id" in result.output


def test_the_installed_bench_needs_neither_aiohttp_nor_matplotlib(tmp_path: Path) -> None:
    env = without_modules(tmp_path, "aiohttp", "matplotlib")
    completed = subprocess.run(
        [sys.executable, "-c", "from haorui_async.cli import main; main()", "bench", "-n", "20"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert completed.returncode == EXIT_SENT, completed.stderr
    assert "outcomes: sent 20," in completed.stdout
