"""The wild part's measurements: a steady window with the client's CPU, and the cold start.

`measure_window` keeps `C` sends in flight from start to end and counts only what happens
inside a window that opens after a lead-in and closes while sends still run: at 100 ms
latency, a run that started with an empty pipe and ended draining it would lose up to two
round trips of every measurement. At the window's two ends one callback reads, together,
the clock, the accepted count and the process's CPU time (`getrusage(RUSAGE_SELF)`, user +
system, every thread); CPU per message is their difference over the messages accepted in
between. The peak RSS is the process's high-water mark at the end (`peak_rss_bytes`). Where
the server's process is known, its CPU time is read at the same marks: how busy it was.

`measure_cold` starts `C` sends at once on a client that has no connection yet and times
the last answer.

Both are bounded in count and in time and stop by themselves; every error is counted by
class (the whole run: lead-in, window and tail).
"""

from __future__ import annotations

import array
import asyncio
import collections
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import attrs

from ..clients import Send
from ..load import error_class, finish_within, percentile

__all__ = [
    "Probe",
    "ServerCpu",
    "measure_cold",
    "measure_window",
    "peak_rss_bytes",
    "process_cpu_seconds",
]


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far, in bytes.

    On Linux, `VmHWM` of /proc/self/status: `ru_maxrss` is the same figure but survives
    `exec`, so a worker started by a parent of 90 MB reports at least 90 MB whatever it
    uses itself. Elsewhere, `ru_maxrss`.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux counts kibibytes, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def process_cpu_seconds(pid: int) -> float | None:
    """Another process's CPU seconds (user + system) from `/proc/PID/stat`, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            text = stat.read()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: count fields after its end.
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@attrs.frozen
class Probe:
    """One measurement of one client in one scenario.

    Attributes:
        concurrency: sends in flight (a cold start: connections opened at once).
        ok: accepted sends inside the window (a cold start: all of them).
        errors: failed sends by class, the whole run.
        window: the window's seconds (a cold start: the time to the last answer).
        cpu: the client process's CPU seconds (user + system) over the window.
        p50, p99: latency of the sends accepted in the window, in seconds (None: none).
        peak_rss: the process's peak RSS in bytes at the end.
        sent: every send started, the whole run.
        server_cpu: the server's CPU seconds over the same window, where it was read (nginx's
            worker, from /proc), else None.
    """

    concurrency: int
    ok: int
    errors: dict[str, int]
    window: float
    cpu: float
    p50: float | None
    p99: float | None
    peak_rss: int
    sent: int
    server_cpu: float | None = None

    @property
    def rate(self) -> float:
        """Accepted messages per second in the window."""
        return self.ok / self.window if self.window > 0 else 0.0

    @property
    def cpu_per_message(self) -> float | None:
        """Client CPU seconds per accepted message, or None when none was accepted."""
        return self.cpu / self.ok if self.ok else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, `rate` and `cpu_per_message` included."""
        return {**attrs.asdict(self), "rate": self.rate, "cpu_per_message": self.cpu_per_message}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Probe:
        """The inverse of `to_json()`."""
        return cls(
            concurrency=int(data["concurrency"]),
            ok=int(data["ok"]),
            errors={str(k): int(v) for k, v in data["errors"].items()},
            window=float(data["window"]),
            cpu=float(data["cpu"]),
            p50=None if data["p50"] is None else float(data["p50"]),
            p99=None if data["p99"] is None else float(data["p99"]),
            peak_rss=int(data["peak_rss"]),
            sent=int(data["sent"]),
            server_cpu=None if data.get("server_cpu") is None else float(data["server_cpu"]),
        )


ServerCpu = Callable[[], float | None]


def _no_server() -> float | None:
    return None


def _difference(end: float | None, begin: float | None) -> float | None:
    return None if end is None or begin is None else end - begin


@attrs.define
class _Mark:
    at: float
    ok: int
    cpu: float
    server: float | None


async def measure_window(
    send: Send,
    *,
    concurrency: int,
    count: int,
    lead: float,
    seconds: float,
    grace: float,
    server_cpu: ServerCpu = _no_server,
) -> Probe:
    """`C` sends in flight; measure the window `[lead, lead + seconds]` of the run.

    No send starts once the window closed or `count` sends started; sends in flight then get
    `grace` seconds more, and the ones still running are cancelled and counted as
    unfinished. Should every send end before the window opens (a small `count`), the window
    is the whole run instead.
    """
    clock = time.perf_counter
    errors: collections.Counter[str] = collections.Counter()
    # Doubles, not a list of floats: the latencies must not weigh on the client's RSS.
    latencies = array.array("d")
    recording = True
    stopping = False
    started = accepted = 0

    async def worker() -> None:
        nonlocal started, accepted
        while not stopping and started < count:
            started += 1
            sent_at = clock()
            try:
                await send()
            except Exception as exc:
                errors[error_class(exc)] += 1
            else:
                accepted += 1
                if recording:
                    latencies.append(clock() - sent_at)

    def mark() -> _Mark:
        return _Mark(at=clock(), ok=accepted, cpu=_cpu_seconds(), server=server_cpu())

    first = mark()
    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    _, pending = await asyncio.wait(tasks, timeout=lead)
    if pending:
        begin = mark()
        del latencies[:]
        await asyncio.wait(pending, timeout=seconds)
    else:
        begin = first
    end = mark()
    recording = False
    stopping = True
    await finish_within(tasks, grace, errors)
    ordered = sorted(latencies)
    return Probe(
        concurrency=concurrency,
        ok=end.ok - begin.ok,
        errors=dict(errors),
        window=end.at - begin.at,
        cpu=end.cpu - begin.cpu,
        p50=percentile(ordered, 0.50),
        p99=percentile(ordered, 0.99),
        peak_rss=peak_rss_bytes(),
        sent=started,
        server_cpu=_difference(end.server, begin.server),
    )


async def measure_cold(
    send: Send, *, connections: int, grace: float, server_cpu: ServerCpu = _no_server
) -> Probe:
    """Start `connections` sends at once on a fresh client; time the last answer.

    Sends still running after `grace` seconds are cancelled and counted as unfinished. The
    window runs from the start to the last answer, accepted or not.
    """
    clock = time.perf_counter
    errors: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    last = 0.0

    async def one() -> None:
        nonlocal last
        try:
            await send()
        except Exception as exc:
            errors[error_class(exc)] += 1
        else:
            latencies.append(clock() - begin)
        last = max(last, clock())

    cpu = _cpu_seconds()
    server = server_cpu()
    begin = clock()
    tasks = [asyncio.create_task(one()) for _ in range(connections)]
    if await finish_within(tasks, grace, errors):
        last = clock()
    cpu = _cpu_seconds() - cpu
    server = _difference(server_cpu(), server)
    latencies.sort()
    return Probe(
        concurrency=connections,
        ok=len(latencies),
        errors=dict(errors),
        window=max(0.0, last - begin),
        cpu=cpu,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        peak_rss=peak_rss_bytes(),
        sent=connections,
        server_cpu=server,
    )
