"""`benchmarks/cost_layers.py`: its variants against the emulator, its arithmetic, its report."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.cost_layers import (
    VARIANTS,
    callgrind_total,
    per_message,
    render,
    run_variant,
)
from haorui_async.testing import EmulatorProcess


@pytest.mark.parametrize("name", VARIANTS)
async def test_every_variant_sends_its_messages(name: str, emulator: EmulatorProcess) -> None:
    # Each variant raises on an answer that is not an acceptance (the floor and the SDK's
    # read_response check it, `floor + contract` its uid too; `transport` checks the status).
    assert await run_variant(name, emulator.base_url, 30, warmup=10) == 30


def test_callgrind_total_is_the_totals_line(tmp_path: Path) -> None:
    out = tmp_path / "callgrind.out"
    out.write_bytes(b"version: 1\ncmd: python\nevents: Ir\nfl=x.c\nfn=f\n3 7\nsummary: 123456\n")
    assert callgrind_total(out) == 123456
    out.write_bytes(b"events: Ir\n")
    with pytest.raises(ValueError, match="no totals"):
        callgrind_total(out)


def test_per_message_is_the_difference_of_two_runs_over_their_messages() -> None:
    # Start-up and warm-up (the same in both runs) cancel out.
    assert per_message((1000, 5_000_000 + 1000 * 90), (4000, 5_000_000 + 4000 * 90)) == 90
    with pytest.raises(ValueError, match="more messages"):
        per_message((1000, 1), (1000, 2))


def test_the_report_gives_each_layers_addition_and_its_ratio_to_the_floor() -> None:
    results = dict(zip(VARIANTS, [100.0, 110.0, 90.0, 120.0, 130.0, 140.0, 160.0], strict=True))
    meta = {
        "date": "2026-12-06T20:00:00+00:00",
        "cpu": "cpu",
        "cores": 2,
        "python": "CPython 3.11.7",
        "libraries": {"httptools": "0.9.0", "haorui-async": "0.1.0 (compiled: 9 modules)"},
        "loop": "asyncio",
        "small": 1000,
        "large": 4000,
        "seconds": 180.0,
    }
    report = render(results, meta)
    assert "haorui-async 0.1.0 (compiled: 9 modules); httptools 0.9.0" in report
    assert "| `floor` | asyncio streams, a prebuilt request, json.loads | 100 |  | 1.00 |" in report
    assert "| `floor + contract` | number and text checked" in report
    assert "| 110 | +10 | 1.10 |" in report
    assert (
        "| `+ answer` | read_response: JSON, uid check, SendResult | 120 | +30 | 1.20 |" in report
    )
    assert (
        "| `transport` | pool, connection, request bytes, httptools, hand-back | 90 |  | 0.90 |"
        in report
    )
    assert "| `send` | SMS: the message built and checked, its uid | 160 | +20 | 1.60 |" in report
