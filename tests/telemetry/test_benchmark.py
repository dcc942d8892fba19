"""The telemetry benchmark (benchmarks/telemetry_overhead.py) runs, at a tiny size."""

from __future__ import annotations

from pathlib import Path

from benchmarks import telemetry_overhead


async def test_the_benchmark_measures_every_mode_and_reports_ratios(tmp_path: Path) -> None:
    result = await telemetry_overhead.measure(seconds=0.01, rounds=1)
    assert set(result["microseconds"]) == set(telemetry_overhead.MODES)
    assert all(value > 0 for value in result["microseconds"].values())
    machine = {
        "date": "today",
        "python": "3",
        "platform": "here",
        "cores": 2,
        "load_average": (0.0, 0.0, 0.0),
        "opentelemetry_sdk": "1",
    }
    text = telemetry_overhead.report(result, machine)
    assert "| off |" in text
    assert "x1.00" in text
