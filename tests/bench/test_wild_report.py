"""The wild part's report: the markdown, the JSON and the plots (pure, from records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.suite.report import machine_info
from benchmarks.suite.wild.report import (
    plot_name,
    render_markdown,
    to_json_text,
    verdict_mark,
    write_plot,
)
from benchmarks.suite.wild.results import summarize
from benchmarks.suite.wild.scenarios import DEFAULT_SIZES
from benchmarks.suite.wild.targets import ISSUE_TARGETS, check_server, evaluate

from .test_wild_targets import record

PLAIN = "plain-0ms-c100-asyncio"
SLOW = "plain-100ms-c1000-asyncio"
COLD = "cold-tls-c1000-asyncio"
CLIENTS = ["sdk-httpx", "sdk-fast", "httpx-pooled", "aiohttp", "floor"]


def _cold(client: str, window: float, **changes: Any) -> dict[str, Any]:
    made = record(COLD, client, window=window, **changes)
    made["warmup"] = None
    return made


RECORDS = [
    record(PLAIN, "sdk-httpx", ok=5000, cpu=0.5),
    record(PLAIN, "sdk-fast", ok=8000, cpu=0.4),
    record(PLAIN, "httpx-pooled", ok=100, cpu=0.3, errors={"PoolTimeout": 4}),
    record(PLAIN, "aiohttp", ok=6000, cpu=0.6),
    record(PLAIN, "floor", ok=16000, cpu=0.4),
    record(SLOW, "sdk-httpx", ok=8800),
    record(SLOW, "sdk-fast", ok=9500),
    {"scenario": SLOW, "client": "aiohttp", "crash": "OSError: too many open files"},
    record(SLOW, "floor", ok=9700),
    _cold("sdk-httpx", 2.0),
    _cold("sdk-fast", 1.2),
    _cold("aiohttp", 1.5),
    _cold("floor", 1.0),
]


def _results(records: list[dict[str, Any]] = RECORDS) -> dict[str, Any]:
    cells = summarize(records)
    scenarios = [PLAIN, SLOW, COLD]
    return {
        "machine": machine_info(),
        "settings": {
            "rounds": DEFAULT_SIZES.rounds,
            "seconds": DEFAULT_SIZES.seconds,
            "lead": DEFAULT_SIZES.lead,
            "warmup_seconds": DEFAULT_SIZES.warmup_seconds,
            "scenarios": scenarios,
            "clients": CLIENTS,
            "trimmed": [
                f"{SLOW}: httpx-pooled",
                f"{COLD}: httpx-pooled",
                f"{COLD}: floor-contract",
            ],
            "client_cpu": 1,
        },
        "server": {"name": "nginx/1.22.1 with the echo module", "cpu": 0, "error_log": ""},
        "wrk": {PLAIN: 40_000.0},
        "wrk_note": "wrk found on PATH",
        "runs": records,
        "cells": cells,
        "checks": [evaluate(t, cells) for t in ISSUE_TARGETS],
        "server_checks": {
            name: check_server(name, 40_000.0 if name == PLAIN else None, cells.get(name, {}))
            for name in scenarios
        },
    }


def test_the_issue_table_shows_each_ratio_with_its_verdict() -> None:
    text = render_markdown(_results())
    assert "| scenario | default backend (sdk-httpx) | fast backend (sdk-fast) |" in text
    # CPU per message: sdk-httpx 100 µs against aiohttp's 100 µs; sdk-fast 50 against 25.
    assert (
        "| client CPU per message, C=100, plain | ✅ pass: 1.00x (100 µs / 100 µs); target "
        "<= 1.0x aiohttp | ❌ FAIL: 2.00x (50 µs / 25 µs); target <= 1.3x the floor |"
    ) in text
    assert "❌ FAIL: 0.88 of C/RTT (8,800 msg/s of 10,000)" in text
    assert "✅ pass: 0.95 of C/RTT (9,500 msg/s of 10,000)" in text
    assert "✅ pass: 0.80x (1.20 s / 1.50 s); target <= 1.0x aiohttp's time" in text
    assert "— n/a; target <= 150 MB; sdk-fast was not run in tls-0ms-c1000-asyncio" in text
    assert "passed," in text
    assert "failed," in text


def test_the_server_check_is_stated_for_every_scenario() -> None:
    text = render_markdown(_results())
    assert "## Was the server the limit?" in text
    assert f"| `{PLAIN}` | 40,000 | 16,000 | 50% | not the limit |" in text
    assert f"| `{COLD}` | — |" in text
    assert "wrk: wrk found on PATH." in text


def test_every_scenario_has_its_table_ratios_and_errors() -> None:
    text = render_markdown(_results())
    assert "### plain HTTP, no latency, C=100, asyncio (`plain-0ms-c100-asyncio`)" in text
    assert "| 5,000 | 100 | 1.0 / 2.0 | 100 | 50% | 0 |" in text
    assert "**4** (`PoolTimeout`)" in text
    # sdk-fast: CPU ÷ raw httpx (3,000 µs), ÷ aiohttp (100), ÷ floor (25); msg/s likewise.
    assert "| `sdk-fast` | 0.02 | 0.50 | 2.00 | 80.00 | 1.33 | 0.50 |" in text
    assert "| share of C/RTT |" in text
    assert "| 9,500 | 95% |" in text
    assert "**1** (`OSError: too many open files`)" in text
    assert "| time to the last answer (s) |" in text
    assert "| `sdk-fast` | 0.80 | 1.20 |" in text
    assert "- `plain-0ms-c100-asyncio`, `httpx-pooled`: PoolTimeout: 4" in text
    assert "crashed: OSError: too many open files" in text
    assert (
        "Left out of some scenarios (`--full` or `--client` run them there): floor-contract at "
        "C = 1000 and in the cold start (a bound for the targets that set the SDK against the "
        "floor, and none is there); httpx-pooled at C >= 1000 and in the cold start (it spends"
    ) in text
    assert "pinned to CPU 0 (`worker_cpu_affinity`)" in text


def test_a_run_without_errors_says_so() -> None:
    text = render_markdown(_results([r for r in RECORDS if r["client"] in ("sdk-fast", "floor")]))
    assert "None: zero errors in every measurement." in text


def test_the_json_holds_cells_checks_and_server_checks_as_plain_values() -> None:
    data = json.loads(to_json_text(_results()))
    assert data["cells"][PLAIN]["floor"]["rate"] == 16000
    assert {c["verdict"] for c in data["checks"]} == {"pass", "fail", "n/a"}
    assert data["server_checks"][PLAIN]["verdict"] == "not the limit"
    assert data["runs"][0]["scenario"] == PLAIN


@pytest.mark.parametrize("scenario", [PLAIN, SLOW, COLD])
def test_each_scenario_has_its_plot(tmp_path: Path, scenario: str) -> None:
    path = tmp_path / "out" / plot_name(scenario)
    write_plot(scenario, summarize(RECORDS)[scenario], CLIENTS, path)
    assert path.name == f"wild-{scenario}.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_verdicts_are_marked() -> None:
    assert verdict_mark("pass") == "✅ pass"
    assert verdict_mark("fail") == "❌ FAIL"
    assert verdict_mark("n/a") == "— n/a"
