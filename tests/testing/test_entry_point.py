"""`python -m haorui_async.testing`: one `listening on` line, a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import io
import os
import runpy
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from haorui_async.testing import EmulatorConfig
from haorui_async.testing._cli import build_parser, config_from_options, main
from haorui_async.testing._server import run

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class _StopWhenListening(io.StringIO):
    """Captures the output of `run()`; once it says where it listens, asks for the stats and
    sends this process SIGTERM, as a supervisor would."""

    def __init__(self) -> None:
        super().__init__()
        self.stats: dict[str, object] = {}

    def flush(self) -> None:
        super().flush()
        url = self.getvalue().strip().removeprefix("listening on ")
        threading.Thread(target=self._stop, args=(url,)).start()

    def _stop(self, url: str) -> None:
        try:
            self.stats = httpx.get(url + "/_emulator/stats", timeout=5).json()
        finally:
            os.kill(os.getpid(), signal.SIGTERM)


def test_run_prints_one_line_and_stops_on_sigterm() -> None:
    out = _StopWhenListening()
    run(EmulatorConfig(record="totals"), "127.0.0.1", 0, out=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("listening on http://127.0.0.1:")
    assert not lines[0].endswith(":0")
    assert out.stats["record"] == "totals"


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


def test_an_option_out_of_range_exits_with_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--rate-500", "2"])
    assert caught.value.code == 2
    assert "rate_500" in capsys.readouterr().err


def test_main_serves_until_sigterm(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen: dict[str, object] = {}

    def use_then_stop() -> None:
        try:
            for _ in range(500):
                try:
                    seen.update(httpx.get(f"http://127.0.0.1:{port}/_emulator/stats").json())
                    break
                except httpx.TransportError:
                    time.sleep(0.02)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=use_then_stop).start()
    main(["--port", str(port), "--latency", "0.01"])
    assert capsys.readouterr().out == f"listening on http://127.0.0.1:{port}\n"
    assert seen["record"] == "uids"


def test_running_the_package_parses_the_command_line() -> None:
    with pytest.raises(SystemExit) as caught:
        runpy.run_module("haorui_async.testing", run_name="__main__", alter_sys=False)
    # pytest's own arguments are not the emulator's: a usage error, before anything starts.
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
