"""The gateway under load, and its own ceiling.

The server is the package's emulator (`python -m haorui_async.testing`: uvicorn, with uvloop
and httptools when installed), started by the testing kit's `EmulatorProcess` on 127.0.0.1.
Its ceiling is measured with `wrk`, a load generator in C, so a reader sees whether the
server, not the client, limited a figure.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from haorui_async._defaults import SEND_SMS_PATH

from . import account

__all__ = [
    "SERVER_NAME",
    "Ceiling",
    "apt_install",
    "can_apt_install",
    "child_env",
    "ensure_command",
    "ensure_wrk",
    "parse_wrk",
    "run_wrk",
]

#: How the results name the server.
SERVER_NAME: Final = "emulator (python -m haorui_async.testing)"
#: How long apt-get may take (an `update` on a slow mirror takes a minute).
APT_TIMEOUT: Final = 300.0
#: The checkout's root: the parent of `benchmarks/` (and of `haorui_async/` when the package
#: is not installed).
ROOT: Final = str(Path(__file__).resolve().parents[2])


#: glibc's allocator thresholds, fixed in every worker (unless the caller's environment sets
#: them): see `child_env`.
ALLOCATOR_ENV: Final = {
    "MALLOC_MMAP_THRESHOLD_": str(1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(4 * 1024 * 1024),
}


def child_env() -> dict[str, str]:
    """The environment of a worker process: this one's, with `benchmarks` importable, and
    glibc's allocator thresholds fixed (`ALLOCATOR_ENV`).

    The workers run `python -m benchmarks.suite.worker`, which the checkout's root on
    `PYTHONPATH` finds from any working directory (and with it a package not installed).

    The thresholds: a client reading with asyncio's own `recv` (asyncio streams, so the
    floor; aiohttp; httpx on anyio) allocates 256 KiB per read and shrinks it to what came.
    Left to glibc's dynamic threshold, some processes then pay an mmap, an mremap and a
    munmap per read, others (where an earlier free raised the threshold) none: the floor's
    CPU per message swung from 23 to 43 µs from one round to the next (`strace -c` of the
    worker). Fixed, every client gets the cheap case; the SDK's pool reads into one buffer
    it reuses and pays neither way.
    """
    paths = [ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {
        **ALLOCATOR_ENV,
        **os.environ,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
    }


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


def can_apt_install() -> bool:
    """Whether Debian packages can be installed here: apt-get on PATH, and root."""
    return shutil.which("apt-get") is not None and hasattr(os, "geteuid") and os.geteuid() == 0


def apt_install(*packages: str) -> None:
    """`apt-get install -y PACKAGES`, after `apt-get update` when the first try fails.

    Best effort: the caller looks for what it needs afterwards. Each call is bounded by
    `APT_TIMEOUT`.
    """
    apt = shutil.which("apt-get")
    if apt is None:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}

    def apt_get(*args: str) -> bool:
        try:
            done = subprocess.run(
                [apt, *args], env=env, capture_output=True, timeout=APT_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung apt-get
            return False
        return done.returncode == 0

    if not apt_get("install", "-y", *packages):
        # A fresh image has no package lists yet.
        apt_get("update")
        apt_get("install", "-y", *packages)


def ensure_command(name: str) -> tuple[str | None, str]:
    """The path of the command `name`, installing Debian's package of that name when
    missing and root; or None and why not."""
    found = shutil.which(name)
    if found:
        return found, f"{name} found on PATH"
    if not can_apt_install():
        return None, f"{name} is not installed, and apt-get as root is not available to install it"
    apt_install(name)
    found = shutil.which(name)
    if found:
        return found, f"{name} installed with apt-get"
    return None, f"{name} could not be installed with apt-get"


def ensure_wrk() -> tuple[str | None, str]:
    """The path of `wrk` (`ensure_command`), or None and why not."""
    return ensure_command("wrk")


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
    wrk: str,
    url: str,
    concurrencies: Sequence[int],
    *,
    seconds: float,
    note: str,
    cpu: int | None = None,
) -> Ceiling:
    """Measure the server's SendSMS ceiling with `wrk` (one thread) at each concurrency.

    One thread leaves the second core of a 2-core machine to the server; `cpu` pins wrk to
    that one core (where the clients run). Each run is bounded by wrk's own `-d` and by a
    subprocess timeout.
    """
    script = (
        'wrk.method = "POST"\n'
        f"wrk.body = {_lua_string(account.payload_bytes().decode('ascii'))}\n"
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
                url + SEND_SMS_PATH,
            ]
            try:
                done = subprocess.run(
                    command,
                    capture_output=True,
                    text=True,
                    timeout=duration + 30,
                    check=False,
                    preexec_fn=None if cpu is None else functools.partial(_pin, cpu),
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


def _pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
