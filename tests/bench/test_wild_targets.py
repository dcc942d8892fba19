"""The wild part's folding of records, the issue's targets and the server check (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.suite.wild.results import Cell, best_of, summarize
from benchmarks.suite.wild.targets import (
    ISSUE_TARGETS,
    Target,
    check_server,
    evaluate,
)


def record(
    scenario: str,
    client: str,
    *,
    ok: int = 1000,
    window: float = 1.0,
    cpu: float = 0.1,
    rss: int = 100_000_000,
    errors: dict[str, int] | None = None,
    warmup_errors: dict[str, int] | None = None,
    server_cpu: float | None = 0.5,
) -> dict[str, Any]:
    """A worker's record: `ok` accepted in `window` seconds for `cpu` client seconds."""
    result = {
        "concurrency": 100,
        "ok": ok,
        "errors": errors or {},
        "window": window,
        "cpu": cpu,
        "p50": 0.001 if ok else None,
        "p99": 0.002 if ok else None,
        "peak_rss": rss,
        "sent": ok + sum((errors or {}).values()),
        "server_cpu": server_cpu,
    }
    warmup = {**result, "errors": warmup_errors or {}}
    return {"scenario": scenario, "client": client, "warmup": warmup, "result": result}


def cell(**changes: Any) -> Cell:
    (only,) = summarize([record("plain-0ms-c100-asyncio", "floor", **changes)]).values()
    return only["floor"]


def test_a_cell_takes_the_best_round_medians_of_the_rest_and_sums_errors() -> None:
    records = [
        record("s", "sdk-fast", ok=1000, cpu=0.05, rss=90_000_000),
        record("s", "sdk-fast", ok=3000, cpu=0.3, rss=110_000_000, errors={"NotSent": 2}),
        record("s", "sdk-fast", ok=2000, cpu=0.4, rss=100_000_000),
        {"scenario": "s", "client": "floor", "crash": "OSError: too many open files"},
    ]
    cells = summarize(records)
    fast = cells["s"]["sdk-fast"]
    # The best round's rate and CPU per message (each from its own round), medians else.
    assert fast.rate == 3000
    assert fast.cpu_per_message == pytest.approx(0.00005)
    assert fast.p50 == 0.001
    assert fast.peak_rss == 100_000_000
    assert fast.server_busy == 0.5
    assert fast.ok == 6000
    assert fast.errors == {"NotSent": 2}
    assert fast.error_count == 2
    assert fast.rounds == 3
    floor = cells["s"]["floor"]
    assert floor.failed
    assert floor.rounds == 0
    assert floor.error_count == 1
    assert floor.cpu_per_message is None


def test_best_of_is_the_lowest_or_the_highest_of_what_was_read() -> None:
    assert best_of([0.3, None, 0.1, 0.2], lowest=True) == 0.1
    assert best_of([0.3, None, 0.1, 0.2], lowest=False) == 0.3
    assert best_of([None, None], lowest=True) is None
    assert best_of([], lowest=False) is None


def test_a_cold_start_without_a_warm_up_is_folded_too() -> None:
    cold = record("cold-tls-c1000-asyncio", "aiohttp", window=1.5, server_cpu=None)
    cold["warmup"] = None
    aiohttp = summarize([cold])["cold-tls-c1000-asyncio"]["aiohttp"]
    assert aiohttp.time == 1.5
    assert aiohttp.server_busy is None
    assert aiohttp.warmup_errors == {}


def _cells(*records: dict[str, Any]) -> dict[str, dict[str, Cell]]:
    return summarize(list(records))


CPU_HTTPX = ISSUE_TARGETS[0]
CPU_FAST = ISSUE_TARGETS[1]


def test_the_issue_table_has_every_row_and_both_backends() -> None:
    rows = {(t.row, t.client) for t in ISSUE_TARGETS}
    assert len(rows) == len(ISSUE_TARGETS) == 12
    assert CPU_HTTPX.wording == "<= 1.0x aiohttp"
    assert CPU_FAST.wording == "<= 1.3x the floor"
    assert {t.client for t in ISSUE_TARGETS if "C=3000" in t.row} == {"sdk-fast"}


def test_cpu_per_message_against_a_peer_passes_within_the_bound() -> None:
    cells = _cells(
        record("plain-0ms-c100-asyncio", "sdk-httpx", cpu=0.09),
        record("plain-0ms-c100-asyncio", "aiohttp", cpu=0.1),
        record("plain-0ms-c100-asyncio", "sdk-fast", cpu=0.14),
        record("plain-0ms-c100-asyncio", "floor", cpu=0.1),
    )
    httpx = evaluate(CPU_HTTPX, cells)
    assert httpx.verdict == "pass"
    assert httpx.value == pytest.approx(0.9)
    assert httpx.detail == "90 µs / 100 µs"
    fast = evaluate(CPU_FAST, cells)
    assert fast.verdict == "fail"
    assert fast.value == pytest.approx(1.4)


def test_errors_of_the_sdk_fail_a_target_whatever_its_figure_and_a_peers_are_noted() -> None:
    cells = _cells(
        record("plain-0ms-c100-asyncio", "sdk-httpx", cpu=0.05, warmup_errors={"NotSent": 1}),
        record("plain-0ms-c100-asyncio", "aiohttp", errors={"ServerDisconnectedError": 3}),
    )
    check = evaluate(CPU_HTTPX, cells)
    assert check.verdict == "fail"
    assert check.value == pytest.approx(0.5)
    assert check.note == "1 errors; aiohttp had 3 errors"


def test_a_side_not_run_or_never_succeeding_is_not_applicable() -> None:
    assert evaluate(CPU_HTTPX, {}).verdict == "n/a"
    assert "sdk-httpx was not run" in evaluate(CPU_HTTPX, {}).note
    cells = _cells(
        record("plain-0ms-c100-asyncio", "sdk-httpx"),
        record("plain-0ms-c100-asyncio", "aiohttp", ok=0, errors={"ConnectError": 9}),
    )
    check = evaluate(CPU_HTTPX, cells)
    assert check.verdict == "n/a"
    assert check.note == "aiohttp never succeeded in plain-0ms-c100-asyncio"


def test_the_latency_target_divides_the_rate_by_c_over_rtt() -> None:
    target = next(t for t in ISSUE_TARGETS if t.ideal and t.client == "sdk-fast")
    cells = _cells(record("plain-100ms-c1000-asyncio", "sdk-fast", ok=9200))
    check = evaluate(target, cells)
    assert check.value == pytest.approx(0.92)
    assert check.verdict == "pass"
    assert check.detail == "9,200 msg/s of 10,000"


def test_the_c3000_target_compares_the_floors_share() -> None:
    target = next(t for t in ISSUE_TARGETS if "C=3000" in t.row)
    cells = _cells(
        record("plain-100ms-c3000-asyncio", "sdk-fast", ok=9000),
        record("plain-100ms-c3000-asyncio", "floor", ok=10000),
    )
    check = evaluate(target, cells)
    assert check.value == pytest.approx(0.9)
    assert check.verdict == "fail"


def test_the_rss_target_is_an_absolute_bound_in_megabytes() -> None:
    target = next(t for t in ISSUE_TARGETS if t.metric == "rss" and t.client == "sdk-fast")
    fat = evaluate(target, _cells(record("tls-0ms-c1000-asyncio", "sdk-fast", rss=340_000_000)))
    assert fat.value == pytest.approx(340)
    assert fat.verdict == "fail"
    assert fat.detail == "340 MB"
    lean = evaluate(target, _cells(record("tls-0ms-c1000-asyncio", "sdk-fast", rss=120_000_000)))
    assert lean.verdict == "pass"


def test_the_cold_start_compares_times_with_aiohttp() -> None:
    target = next(t for t in ISSUE_TARGETS if t.metric == "time" and t.client == "sdk-httpx")
    cells = _cells(
        record("cold-tls-c1000-asyncio", "sdk-httpx", window=2.0),
        record("cold-tls-c1000-asyncio", "aiohttp", window=2.5),
    )
    check = evaluate(target, cells)
    assert check.value == pytest.approx(0.8)
    assert check.verdict == "pass"
    assert check.detail == "2.00 s / 2.50 s"


def test_the_uvloop_target_compares_the_fast_backend_with_itself_on_asyncio() -> None:
    target = ISSUE_TARGETS[-1]
    assert (target.peer, target.peer_scenario) == ("sdk-fast", "plain-0ms-c100-asyncio")
    cells = _cells(
        record("plain-0ms-c100-uvloop", "sdk-fast", cpu=0.06),
        record("plain-0ms-c100-asyncio", "sdk-fast", cpu=0.1),
    )
    check = evaluate(target, cells)
    assert check.value == pytest.approx(0.6)
    assert check.verdict == "pass"


def test_a_target_at_least_a_figure_fails_below_it() -> None:
    target = Target("row", "sdk-fast", "s", "rate", 2.0, False, ">= 2x", peer="floor")
    cells = _cells(record("s", "sdk-fast", ok=1000), record("s", "floor", ok=1000))
    assert evaluate(target, cells).verdict == "fail"


# -- was the server the limit? ----------------------------------------------------------------


def test_wrk_with_headroom_over_the_best_client_clears_the_server() -> None:
    clients = {"floor": cell(ok=10_000, server_cpu=0.9)}
    check = check_server("plain-0ms-c100-asyncio", 30_000.0, clients)
    assert check.verdict == "not the limit"
    assert "3.0x the best client's 10,000 msg/s" in check.reason
    assert "at most 90% of its core" in check.reason


def test_a_busy_server_without_wrk_headroom_may_be_the_limit() -> None:
    clients = {"floor": cell(ok=10_000, server_cpu=0.95)}
    check = check_server("plain-0ms-c100-asyncio", 11_000.0, clients)
    assert check.verdict == "may be the limit"


def test_an_idle_server_is_not_the_limit_even_without_wrk() -> None:
    check = check_server("cold-tls-c1000-asyncio", None, {"floor": cell(server_cpu=0.3)})
    assert check.verdict == "not the limit"
    assert check.wrk is None
    assert check.busiest == pytest.approx(0.3)


def test_at_100_ms_wrk_reaching_c_over_rtt_clears_the_server() -> None:
    clients = {"floor": cell(ok=9_800, server_cpu=0.95)}
    check = check_server("plain-100ms-c1000-asyncio", 9_700.0, clients)
    assert check.verdict == "not the limit"
    assert "97% of C/RTT" in check.reason


def test_nothing_to_judge_the_server_by_is_unchecked() -> None:
    check = check_server("plain-0ms-c100-asyncio", None, {"floor": cell(server_cpu=None)})
    assert check.verdict == "unchecked"
