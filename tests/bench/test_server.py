from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import httpx
import pytest

from benchmarks.suite.account import payload_bytes
from benchmarks.suite.server import ensure_wrk, parse_wrk, run_wrk
from haorui_async._defaults import SEND_SMS_PATH
from haorui_async.testing import EmulatorProcess

WRK_REPORT = """Running 2s test @ http://127.0.0.1:8000/api/SendSMS
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.45us  201.11us   4.12ms   88.21%
  31021 requests in 2.00s, 4.52MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  15503.91
Transfer/sec:      2.26MB
"""


def _script(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_wrk_report_gives_the_rate_and_the_non_2xx_answers() -> None:
    assert parse_wrk(WRK_REPORT) == (15503.91, 3)
    assert parse_wrk("Requests/sec: 10.5\n") == (10.5, 0)
    assert parse_wrk("unable to connect to 127.0.0.1:1 Connection refused") is None


def test_run_wrk_collects_each_concurrency_and_notes_the_ones_without_a_figure(
    tmp_path: Path,
) -> None:
    # A stand-in for wrk: a figure at every concurrency but 1000.
    wrk = _script(
        tmp_path, "wrk", f'case "$2" in -c1000) exit 1;; esac\ncat <<"END"\n{WRK_REPORT}END\n'
    )
    ceiling = run_wrk(str(wrk), "http://127.0.0.1:9", [1, 10, 1000], seconds=1, note="found")
    assert ceiling.tool == "wrk"
    assert ceiling.rates == {1: 15503.91, 10: 15503.91}
    assert ceiling.non_2xx == {1: 3, 10: 3}
    assert ceiling.note == "found; wrk gave no figure at C=1000"
    assert ceiling.best == 15503.91
    assert ceiling.to_json()["rates"] == {"1": 15503.91, "10": 15503.91}


def test_run_wrk_without_any_figure_has_no_tool_and_no_best(tmp_path: Path) -> None:
    wrk = _script(tmp_path, "wrk", "exit 1\n")
    ceiling = run_wrk(str(wrk), "http://127.0.0.1:9", [1], seconds=1, note="found")
    assert ceiling.tool == ""
    assert ceiling.best is None


def test_ensure_wrk_finds_wrk_on_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wrk = _script(tmp_path, "wrk", "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert ensure_wrk() == (str(wrk), "wrk found on PATH")


def test_ensure_wrk_installs_with_apt_get_after_an_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for apt-get: `install` fails until `update` has run, then puts wrk on PATH.
    _script(
        tmp_path,
        "apt-get",
        f'''D="{tmp_path}"
case "$1" in
  update) {shutil.which("touch")} "$D/lists";;
  install) [ -f "$D/lists" ] || exit 100
           echo '#!/bin/sh' > "$D/wrk"; {shutil.which("chmod")} +x "$D/wrk";;
esac
''',
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert ensure_wrk() == (str(tmp_path / "wrk"), "wrk installed with apt-get")


def test_ensure_wrk_says_why_when_apt_get_cannot_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # apt-get claims success, yet no wrk appears.
    _script(tmp_path, "apt-get", "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert ensure_wrk() == (None, "wrk could not be installed with apt-get")


def test_ensure_wrk_does_not_install_when_not_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _script(tmp_path, "apt-get", "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    found, note = ensure_wrk()
    assert found is None
    assert "not available" in note


def test_the_emulator_answers_the_benchmark_request(emulator: EmulatorProcess) -> None:
    assert emulator.base_url.startswith("http://127.0.0.1:")
    accepted = httpx.post(emulator.base_url + SEND_SMS_PATH, content=payload_bytes("u1"))
    assert accepted.json()["status"] == "S"
