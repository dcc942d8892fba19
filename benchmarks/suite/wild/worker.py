"""The child process that runs one client in one scenario, and prints its measurement.

`python -m benchmarks.suite.wild.worker --client NAME --url URL --concurrency C ...` pins
itself to `--cpu`, raises its open-files limit to the hard limit (3,000 connections), runs
the client on `--loop` (asyncio or uvloop) and prints one JSON line: `{"client": ...,
"warmup": {...}, "result": {...}}` (a cold start has no warm-up), or `{"client": ...,
"crash": "..."}` when the client could not even be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import ssl
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from ..clients import CLIENTS
from ..worker import print_record
from .probe import measure_cold, measure_window, process_cpu_seconds

__all__ = ["main", "run_client"]


async def run_client(
    name: str,
    url: str,
    *,
    concurrency: int,
    ssl_context: ssl.SSLContext | None,
    cold: bool,
    count: int,
    lead: float,
    seconds: float,
    grace: float,
    warmup_seconds: float,
    server_pid: int | None = None,
) -> dict[str, Any]:
    """Set `name` up with its pools sized to `concurrency`, then measure it (warm-up first,
    but for a cold start); return the JSON-ready record. `server_pid`: the server process
    whose CPU time is read at the window's ends."""
    spec = CLIENTS[name]

    def server_cpu() -> float | None:
        return None if server_pid is None else process_cpu_seconds(server_pid)

    async with spec.factory(url, concurrency, ssl_context=ssl_context, sized=True) as send:
        if cold:
            result = await measure_cold(
                send, connections=concurrency, grace=grace, server_cpu=server_cpu
            )
            return {"client": name, "warmup": None, "result": result.to_json()}
        # The warm-up opens the connections and fills every cache the client keeps.
        warmup = await measure_window(
            send,
            concurrency=concurrency,
            count=max(2 * concurrency, 100),
            lead=0.0,
            seconds=warmup_seconds,
            grace=grace,
        )
        result = await measure_window(
            send,
            concurrency=concurrency,
            count=count,
            lead=lead,
            seconds=seconds,
            grace=grace,
            server_cpu=server_cpu,
        )
    return {"client": name, "warmup": warmup.to_json(), "result": result.to_json()}


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]:
    if loop == "uvloop":
        import uvloop

        def run(main: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
            # uvloop's own runner: asyncio.Runner(loop_factory=...) is Python 3.11's.
            result: dict[str, Any] = uvloop.run(main)
            return result

        return run
    return asyncio.run


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run, print the record as one JSON line; 0, or 1 on a crash."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite.wild.worker")
    parser.add_argument("--client", required=True, choices=sorted(CLIENTS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--ca", default=None, help="PEM file of the CA to trust (https)")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--cpu", type=int, default=None, help="the core to pin this process to")
    parser.add_argument("--cold", action="store_true")
    parser.add_argument(
        "--server-pid", type=int, default=None, help="the server process to read the CPU of"
    )
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--lead", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--grace", type=float, required=True)
    parser.add_argument("--warmup-seconds", type=float, required=True)
    args = parser.parse_args(argv)

    def run() -> dict[str, Any]:
        if args.cpu is not None:
            os.sched_setaffinity(0, {args.cpu})
        _raise_open_files_limit()
        context = None if args.ca is None else ssl.create_default_context(cafile=args.ca)
        return _runner(args.loop)(
            run_client(
                args.client,
                args.url,
                concurrency=args.concurrency,
                ssl_context=context,
                cold=args.cold,
                count=args.count,
                lead=args.lead,
                seconds=args.seconds,
                grace=args.grace,
                warmup_seconds=args.warmup_seconds,
                server_pid=args.server_pid,
            )
        )

    return print_record(args.client, run)


if __name__ == "__main__":  # pragma: no cover - the child process's entry
    raise SystemExit(main())
