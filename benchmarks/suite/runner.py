"""The whole run: the server, its ceiling, every client in turn, then micro and bulk."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from haorui_async.testing import EmulatorProcess

from . import report
from .bulk import run_bulk
from .clients import CLIENTS, LOAD_CLIENTS
from .micro import run_micro
from .server import SERVER_NAME, Ceiling, child_env, ensure_wrk, run_wrk

__all__ = [
    "DEFAULT_SIZES",
    "FULL_SIZES",
    "PARTS",
    "Sizes",
    "run_benchmark",
    "run_worker_process",
]

#: Concurrency levels: one at a time, a small pool, httpx's default pool size, and beyond it.
DEFAULT_CONCURRENCY: Final = (1, 10, 100, 1000)
PARTS: Final = ("load", "micro", "bulk")
#: The output files, written into the output directory.
JSON_NAME: Final = "throughput.json"
MARKDOWN_NAME: Final = "throughput.md"
PLOT_NAME: Final = "throughput.png"


@attrs.frozen
class Sizes:
    """How long everything runs.

    Attributes:
        rounds: alternating rounds of every client at every concurrency.
        count: the most messages one measurement sends.
        seconds: the longest one measurement starts new sends.
        grace: how long sends in flight at the end may still take; above httpx's 5 s default
            timeouts, so a client's own timeout shows as its error, not as "unfinished".
        warmup_seconds: the warm-up's time bound (it is also bounded by 2 x C messages).
        wrk_seconds: the length of each `wrk` run.
        micro_number, micro_repeat: calls per timing run, and runs, of the micro benchmark.
        bulk_messages: messages of the bulk memory benchmark.
    """

    rounds: int = 3
    count: int = 20_000
    seconds: float = 2.0
    grace: float = 6.0
    warmup_seconds: float = 0.5
    wrk_seconds: float = 2.0
    micro_number: int = 2000
    micro_repeat: int = 5
    bulk_messages: int = 5000


#: A few minutes on a 2-core machine.
DEFAULT_SIZES: Final = Sizes()
#: `--full`: longer measurements and more rounds, for figures worth quoting.
FULL_SIZES: Final = Sizes(
    rounds=5,
    count=200_000,
    seconds=10.0,
    warmup_seconds=2.0,
    wrk_seconds=10.0,
    micro_number=20_000,
    micro_repeat=7,
    bulk_messages=50_000,
)


def _run_worker(client: str, url: str, concurrency: int, sizes: Sizes) -> dict[str, Any]:
    """One client at one concurrency in a fresh interpreter; a crash is recorded, not raised."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.suite.worker",
        f"--client={client}",
        f"--url={url}",
        f"--concurrency={concurrency}",
        f"--count={sizes.count}",
        f"--seconds={sizes.seconds}",
        f"--grace={sizes.grace}",
        f"--warmup-seconds={sizes.warmup_seconds}",
    ]
    # Warm-up and measurement, each with its grace, plus start-up and teardown.
    limit = sizes.warmup_seconds + sizes.seconds + 2 * sizes.grace + 60
    return run_worker_process(command, client, limit)


def run_worker_process(command: list[str], client: str, limit: float) -> dict[str, Any]:
    """Run a worker `command` (at most `limit` seconds); the JSON record of its last line, or
    a crash record naming why there is none: a crash is recorded, not raised."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=limit,
            check=False,
            env=child_env(),
        )
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung worker
        return {"client": client, "crash": f"the worker ran past {limit:.0f} s and was killed"}
    lines = done.stdout.strip().splitlines()
    try:
        record: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"client": client, "crash": f"the worker printed no result: {tail[0][:200]}"}
    return record


def _describe(record: dict[str, Any]) -> str:
    if "crash" in record:
        return f"crashed: {record['crash']}"
    result = record["result"]
    rate = result["ok"] / result["elapsed"] if result["elapsed"] > 0 else 0.0
    errors = sum(result["errors"].values())
    return f"{rate:,.0f} msg/s" + (f", {errors:,} errors" if errors else "")


def _ceiling(url: str, concurrencies: Sequence[int], sizes: Sizes, use_wrk: bool) -> Ceiling:
    if not use_wrk:
        return Ceiling(tool="", rates={}, non_2xx={}, note="wrk was turned off (--no-wrk)")
    wrk, note = ensure_wrk()
    if wrk is None:
        return Ceiling(tool="", rates={}, non_2xx={}, note=note)
    return run_wrk(wrk, url, concurrencies, seconds=sizes.wrk_seconds, note=note)


def run_benchmark(
    out_dir: Path,
    *,
    sizes: Sizes = DEFAULT_SIZES,
    clients: Sequence[str] = LOAD_CLIENTS,
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCY,
    parts: Sequence[str] = PARTS,
    use_wrk: bool = True,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and write `throughput.json`, `.md` and `.png` into `out_dir`.

    Returns the results, `files` naming the files written (no plot without the load part).

    Raises `ValueError` for an unknown client or part, `EmulatorNotStarted` (a `RuntimeError`)
    when the server does not start. A client that fails or crashes is recorded as such, never
    dropped.
    """
    unknown = [c for c in clients if c not in CLIENTS] + [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown clients or parts: {', '.join(unknown)}")
    results: dict[str, Any] = {
        "machine": report.machine_info(),
        "settings": {
            **attrs.asdict(sizes),
            "clients": list(clients),
            "concurrency": list(concurrencies),
            "parts": list(parts),
        },
        "server": "",
        "ceiling": Ceiling(tool="", rates={}, non_2xx={}, note="the load part was not run"),
        "runs": [],
    }
    if "load" in parts:
        with EmulatorProcess() as server:
            results["server"] = SERVER_NAME
            progress(f"server: {SERVER_NAME} at {server.base_url}")
            results["ceiling"] = _ceiling(server.base_url, concurrencies, sizes, use_wrk)
            progress(f"server ceiling: {results['ceiling'].to_json()}")
            for round_number in range(sizes.rounds):
                # Alternate the order, so no client always runs right after the same one.
                order = list(clients) if round_number % 2 == 0 else list(reversed(clients))
                for concurrency in concurrencies:
                    for client in order:
                        record = _run_worker(client, server.base_url, concurrency, sizes)
                        record.update(round=round_number, concurrency=concurrency)
                        results["runs"].append(record)
                        progress(
                            f"round {round_number + 1}/{sizes.rounds} C={concurrency} "
                            f"{client}: {_describe(record)}"
                        )
    ceiling: Ceiling = results["ceiling"]
    results["ceiling"] = ceiling.to_json()
    summaries = report.summarize(results["runs"])
    results["summary_objects"] = summaries
    results["ratios"] = report.ratios(summaries)
    if "micro" in parts:
        progress("micro benchmark (MockTransport) ...")
        results["micro"] = run_micro(sizes.micro_number, sizes.micro_repeat)
    if "bulk" in parts:
        progress("bulk memory benchmark (MockTransport) ...")
        results["bulk"] = run_bulk(sizes.bulk_messages)

    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / JSON_NAME, out_dir / MARKDOWN_NAME]
    results["files"] = [str(path) for path in written]
    (out_dir / JSON_NAME).write_text(report.to_json_text(results), encoding="utf-8")
    (out_dir / MARKDOWN_NAME).write_text(report.render_markdown(results), encoding="utf-8")
    if summaries:
        results["files"].append(str(out_dir / PLOT_NAME))
        floor = summaries.get("floor", {})
        floor_best = max((s.rate for s in floor.values() if not s.failed), default=None)
        report.write_plot(
            summaries,
            list(clients),
            out_dir / PLOT_NAME,
            ceiling=ceiling.best or floor_best,
            ceiling_label=(
                "server ceiling (wrk)" if ceiling.best else "floor's best (wrk unavailable)"
            ),
        )
    return results
