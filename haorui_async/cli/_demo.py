"""`haorui-async demo`: the SDK against the built-in emulator, on loopback, in one command.

The emulator runs in a subprocess, so client and server do not share an event loop or the
GIL: one SMS is sent and printed, then N single sends fan out through `send_many()` under a
progress bar, and their outcomes, throughput and latencies are summed up.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .._bulk import KINDS, send_many
from .._exceptions import SendError
from .._message import SMS
from .._sender import AsyncSender
from ..testing._cli import config_from_options
from ..testing._config import option_specs
from ..testing._model import DEMO_API_ID, DEMO_API_PASSWORD, DEMO_SENDER_ID
from ._app import app
from ._common import describe_failure
from ._emulator import emulator_options

#: How long the emulator subprocess may take to start listening.
STARTUP_TIMEOUT: Final = 20.0
#: Sends in flight by default: enough to keep one emulator busy without a pool so large that
#: connection set-up dominates a short run.
DEFAULT_DEMO_CONCURRENCY: Final = 50
DEFAULT_DEMO_COUNT: Final = 10_000
DEMO_PHONENUMBER: Final = "8613912345678"
#: Where this package is imported from: the emulator subprocess must import this very copy,
#: also from a checkout that is not installed.
PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])


@asynccontextmanager
async def emulator_process(extra_args: Sequence[str] = ()) -> AsyncIterator[str]:
    """Start `python -m haorui_async.testing` on a free loopback port; yield its base URL.

    Raises:
        click.ClickException: it did not print its `listening on` line in time.
    """
    command = [
        sys.executable,
        "-m",
        "haorui_async.testing",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        *extra_args,
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        *command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    assert process.stdout is not None
    try:
        try:
            line = await asyncio.wait_for(process.stdout.readline(), STARTUP_TIMEOUT)
        except asyncio.TimeoutError:  # pragma: no cover - an emulator stuck at start-up
            line = b""
        text = line.decode().strip()
        if not text.startswith("listening on "):
            raise click.ClickException(f"the emulator did not start: {text or 'no output'}")
        yield text.removeprefix("listening on ")
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except asyncio.TimeoutError:  # pragma: no cover - a stuck emulator
                process.kill()
                await process.wait()


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The value below which `share` (0..1) of `sorted_values` lie (nearest rank); 0 if empty."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[rank]


def emulator_arguments(options: dict[str, Any]) -> list[str]:
    """The `python -m haorui_async.testing` arguments for the emulator options that differ
    from their defaults."""
    arguments: list[str] = []
    for spec in option_specs():
        value = options.get(spec.name, spec.default)
        if value is None or value == spec.default:
            continue
        arguments += [spec.flag] if spec.is_flag else [spec.flag, str(value)]
    return arguments


async def _demo(
    console: Console,
    count: int,
    concurrency: int,
    method: str,
    emulator_args: Sequence[str],
    backend: str = "httpx",
) -> int:
    """The whole demo; returns the exit code."""
    async with emulator_process(emulator_args) as base_url:
        console.print(f"emulator listening on [bold]{base_url}[/] (a subprocess)")
        async with AsyncSender(
            api_id=DEMO_API_ID,
            api_password=DEMO_API_PASSWORD,
            sender_id=DEMO_SENDER_ID,
            base_url=base_url,
            method="GET" if method == "GET" else "POST",
            backend="fast" if backend == "fast" else "httpx",
            max_concurrency=concurrency,
        ) as sender:
            console.print(f"backend: {backend}")
            try:
                result = await sender.send(DEMO_PHONENUMBER, "Your code is 112233")
            except SendError as error:
                # With injected faults the first message may fail too: show how.
                console.print(f"one SMS: {describe_failure(error)}", markup=False)
            else:
                console.print(
                    f"one SMS: status={result.status} message_id={result.message_id} "
                    f"uid={result.uid} remarks={result.remarks!r}"
                )
            counts, latencies, elapsed = await _fan_out(console, sender, count, concurrency)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(base_url + "/_emulator/stats")).json()
    _summary(console, count, counts, latencies, elapsed, stats)
    if sum(counts.values()) != count:  # pragma: no cover - send_many accounts for every item
        raise click.ClickException(f"{sum(counts.values())} outcomes for {count} sends")
    faults = any(flag.startswith("--rate-") for flag in emulator_args)
    if not faults and counts.get("sent", 0) != count:  # pragma: no cover - a broken SDK
        # Without injected faults every message must go through: anything else is a bug.
        return 1
    return 0


async def _fan_out(
    console: Console, sender: AsyncSender, count: int, concurrency: int
) -> tuple[Counter[str], list[float], float]:
    started: dict[int, float] = {}
    clock = time.perf_counter

    def messages() -> Iterator[SMS]:
        # Built lazily: a worker pulls the next message when it is free, so the time it is
        # yielded is the time its send starts.
        for index in range(count):
            message = SMS(DEMO_PHONENUMBER, f"demo message {index}", uid=f"demo-{index}")
            started[index] = clock()
            yield message

    counts: Counter[str] = Counter()
    latencies: list[float] = []
    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    begin = clock()
    with progress:
        task = progress.add_task("send", total=count)
        unreported = 0
        async for outcome in send_many(sender, messages(), concurrency=concurrency):
            latencies.append(clock() - started.pop(outcome.index))
            counts[outcome.kind] += 1
            unreported += 1
            if unreported == 100:
                progress.advance(task, unreported)
                unreported = 0
        progress.advance(task, unreported)
    return counts, latencies, clock() - begin


def _summary(
    console: Console,
    count: int,
    counts: Counter[str],
    latencies: list[float],
    elapsed: float,
    stats: dict[str, object],
) -> None:
    table = Table(title=f"{count} sends")
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    for kind in KINDS:
        table.add_row(kind, str(counts.get(kind, 0)))
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values())}[/]")
    console.print(table)
    latencies.sort()
    rate = count / elapsed if elapsed > 0 else 0.0
    p50, p99 = percentile(latencies, 0.50) * 1000, percentile(latencies, 0.99) * 1000
    console.print(
        f"{rate:,.0f} messages/s over {elapsed:.2f} s; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    console.print(f"emulator: {json.dumps(stats)}")


@app.command("demo")
@click.option(
    "-n",
    "--count",
    type=click.IntRange(min=0),
    default=DEFAULT_DEMO_COUNT,
    show_default=True,
    help="How many single sends to fan out after the first one.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=DEFAULT_DEMO_CONCURRENCY,
    show_default=True,
    help="Sends in flight at most.",
)
@click.option(
    "--method",
    type=click.Choice(["POST", "GET"], case_sensitive=False),
    default="POST",
    show_default=True,
)
@click.option(
    "--backend",
    type=click.Choice(["httpx", "fast"]),
    default="httpx",
    show_default=True,
    help="The SDK's backend: httpx's transport, or the fast one (asyncio protocols).",
)
@emulator_options
def demo(count: int, concurrency: int, method: str, backend: str, **options: Any) -> None:
    """Start the emulator on a free loopback port, send one SMS, then fan out N sends.

    Nothing leaves this machine: the emulator listens on 127.0.0.1 and accepts the demo
    account. Prints the outcome counts (they add up to N), messages/s and p50/p99 latency.
    The emulator's options (--rate-503 0.05, --rate-500 0.01, --latency 0.01, ...) show how
    the SDK sorts failures into the outcome kinds of send_many(): sent, failed, rejected,
    not_sent, unknown, invalid.
    """
    try:
        config_from_options(options)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    arguments = emulator_arguments(options)
    console = Console()
    raise SystemExit(
        asyncio.run(_demo(console, count, concurrency, method.upper(), arguments, backend))
    )
