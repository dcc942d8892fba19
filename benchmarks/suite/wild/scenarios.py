"""The scenarios of the wild part (pure): what the server does, what the client runs on.

A scenario is one point of the matrix users run in: plain HTTP or TLS, the server answering
at once or after 100 ms, `C` sends in flight, the client's event loop (asyncio or uvloop);
plus the cold start, `C` new TLS connections opened at once. Its name says all of it:
`tls-100ms-c1000-uvloop`, `cold-tls-c1000-asyncio`.

The default run measures the scenarios the issue's targets are judged on (`DEFAULT_NAMES`);
`--scenario` picks others by name or glob pattern over the whole matrix (`MATRIX`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import Final, Literal

import attrs

from ..clients import BOUND_CLIENT

__all__ = [
    "CONCURRENCIES",
    "DEFAULT_NAMES",
    "DEFAULT_SIZES",
    "FULL_SIZES",
    "LATENCIES",
    "LOOPS",
    "MATRIX",
    "TRIMMED_CLIENT",
    "TRIM_FROM",
    "WILD_CLIENTS",
    "Scenario",
    "WildSizes",
    "clients_for",
    "select",
]

Loop = Literal["asyncio", "uvloop"]

#: Sends in flight: one at a time, a small pool, the SDK's default, a busy service, a burst.
CONCURRENCIES: Final = (1, 10, 100, 1000, 3000)
#: The server's latency, in seconds: at once, and a gateway 100 ms away.
LATENCIES: Final = (0.0, 0.1)
LOOPS: Final[tuple[Loop, ...]] = ("asyncio", "uvloop")
#: The clients of the wild part, every pool sized to C: the SDK's two backends and the
#: peers its ratios are taken against (raw httpx with its pool sized, aiohttp, the floor, and
#: the floor keeping the SDK's contract at its least).
WILD_CLIENTS: Final = (
    "sdk-httpx",
    "sdk-fast",
    "httpx-pooled",
    "aiohttp",
    "floor",
    BOUND_CLIENT,
)
#: Raw httpx from this concurrency up (and in the cold start) spends most of each measurement
#: failing or waiting out its time bound (PERF.md; about 15 s a measurement, 30 s a cold
#: start here): a default run leaves it out there (`trimmed`), `--full` or `--client` do not.
TRIM_FROM: Final = 1000
TRIMMED_CLIENT: Final = "httpx-pooled"


@attrs.frozen
class Scenario:
    """One point of the matrix.

    Attributes:
        tls: https with the run's own CA, else plain http.
        latency: seconds the server waits before answering.
        concurrency: sends in flight; for a cold start, connections opened at once.
        loop: the client's event loop.
        cold: a cold start: a fresh client sends `concurrency` messages at once, each on a
            new connection; what counts is the time to the last answer.
    """

    tls: bool
    latency: float
    concurrency: int
    loop: Loop = "asyncio"
    cold: bool = False

    @property
    def name(self) -> str:
        """`plain-0ms-c100-asyncio`, `cold-tls-c1000-asyncio`, ..."""
        scheme = "tls" if self.tls else "plain"
        if self.cold:
            return f"cold-{scheme}-c{self.concurrency}-{self.loop}"
        return f"{scheme}-{round(self.latency * 1000)}ms-c{self.concurrency}-{self.loop}"

    @property
    def ideal_rate(self) -> float | None:
        """`C / RTT` where the server's latency sets the round trip, else None (no ideal)."""
        if self.cold or self.latency <= 0:
            return None
        return self.concurrency / self.latency

    def describe(self) -> str:
        """One line for the report."""
        scheme = "HTTPS" if self.tls else "plain HTTP"
        if self.cold:
            return f"cold start: {self.concurrency:,} new {scheme} connections at once, {self.loop}"
        wait = f"{round(self.latency * 1000)} ms server latency" if self.latency else "no latency"
        return f"{scheme}, {wait}, C={self.concurrency:,}, {self.loop}"


def _matrix() -> dict[str, Scenario]:
    scenarios = [
        Scenario(tls=tls, latency=latency, concurrency=c, loop=loop)
        for loop in LOOPS
        for tls in (False, True)
        for latency in LATENCIES
        for c in CONCURRENCIES
    ]
    scenarios += [
        Scenario(tls=True, latency=0.0, concurrency=1000, loop=loop, cold=True) for loop in LOOPS
    ]
    return {s.name: s for s in scenarios}


#: Every scenario by name.
MATRIX: Final = _matrix()

#: What the issue's targets are judged on (see `targets`), in the order they run.
DEFAULT_NAMES: Final = (
    "plain-0ms-c100-asyncio",
    "tls-0ms-c100-asyncio",
    "plain-0ms-c100-uvloop",
    "plain-100ms-c1000-asyncio",
    "plain-100ms-c3000-asyncio",
    "tls-0ms-c1000-asyncio",
    "cold-tls-c1000-asyncio",
)


def clients_for(scenario: Scenario, clients: Sequence[str], *, trim: bool) -> list[str]:
    """The clients run in `scenario`: `clients`, where `trim` less raw httpx at C >=
    `TRIM_FROM` and in the cold start, and less `BOUND_CLIENT` (a bound for the targets that
    set the SDK against the floor) where no such target is: at C = `TRIM_FROM` and in the cold
    start."""
    if not trim:
        return list(clients)
    left_out = set()
    if scenario.cold or scenario.concurrency >= TRIM_FROM:
        left_out.add(TRIMMED_CLIENT)
    if scenario.cold or scenario.concurrency == TRIM_FROM:
        left_out.add(BOUND_CLIENT)
    return [c for c in clients if c not in left_out]


def select(patterns: Iterable[str]) -> list[Scenario]:
    """The scenarios whose names match any of `patterns` (names or globs), in matrix order.

    Raises `ValueError` naming a pattern that matches nothing.
    """
    patterns = list(patterns)
    unmatched = [p for p in patterns if not fnmatch.filter(MATRIX, p)]
    if unmatched:
        raise ValueError(
            f"no scenario matches {', '.join(unmatched)} "
            "(names look like plain-0ms-c100-asyncio, tls-100ms-c3000-uvloop, "
            "cold-tls-c1000-asyncio)"
        )
    return [s for name, s in MATRIX.items() if any(fnmatch.fnmatchcase(name, p) for p in patterns)]


@attrs.frozen
class WildSizes:
    """How long the wild part runs.

    Attributes:
        rounds: alternating rounds of every client in every scenario (best of them, medians).
        seconds: the measured window of one load measurement.
        lead: seconds of sending before the window opens, so it measures a steady state
            (and, at 100 ms latency, not the first round trip's empty pipe).
        count: the most messages one measurement sends (a bound; the window ends first).
        warmup_seconds: the warm-up's time bound (it is also bounded by 2 x C messages); it
            opens the connections, so the window measures a warm client.
        grace: how long sends in flight after the window may still take before they are
            cancelled and counted as unfinished; above the SDK's 5 s connect timeout.
        cold_grace: the cold start's bound: 1,000 TLS handshakes on a busy machine, and the
            SDK's retries of a connect timeout.
        wrk_seconds: each `wrk` run of the server check (it opens its C connections, at
            C=1000 over TLS, inside that time: 1 s understates the server).
    """

    rounds: int = 3
    seconds: float = 1.0
    lead: float = 0.2
    count: int = 500_000
    warmup_seconds: float = 0.2
    grace: float = 6.0
    cold_grace: float = 30.0
    wrk_seconds: float = 2.0


#: About four minutes on a 2-core machine for the default scenarios (105 worker processes).
DEFAULT_SIZES: Final = WildSizes()
#: `--full`: longer windows and more rounds, for figures worth quoting.
FULL_SIZES: Final = WildSizes(rounds=5, seconds=5.0, lead=1.0, warmup_seconds=1.0, wrk_seconds=5.0)
