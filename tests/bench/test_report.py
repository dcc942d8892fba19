from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import pytest

from benchmarks.suite.report import (
    compiled_modules,
    machine_info,
    ratios,
    render_markdown,
    summarize,
    to_json_text,
    write_plot,
)


def _record(
    client: str,
    concurrency: int,
    ok: int,
    elapsed: float = 1.0,
    errors: dict[str, int] | None = None,
    warmup_errors: dict[str, int] | None = None,
) -> dict[str, Any]:
    result = {
        "concurrency": concurrency,
        "ok": ok,
        "errors": errors or {},
        "elapsed": elapsed,
        "p50": 0.001 if ok else None,
        "p99": 0.002 if ok else None,
    }
    warmup = {**result, "errors": warmup_errors or {}}
    return {"client": client, "concurrency": concurrency, "warmup": warmup, "result": result}


RECORDS = [
    # Three rounds of the SDK at C=1: the median rate is the middle one.
    _record("sdk-httpx", 1, 1000),
    _record("sdk-httpx", 1, 3000),
    _record("sdk-httpx", 1, 2000, errors={"ReadTimeout": 2}),
    _record("httpx-default", 1, 1000),
    _record("aiohttp", 1, 4000),
    _record("floor", 1, 8000),
    _record("sdk-httpx", 1000, 500),
    _record("httpx-default", 1000, 0, errors={"ConnectTimeout": 900, "PoolTimeout": 100}),
    _record("aiohttp", 1000, 1000, warmup_errors={"ServerDisconnectedError": 1}),
    {"client": "floor", "concurrency": 1000, "crash": "OSError: too many open files"},
]
CLIENTS = ["sdk-httpx", "httpx-default", "aiohttp", "floor"]


def _results(**extra: Any) -> dict[str, Any]:
    summaries = summarize(RECORDS)
    return {
        "machine": machine_info(),
        "settings": {
            "clients": CLIENTS,
            "concurrency": [1, 1000],
            "rounds": 3,
            "count": 100,
            "seconds": 1.0,
            "grace": 1.0,
        },
        "server": "stand-in",
        "ceiling": {"tool": "wrk", "rates": {"1": 9000.0}, "note": "wrk found on PATH"},
        "runs": RECORDS,
        "summary_objects": summaries,
        "ratios": ratios(summaries),
        **extra,
    }


def test_summary_takes_the_median_over_rounds_and_sums_the_errors() -> None:
    sdk = summarize(RECORDS)["sdk-httpx"][1]
    assert sdk.rate == 2000
    assert sdk.ok == 6000
    assert sdk.errors == {"ReadTimeout": 2}
    assert sdk.rounds == 3
    assert not sdk.failed


def test_a_client_that_never_succeeds_or_crashes_is_kept_as_failed() -> None:
    summaries = summarize(RECORDS)
    assert summaries["httpx-default"][1000].failed
    assert summaries["httpx-default"][1000].p50 is None
    assert summaries["floor"][1000].failed
    assert summaries["floor"][1000].crashes == ["OSError: too many open files"]
    assert summaries["floor"][1000].rounds == 0


def test_ratios_divide_the_sdk_by_each_peer_and_skip_a_failed_side() -> None:
    table = ratios(summarize(RECORDS))
    assert set(table) == {"sdk-httpx"}
    assert table["sdk-httpx"]["httpx-default"] == {1: 2.0, 1000: None}
    assert table["sdk-httpx"]["aiohttp"] == {1: 0.5, 1000: 0.5}
    assert table["sdk-httpx"]["floor"] == {1: 0.25, 1000: None}


def test_markdown_shows_rates_failures_errors_and_ratios() -> None:
    text = render_markdown(
        _results(
            micro={"sender.send": 40.0, "client.post": 100.0},
            bulk={
                "gather of send()": {"messages": 10, "peak_bytes": 2**20},
                "send_many": {"messages": 10, "note": "not benchmarked yet"},
            },
        )
    )
    assert "| 1 | 2,000 (2 errors) | 1,000 | 4,000 | 8,000 |" in text
    assert "fails: `ConnectTimeout`" in text
    assert "crashed: `OSError: too many open files`" in text
    assert "warm-up ServerDisconnectedError: 1" in text
    assert "| 1 | 2.00 | 0.50 | 0.25 |" in text
    assert "| 1000 | — | 0.50 | — |" in text
    assert "C=1: 9,000 req/s" in text
    assert "| 40.0 |" in text
    assert "| gather of send() | 10 | 1.0 |" in text
    assert "not benchmarked yet" in text


def test_markdown_names_the_floor_as_stand_in_when_wrk_is_missing() -> None:
    results = _results()
    results["ceiling"] = {"tool": "", "rates": {}, "note": "wrk could not be installed"}
    text = render_markdown(results)
    assert "not measured with wrk (wrk could not be installed)" in text
    assert "floor client's best figure stands in for it: 8,000 msg/s" in text


def test_markdown_without_errors_says_none() -> None:
    results = _results()
    results["summary_objects"] = summarize(RECORDS[:2])
    results["ratios"] = ratios(results["summary_objects"])
    text = render_markdown(results)
    assert "None." in text
    assert "| 1 | — | — | — |" in text


def test_the_json_holds_the_summary_by_client_and_concurrency() -> None:
    text = to_json_text(_results())
    assert '"summary_objects"' not in text
    assert '"1000": {' in text
    assert '"cpu":' in text


def test_machine_info_names_the_cpu_python_and_libraries() -> None:
    info = machine_info()
    assert info["cores"] >= 1
    assert platform.python_version() in info["python"]
    assert info["libraries"]["httpx"]
    assert "T" in info["date"]


def test_compiled_modules_are_the_extensions_beside_the_source(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "_backends").mkdir(parents=True)
    for name in ("__init__.py", "_sender.py", "_backends/__init__.py", "_backends/_pool.py"):
        (package / name).write_text("")
    assert compiled_modules(package) == []
    (package / "_backends/_pool.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    (package / "_sender.cp311-win_amd64.pyd").write_bytes(b"")
    assert compiled_modules(package) == ["pkg._backends._pool", "pkg._sender"]


@pytest.mark.parametrize("ceiling", [9000.0, None])
def test_the_plot_is_written_as_a_png(tmp_path: Path, ceiling: float | None) -> None:
    path = tmp_path / "out" / "throughput.png"
    write_plot(summarize(RECORDS), CLIENTS, path, ceiling=ceiling)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
