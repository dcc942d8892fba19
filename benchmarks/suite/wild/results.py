"""The wild part's records folded into one `Cell` per scenario and client (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..report import add_counts, median
from .probe import Probe

__all__ = ["Cell", "best_of", "summarize"]


@attrs.frozen
class Cell:
    """One client in one scenario, over every round: the best round's messages per second,
    CPU per message and time (`best_of`), medians of the rest, and every error summed.

    Attributes:
        rate: accepted messages per second in the window.
        cpu_per_message: client CPU seconds per accepted message (None: nothing accepted).
        p50, p99: latency percentiles, in seconds.
        peak_rss: the client process's peak RSS, in bytes (None: no round measured).
        time: the window's length; for a cold start, the time to the last answer.
        server_busy: the server's CPU seconds over the window's seconds: 1.0 is its core
            fully busy (None: not read).
        ok: accepted sends in the windows, all rounds together.
        errors: failed sends by class, all rounds together (warm-ups apart).
        warmup_errors: failed sends of the warm-ups, by class.
        rounds: rounds that produced a measurement.
        crashes: why rounds produced none.
    """

    rate: float
    cpu_per_message: float | None
    p50: float | None
    p99: float | None
    peak_rss: int | None
    time: float | None
    server_busy: float | None
    ok: int
    errors: dict[str, int]
    warmup_errors: dict[str, int]
    rounds: int
    crashes: list[str]

    @property
    def failed(self) -> bool:
        """Whether nothing at all was accepted."""
        return self.ok == 0

    @property
    def error_count(self) -> int:
        """Every failed send (warm-ups included) and every crashed round."""
        return sum(self.errors.values()) + sum(self.warmup_errors.values()) + len(self.crashes)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return attrs.asdict(self)


def _busy(probe: Probe) -> float | None:
    if probe.server_cpu is None or probe.window <= 0:
        return None
    return probe.server_cpu / probe.window


def best_of(values: Sequence[float | None], *, lowest: bool) -> float | None:
    """The best of the rounds' `values` (the lowest, or the highest), None if none was read.

    On a shared machine another process's load only adds to a client's CPU time and takes
    from its throughput, round by round (the floor's CPU per message moved by up to 2x between
    rounds): the best round is the closest to the client's own cost, as `timeit` reports its
    fastest run. Every client is read the same way.
    """
    read = [v for v in values if v is not None]
    if not read:
        return None
    return min(read) if lowest else max(read)


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Cell]]:
    """`cells[scenario][client]` from the workers' records (each has `scenario`, `client`,
    and `result` with an optional `warmup`, or `crash`)."""
    grouped: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for record in records:
        by_client = grouped.setdefault(str(record["scenario"]), {})
        by_client.setdefault(str(record["client"]), []).append(record)
    cells: dict[str, dict[str, Cell]] = {}
    for scenario, by_client in grouped.items():
        for client, runs in by_client.items():
            probes = [Probe.from_json(r["result"]) for r in runs if "result" in r]
            errors: dict[str, int] = {}
            warmup_errors: dict[str, int] = {}
            for run in runs:
                if "result" in run:
                    add_counts(errors, run["result"]["errors"])
                    if run.get("warmup"):
                        add_counts(warmup_errors, run["warmup"]["errors"])
            peak = median([float(p.peak_rss) for p in probes])
            cells.setdefault(scenario, {})[client] = Cell(
                rate=best_of([p.rate for p in probes], lowest=False) or 0.0,
                cpu_per_message=best_of([p.cpu_per_message for p in probes], lowest=True),
                p50=median([p.p50 for p in probes]),
                p99=median([p.p99 for p in probes]),
                peak_rss=None if peak is None else int(peak),
                time=best_of([p.window for p in probes], lowest=True),
                server_busy=median([_busy(p) for p in probes]),
                ok=sum(p.ok for p in probes),
                errors=errors,
                warmup_errors=warmup_errors,
                rounds=len(probes),
                crashes=[str(r["crash"]) for r in runs if "crash" in r],
            )
    return cells
