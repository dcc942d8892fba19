"""The gateway under load, in its own process on 127.0.0.1, and its own ceiling.

The server is the package's emulator (`python -m haorui_async.testing`: uvicorn, with uvloop
and httptools when installed); it prints `listening on http://HOST:PORT` when ready and stops
on SIGTERM. Its ceiling is measured with `wrk`, a load generator in C, so a reader sees
whether the server, not the client, limited a figure.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from . import _account

__all__ = [
    "Ceiling",
    "ServerProcess",
    "child_env",
    "ensure_wrk",
    "parse_wrk",
    "run_wrk",
    "server_command",
    "start_server",
]

LOOPBACK: Final = "127.0.0.1"
#: How long a server may take to say it is listening.
START_TIMEOUT: Final = 30.0
#: How long apt-get may take (an `update` on a slow mirror takes a minute).
APT_TIMEOUT: Final = 300.0


def child_env() -> dict[str, str]:
    """The environment of a child process: this one's, with this package importable.

    A checkout that is not installed is found through the working directory only; the
    children may run elsewhere, so the package's parent directory goes on `PYTHONPATH`.
    """
    root = str(Path(__file__).resolve().parents[2])
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths))}


def server_command(host: str = LOOPBACK) -> tuple[list[str], str]:
    """The command that starts the emulator on `host`, any free port, and its name."""
    command = [sys.executable, "-m", "haorui_async.testing", "--host", host, "--port", "0"]
    return command, "emulator (python -m haorui_async.testing)"


@attrs.define(eq=False)
class ServerProcess:
    """A running server process and its base URL."""

    process: subprocess.Popen[str]
    url: str
    name: str

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def start_server(command: Sequence[str] | None = None, name: str = "") -> Iterator[ServerProcess]:
    """Start the server (see `server_command()`), yield it once it listens, stop it after.

    Raises `RuntimeError` when it exits or stays silent for `START_TIMEOUT` seconds.
    """
    if command is None:
        command, name = server_command()
    process = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=child_env(),
    )
    assert process.stdout is not None
    stdout = process.stdout
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    match = re.search(r"listening on (http://\S+)", line[0]) if line else None
    if match is None:
        process.kill()
        process.wait()
        stdout.close()
        raise RuntimeError(f"the server {list(command)} did not report `listening on ...`")
    server = ServerProcess(process=process, url=match.group(1).rstrip("/"), name=name)
    try:
        yield server
    finally:
        server.stop()
        stdout.close()


# -- the ceiling ----------------------------------------------------------------------------


@attrs.frozen
class Ceiling:
    """The server's own throughput under `wrk` at each concurrency, or why it is unknown.

    Attributes:
        tool: "wrk", or "" when it could not be measured.
        rates: requests per second by concurrency.
        non_2xx: answers other than 2xx by concurrency (a ceiling of errors is no ceiling).
        note: why the ceiling is missing, or how it was obtained.
    """

    tool: str
    rates: dict[int, float]
    non_2xx: dict[int, int]
    note: str

    @property
    def best(self) -> float | None:
        """The highest rate measured, or None."""
        return max(self.rates.values()) if self.rates else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "tool": self.tool,
            "rates": {str(k): v for k, v in self.rates.items()},
            "non_2xx": {str(k): v for k, v in self.non_2xx.items()},
            "note": self.note,
            "best": self.best,
        }


def ensure_wrk() -> tuple[str | None, str]:
    """The path of `wrk`, installing Debian's package when missing and root; or why not."""
    found = shutil.which("wrk")
    if found:
        return found, "wrk found on PATH"
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None, "wrk is not installed, and apt-get as root is not available to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt_get(*args: str) -> bool:
        try:
            done = subprocess.run(
                [apt, *args], env=env, capture_output=True, timeout=APT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung apt-get
            return False
        return done.returncode == 0

    if not apt_get("install", "-y", "wrk"):
        # A fresh image has no package lists yet.
        apt_get("update")
        apt_get("install", "-y", "wrk")
    found = shutil.which("wrk")
    if found:
        return found, "wrk installed with apt-get"
    return None, "wrk could not be installed with apt-get"


_WRK_RATE: Final = re.compile(r"Requests/sec:\s*([0-9.]+)")
_WRK_NON_2XX: Final = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")


def parse_wrk(output: str) -> tuple[float, int] | None:
    """`(requests per second, non-2xx answers)` from wrk's report, or None if absent."""
    rate = _WRK_RATE.search(output)
    if rate is None:
        return None
    non_2xx = _WRK_NON_2XX.search(output)
    return float(rate.group(1)), int(non_2xx.group(1)) if non_2xx else 0


def run_wrk(
    wrk: str, url: str, concurrencies: Sequence[int], *, seconds: float, note: str
) -> Ceiling:
    """Measure the server's SendSMS ceiling with `wrk` (one thread) at each concurrency.

    One thread leaves the second core of a 2-core machine to the server. Each run is bounded
    by wrk's own `-d` and by a subprocess timeout.
    """
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {_lua_string(_account.payload_bytes().decode('ascii'))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    rates: dict[int, float] = {}
    non_2xx: dict[int, int] = {}
    failures: list[str] = []
    duration = max(1, round(seconds))
    with tempfile.TemporaryDirectory() as tmp:
        script_path = Path(tmp, "sendsms.lua")
        script_path.write_text(script, encoding="utf-8")
        for concurrency in concurrencies:
            command = [
                wrk,
                "-t1",
                f"-c{concurrency}",
                f"-d{duration}s",
                "--timeout",
                "5s",
                "-s",
                str(script_path),
                url + _account.SEND_SMS_PATH,
            ]
            try:
                done = subprocess.run(
                    command, capture_output=True, text=True, timeout=duration + 30, check=False
                )
                parsed = parse_wrk(done.stdout)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung wrk
                parsed = None
            if parsed is None:
                failures.append(f"C={concurrency}")
                continue
            rates[concurrency], non_2xx[concurrency] = parsed
    if failures:
        note += f"; wrk gave no figure at {', '.join(failures)}"
    return Ceiling(tool="wrk" if rates else "", rates=rates, non_2xx=non_2xx, note=note)


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
