from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest

from benchmarks.suite import runner, worker
from benchmarks.suite.bulk import run_bulk
from benchmarks.suite.micro import MICRO_STEPS, run_micro
from haorui_async.testing import EmulatorProcess

#: Each measurement ends at its `count`: the time bound only caps a hung one, so it is far
#: beyond what 40 messages take on a busy machine, where 1 s could cut a run short.
TINY = runner.Sizes(
    rounds=2,
    count=40,
    seconds=30.0,
    grace=2.0,
    warmup_seconds=0.1,
    wrk_seconds=1.0,
    micro_number=20,
    micro_repeat=1,
    bulk_messages=20,
)


def test_a_tiny_run_writes_the_json_the_table_and_the_plot(tmp_path: Path) -> None:
    lines: list[str] = []
    results = runner.run_benchmark(
        tmp_path,
        sizes=TINY,
        clients=["sdk-httpx", "floor"],
        concurrencies=[2],
        use_wrk=False,
        progress=lines.append,
    )
    raw = json.loads((tmp_path / "throughput.json").read_text(encoding="utf-8"))
    assert raw["machine"]["cores"] >= 1
    assert [(r["round"], r["client"]) for r in raw["runs"]] == [
        (0, "sdk-httpx"),
        (0, "floor"),
        (1, "floor"),
        (1, "sdk-httpx"),
    ]
    assert all(r["result"]["ok"] == 40 for r in raw["runs"])
    assert raw["summary"]["floor"]["2"]["rounds"] == 2
    assert set(raw["micro"]) == set(MICRO_STEPS)
    assert raw["ceiling"]["note"] == "wrk was turned off (--no-wrk)"
    assert results["ratios"]["sdk-httpx"]["floor"][2] > 0
    table = (tmp_path / "throughput.md").read_text(encoding="utf-8")
    assert "SDK / floor" in table
    assert (tmp_path / "throughput.png").read_bytes().startswith(b"\x89PNG")
    assert lines[0].startswith("server: emulator")
    assert any("round 2/2 C=2 floor: " in line for line in lines)


def test_the_ceiling_is_measured_with_wrk_when_it_is_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in for wrk that reports a fixed figure.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrk = bin_dir / "wrk"
    wrk.write_text("#!/bin/sh\necho 'Requests/sec:  12345.6'\n", encoding="utf-8")
    wrk.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    sizes = attrs.evolve(TINY, rounds=1, count=5)
    results = runner.run_benchmark(
        tmp_path, sizes=sizes, clients=["floor"], concurrencies=[1], parts=["load"]
    )
    assert results["ceiling"]["rates"] == {"1": 12345.6}
    assert "12,346 req/s" in (tmp_path / "throughput.md").read_text(encoding="utf-8")


def test_without_wrk_the_floors_best_stands_in_for_the_ceiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    sizes = attrs.evolve(TINY, rounds=1, count=5)
    results = runner.run_benchmark(
        tmp_path, sizes=sizes, clients=["floor"], concurrencies=[1], parts=["load"]
    )
    assert results["ceiling"]["tool"] == ""
    table = (tmp_path / "throughput.md").read_text(encoding="utf-8")
    assert "not measured with wrk (wrk is not installed" in table
    assert "The floor client's best figure stands in for it" in table


def test_a_crashed_run_is_described_as_such() -> None:
    assert runner._describe({"client": "floor", "crash": "boom"}) == "crashed: boom"


def test_an_unknown_client_or_part_is_refused_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nope, later"):
        runner.run_benchmark(tmp_path, clients=["floor", "nope"], parts=["later"])
    assert not tmp_path.joinpath("throughput.json").exists()


def test_a_worker_that_prints_no_result_is_recorded_as_a_crash() -> None:
    record = runner._run_worker("no-such-client", "http://127.0.0.1:9", 1, TINY)
    assert record["client"] == "no-such-client"
    assert "printed no result" in record["crash"]


def test_the_worker_prints_one_json_line_per_run(
    emulator: EmulatorProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--client=aiohttp",
        f"--url={emulator.base_url}",
        "--concurrency=2",
        "--count=10",
        "--seconds=5",
        "--grace=2",
        "--warmup-seconds=0.1",
    ]
    assert worker.main(argv) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["result"]["ok"] == 10
    assert record["warmup"]["concurrency"] == 2


def test_the_worker_reports_a_client_that_cannot_be_set_up_as_a_crash(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "--client=sdk-httpx",
        "--url=not a url",
        "--concurrency=1",
        "--count=1",
        "--seconds=1",
        "--grace=1",
        "--warmup-seconds=0.1",
    ]
    assert worker.main(argv) == 1
    assert json.loads(capsys.readouterr().out)["crash"].startswith("ConfigurationError")


def test_micro_reports_microseconds_for_every_step() -> None:
    micro = run_micro(number=20, repeat=1)
    assert list(micro) == list(MICRO_STEPS)
    assert all(0 < value < 100_000 for value in micro.values())


def test_bulk_measures_gather_and_send_many() -> None:
    bulk = run_bulk(20)
    assert bulk["gather of send()"]["peak_bytes"] > 0
    assert bulk["send_many"]["peak_bytes"] > 0
    assert bulk["send_many"]["messages"] == 20


def test_a_run_without_the_load_part_writes_no_plot(tmp_path: Path) -> None:
    results = runner.run_benchmark(tmp_path, sizes=TINY, parts=["bulk"], progress=print)
    assert results["files"] == [str(tmp_path / "throughput.json"), str(tmp_path / "throughput.md")]
    assert not (tmp_path / "throughput.png").exists()
    assert results["summary_objects"] == {}
