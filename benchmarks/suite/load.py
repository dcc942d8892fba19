"""The load loop: `C` sends in flight, bounded in count and in time, and its statistics."""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import Collection, Sequence
from typing import Any

import attrs

from haorui_async._exceptions import HaoruiError

from .clients import Send

__all__ = ["Measurement", "error_class", "finish_within", "measure", "percentile"]

#: The error class counted for a send still in flight when the hard time bound cancelled it.
UNFINISHED = "Unfinished (cancelled at the time bound)"


async def finish_within(
    tasks: Collection[asyncio.Task[None]], timeout: float, errors: collections.Counter[str]
) -> int:
    """Wait up to `timeout` seconds for `tasks`; cancel those still running, count them in
    `errors` as `UNFINISHED`, and return how many there were."""
    _, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    if pending:
        errors[UNFINISHED] += len(pending)
    return len(pending)


def error_class(exc: BaseException) -> str:
    """The name an error is counted under: its class, and for the SDK's errors their cause's.

    `NotSent(ConnectTimeout)` tells more than `NotSent` alone.
    """
    name = type(exc).__name__
    if isinstance(exc, HaoruiError) and exc.__cause__ is not None:
        name += f"({type(exc.__cause__).__name__})"
    return name


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The `fraction` percentile (nearest rank) of already sorted values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@attrs.frozen
class Measurement:
    """One load run of one client at one concurrency.

    Attributes:
        concurrency: sends in flight.
        ok: sends the gateway accepted.
        errors: failed sends by error class.
        elapsed: seconds from the first send to the last one's end (draining included).
        p50, p99: latency of the accepted sends, in seconds (None when none succeeded).
    """

    concurrency: int
    ok: int
    errors: dict[str, int]
    elapsed: float
    p50: float | None
    p99: float | None

    @property
    def rate(self) -> float:
        """Accepted messages per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, `rate` included."""
        return {**attrs.asdict(self), "rate": self.rate}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        """The inverse of `to_json()`."""
        return cls(
            concurrency=int(data["concurrency"]),
            ok=int(data["ok"]),
            errors={str(k): int(v) for k, v in data["errors"].items()},
            elapsed=float(data["elapsed"]),
            p50=None if data["p50"] is None else float(data["p50"]),
            p99=None if data["p99"] is None else float(data["p99"]),
        )


async def measure(
    send: Send, *, concurrency: int, count: int, seconds: float, grace: float
) -> Measurement:
    """Run `send()` from `concurrency` tasks until `count` sends started or `seconds` passed.

    No send starts after `seconds`; sends in flight then get `grace` seconds more (long enough
    for a client's own timeouts to surface as its errors), and the ones still running are
    cancelled and counted as unfinished. Every exception of `send()` is counted by class.
    """
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()
    started = 0
    clock = time.perf_counter
    begin = clock()
    stop_at = begin + seconds

    async def worker() -> None:
        nonlocal started
        while started < count and clock() < stop_at:
            started += 1
            sent_at = clock()
            try:
                await send()
            except Exception as exc:
                errors[error_class(exc)] += 1
            else:
                latencies.append(clock() - sent_at)

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await finish_within(tasks, seconds + grace, errors)
    elapsed = clock() - begin
    latencies.sort()
    return Measurement(
        concurrency=concurrency,
        ok=len(latencies),
        errors=dict(errors),
        elapsed=elapsed,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
    )
