"""`python -m haorui_async.testing`: one `listening on` line, a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from haorui_async.testing._cli import build_parser, config_from_options, main

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_module_entry_point_stops_cleanly(stop: signal.Signals) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "haorui_async.testing", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.strip().removeprefix("listening on ")
        answer = httpx.post(
            url + "/api/SendSMS",
            json={
                "api_id": "API43404236",
                "api_password": "demo-password",
                "sms_type": "T",
                "encoding": "T",
                "sender_id": "HAORUI",
                "phonenumber": "8613912345678",
                "textmessage": "hi",
            },
        ).json()
        assert answer["status"] == "S"
        stats = httpx.get(url + "/_emulator/stats").json()
        assert stats["record"] == "uids"
        process.send_signal(stop)
        rest, errors = process.communicate(timeout=20)
    finally:
        if process.poll() is None:  # pragma: no cover - only when a check above failed
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert rest == ""
    assert errors == ""


def test_the_parser_builds_a_config_from_every_option() -> None:
    options = vars(
        build_parser().parse_args(
            ["--rate-503", "0.25", "--faults-accept", "--seed", "7", "--record", "totals"]
        )
    )
    config = config_from_options(options)
    assert config.rate_503 == 0.25
    assert config.faults_accept is True
    assert config.seed == 7
    assert config.record == "totals"
    assert options["port"] == 0


def test_the_parser_takes_the_lookup_and_lost_answer_options() -> None:
    defaults = config_from_options(vars(build_parser().parse_args([])))
    assert (defaults.lookup_lag, defaults.lookup_faults, defaults.rate_lose_answer) == (
        0.0,
        False,
        0.0,
    )
    assert (defaults.balance, defaults.currency) == (1000.0, "UGX")
    options = vars(
        build_parser().parse_args(
            [
                "--lookup-lag",
                "2.5",
                "--lookup-faults",
                "--rate-lose-answer",
                "0.1",
                "--balance",
                "12.5",
                "--currency",
                "USD",
            ]
        )
    )
    config = config_from_options(options)
    assert (config.lookup_lag, config.lookup_faults, config.rate_lose_answer) == (2.5, True, 0.1)
    assert (config.balance, config.currency) == (12.5, "USD")
    assert config.rates().rate_lose_answer == 0.1


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--lookup-lag", "-1"], "lookup_lag"),
        (["--balance", "inf"], "balance"),
        (["--rate-lose-answer", "0.6", "--rate-503", "0.6"], "more than 1"),
    ],
)
def test_a_bad_lookup_option_exits_with_a_usage_error(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert field in capsys.readouterr().err


def test_an_option_out_of_range_exits_with_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--rate-500", "2"])
    assert caught.value.code == 2
    assert "rate_500" in capsys.readouterr().err


def test_running_the_package_parses_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # An option out of range: a usage error before anything starts (never a server left running).
    monkeypatch.setattr(sys, "argv", ["python -m haorui_async.testing", "--rate-500", "2"])
    with pytest.raises(SystemExit) as caught:
        runpy.run_module("haorui_async.testing", run_name="__main__", alter_sys=False)
    assert caught.value.code == 2


def test_the_server_part_is_imported_on_demand_only() -> None:
    import haorui_async.testing as kit

    assert kit.serve.__name__ == "serve"
    assert kit.__all__ == sorted(kit.__all__)
    assert all(getattr(kit, name) is not None for name in kit.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        kit.nothing  # noqa: B018


def test_without_uvicorn_the_fake_works_and_serve_says_what_to_install() -> None:
    script = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "import haorui_async.testing as kit\n"
        "kit.FakeGateway()\n"
        "try:\n"
        "    kit.serve\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=True,
    )
    assert "pip install 'haorui-async[emulator]'" in completed.stdout
