"""The issue's targets, each a ratio computed from one run with a verdict (pure); and whether
the server was the limit.

| scenario | default backend (sdk-httpx) | fast backend (sdk-fast) |
|---|---|---|
| client CPU per message, C=100, plain and TLS | <= 1.0x aiohttp | <= 1.3x the floor |
| 100 ms latency, C=1000 | >= 0.9 of C/RTT | >= 0.9 of C/RTT |
| 100 ms latency, C=3000 | — | >= 1.0x the floor's share |
| TLS, C=1000: client RSS | <= 150 MB | <= 150 MB |
| cold start, 1,000 TLS connections | <= 1.0x aiohttp's time | <= 1.0x aiohttp's time |

and the fast backend's CPU per message on uvloop <= 0.7x its figure on asyncio. A target
passes when its figure is within the bound and the SDK's own measurement had no error at all
(warm-ups and crashed rounds included); it is "n/a" when a side was not run or never
succeeded. C/RTT takes the server's latency as the round trip (loopback adds microseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import attrs

from .results import Cell
from .scenarios import MATRIX

__all__ = [
    "BUSY_LIMIT",
    "HEADROOM",
    "ISSUE_TARGETS",
    "Check",
    "ServerCheck",
    "Target",
    "check_server",
    "evaluate",
]

Metric = Literal["cpu", "rate", "rss", "time"]
Verdict = Literal["pass", "fail", "n/a"]

#: The server is "not the limit" where wrk took at least this many times the best client's
#: rate from it...
HEADROOM: Final = 1.25
#: ... or, at 100 ms latency, where wrk reached this share of C/RTT ...
IDEAL_SHARE: Final = 0.95
#: ... or where its worker kept below this share of its core during every client's window.
BUSY_LIMIT: Final = 0.8


@attrs.frozen
class Target:
    """One bound of the issue's table.

    Attributes:
        row: the table's scenario column.
        client: the SDK client judged (`sdk-httpx`, `sdk-fast`).
        scenario: where its figure is taken.
        metric: "cpu" (per message), "rate" (msg/s), "rss" (peak, MB), "time" (cold start).
        limit: the bound.
        at_most: True: the figure must be <= `limit`; False: >= `limit`.
        peer: the client the figure is divided by (None: no division).
        peer_scenario: where the peer's figure is taken (None: the same scenario).
        ideal: divide the rate by the scenario's C / RTT instead.
        wording: how the issue words the bound.
    """

    row: str
    client: str
    scenario: str
    metric: Metric
    limit: float
    at_most: bool
    wording: str
    peer: str | None = None
    peer_scenario: str | None = None
    ideal: bool = False


_CPU_PLAIN = "client CPU per message, C=100, plain"
_CPU_TLS = "client CPU per message, C=100, TLS"
_LATENCY_1000 = "100 ms latency, C=1000"
_LATENCY_3000 = "100 ms latency, C=3000"
_RSS = "TLS, C=1000: client RSS"
_COLD = "cold start, 1,000 TLS connections"
_UVLOOP = "fast backend's CPU per message: uvloop / asyncio (plain, C=100)"

#: The issue's targets, in its table's order (rows), default backend first.
ISSUE_TARGETS: Final = (
    Target(_CPU_PLAIN, "sdk-httpx", "plain-0ms-c100-asyncio", "cpu", 1.0, True,
           "<= 1.0x aiohttp", peer="aiohttp"),
    Target(_CPU_PLAIN, "sdk-fast", "plain-0ms-c100-asyncio", "cpu", 1.3, True,
           "<= 1.3x the floor", peer="floor"),
    Target(_CPU_TLS, "sdk-httpx", "tls-0ms-c100-asyncio", "cpu", 1.0, True,
           "<= 1.0x aiohttp", peer="aiohttp"),
    Target(_CPU_TLS, "sdk-fast", "tls-0ms-c100-asyncio", "cpu", 1.3, True,
           "<= 1.3x the floor", peer="floor"),
    Target(_LATENCY_1000, "sdk-httpx", "plain-100ms-c1000-asyncio", "rate", 0.9, False,
           ">= 0.9 of C/RTT", ideal=True),
    Target(_LATENCY_1000, "sdk-fast", "plain-100ms-c1000-asyncio", "rate", 0.9, False,
           ">= 0.9 of C/RTT", ideal=True),
    Target(_LATENCY_3000, "sdk-fast", "plain-100ms-c3000-asyncio", "rate", 1.0, False,
           ">= 1.0x the floor's share", peer="floor"),
    Target(_RSS, "sdk-httpx", "tls-0ms-c1000-asyncio", "rss", 150.0, True, "<= 150 MB"),
    Target(_RSS, "sdk-fast", "tls-0ms-c1000-asyncio", "rss", 150.0, True, "<= 150 MB"),
    Target(_COLD, "sdk-httpx", "cold-tls-c1000-asyncio", "time", 1.0, True,
           "<= 1.0x aiohttp's time", peer="aiohttp"),
    Target(_COLD, "sdk-fast", "cold-tls-c1000-asyncio", "time", 1.0, True,
           "<= 1.0x aiohttp's time", peer="aiohttp"),
    Target(_UVLOOP, "sdk-fast", "plain-0ms-c100-uvloop", "cpu", 0.7, True,
           "<= 0.7x its figure on asyncio", peer="sdk-fast",
           peer_scenario="plain-0ms-c100-asyncio"),
)  # fmt: skip


@attrs.frozen
class Check:
    """A target judged.

    Attributes:
        target: what was judged.
        value: the ratio (or, with no peer and no ideal, the figure itself); None: n/a.
        detail: the figures behind it, for the reader.
        verdict: "pass", "fail" or "n/a".
        note: errors on either side, or why n/a.
    """

    target: Target
    value: float | None
    detail: str
    verdict: Verdict
    note: str = ""


def _figure(cell: Cell | None, metric: Metric) -> float | None:
    if cell is None or cell.failed:
        return None
    if metric == "cpu":
        return cell.cpu_per_message
    if metric == "rate":
        return cell.rate
    if metric == "rss":
        return None if cell.peak_rss is None else cell.peak_rss / 1e6
    return cell.time


def _shown(value: float, metric: Metric) -> str:
    if metric == "cpu":
        return f"{value * 1e6:,.0f} µs"
    if metric == "rate":
        return f"{value:,.0f} msg/s"
    if metric == "rss":
        return f"{value:,.0f} MB"
    return f"{value:.2f} s"


def _why_missing(cell: Cell | None, name: str, scenario: str) -> str:
    if cell is None:
        return f"{name} was not run in {scenario}"
    return f"{name} never succeeded in {scenario}"


def evaluate(target: Target, cells: Mapping[str, Mapping[str, Cell]]) -> Check:
    """Judge `target` on `cells[scenario][client]`."""
    mine = cells.get(target.scenario, {}).get(target.client)
    figure = _figure(mine, target.metric)
    if figure is None:
        return Check(target, None, "", "n/a", _why_missing(mine, target.client, target.scenario))
    assert mine is not None
    notes = []
    if target.peer is not None:
        peer_scenario = target.peer_scenario or target.scenario
        theirs = cells.get(peer_scenario, {}).get(target.peer)
        base = _figure(theirs, target.metric)
        if base is None or base == 0:
            why = _why_missing(theirs, target.peer, peer_scenario)
            return Check(target, None, _shown(figure, target.metric), "n/a", why)
        assert theirs is not None
        value = figure / base
        detail = f"{_shown(figure, target.metric)} / {_shown(base, target.metric)}"
        if theirs.error_count:
            notes.append(f"{target.peer} had {theirs.error_count:,} errors")
    elif target.ideal:
        ideal = MATRIX[target.scenario].ideal_rate if target.scenario in MATRIX else None
        if not ideal:
            return Check(target, None, "", "n/a", f"{target.scenario} has no C/RTT")
        value = figure / ideal
        detail = f"{_shown(figure, target.metric)} of {ideal:,.0f}"
    else:
        value = figure
        detail = _shown(figure, target.metric)
    # A ratio of two equal figures may come out a rounding error above 1.
    slack = 1e-9 * target.limit
    within = value <= target.limit + slack if target.at_most else value >= target.limit - slack
    if mine.error_count:
        notes.insert(0, f"{mine.error_count:,} errors")
    verdict: Verdict = "pass" if within and not mine.error_count else "fail"
    return Check(target, value, detail, verdict, "; ".join(notes))


# -- was the server the limit? ----------------------------------------------------------------


@attrs.frozen
class ServerCheck:
    """Whether the server limited a scenario's figures.

    Attributes:
        wrk: wrk's rate against the same listener at the same concurrency (None: not run).
        best_client: the best client's rate in the scenario (None: none succeeded).
        busiest: the highest share of its core the server's worker used during any client's
            window (median over rounds; None: not read).
        verdict: "not the limit", "may be the limit", or "unchecked".
        reason: the figures behind the verdict.
    """

    wrk: float | None
    best_client: float | None
    busiest: float | None
    verdict: str
    reason: str


def check_server(scenario: str, wrk: float | None, clients: Mapping[str, Cell]) -> ServerCheck:
    """Judge whether the server limited `scenario`, from wrk's rate and the clients' cells."""
    rates = [cell.rate for cell in clients.values() if not cell.failed]
    best = max(rates, default=None)
    busy = [cell.server_busy for cell in clients.values() if cell.server_busy is not None]
    busiest = max(busy, default=None)
    ideal = MATRIX[scenario].ideal_rate if scenario in MATRIX else None
    reasons = []
    headroom = False
    if wrk is not None:
        reasons.append(f"wrk took {wrk:,.0f} req/s")
        if best is not None and wrk >= HEADROOM * best:
            headroom = True
            reasons.append(f"{wrk / best:.1f}x the best client's {best:,.0f} msg/s")
        if ideal is not None and wrk >= IDEAL_SHARE * ideal:
            headroom = True
            reasons.append(f"{wrk / ideal:.0%} of C/RTT ({ideal:,.0f})")
    if busiest is not None:
        reasons.append(f"nginx's worker used at most {busiest:.0%} of its core")
        headroom = headroom or busiest < BUSY_LIMIT
    if wrk is None and busiest is None:
        return ServerCheck(wrk, best, busiest, "unchecked", "neither wrk nor nginx's CPU read")
    verdict = "not the limit" if headroom else "may be the limit"
    return ServerCheck(wrk, best, busiest, verdict, "; ".join(reasons))
