"""The child process that runs one client at one concurrency, and prints its measurement.

`python -m benchmarks.suite.worker --client NAME --url URL --concurrency C ...` prints
one JSON line: `{"client": ..., "warmup": {...}, "result": {...}}`, or `{"client": ...,
"crash": "..."}` when the client could not even be set up. A fresh interpreter per client
and round keeps one client's state (pools, caches, imports) from affecting another's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .clients import CLIENTS
from .load import measure

__all__ = ["main", "print_record", "run_client"]


async def run_client(
    name: str,
    url: str,
    *,
    concurrency: int,
    count: int,
    seconds: float,
    grace: float,
    warmup_seconds: float,
) -> dict[str, Any]:
    """Warm `name` up against `url`, then measure it; return the JSON-ready record."""
    spec = CLIENTS[name]
    async with spec.factory(url, concurrency) as send:
        # The warm-up opens the connections and fills every cache the client keeps.
        warmup = await measure(
            send,
            concurrency=concurrency,
            count=max(2 * concurrency, 100),
            seconds=warmup_seconds,
            grace=grace,
        )
        result = await measure(
            send, concurrency=concurrency, count=count, seconds=seconds, grace=grace
        )
    return {"client": name, "warmup": warmup.to_json(), "result": result.to_json()}


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run, print the record as one JSON line; 0, or 1 on a crash."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite.worker")
    parser.add_argument("--client", required=True, choices=sorted(CLIENTS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--grace", type=float, required=True)
    parser.add_argument("--warmup-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    return print_record(
        args.client,
        lambda: asyncio.run(
            run_client(
                args.client,
                args.url,
                concurrency=args.concurrency,
                count=args.count,
                seconds=args.seconds,
                grace=args.grace,
                warmup_seconds=args.warmup_seconds,
            )
        ),
    )


def print_record(client: str, run: Callable[[], dict[str, Any]]) -> int:
    """Print what `run()` returns as one JSON line, or a crash record naming its error (the
    parent reads the last line); 0, or 1 on a crash."""
    try:
        record = run()
    except Exception as exc:
        record = {"client": client, "crash": f"{type(exc).__name__}: {exc}"}
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()
    return 1 if "crash" in record else 0


if __name__ == "__main__":  # pragma: no cover - the child process's entry
    raise SystemExit(main())
