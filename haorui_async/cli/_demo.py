"""`haorui-async demo`: the SDK against the built-in emulator, on loopback, in one command.

The emulator runs in a subprocess, so client and server do not share an event loop or the
GIL: one SMS is sent and printed, then N single sends fan out through `send_many()` under a
progress bar, and their outcomes, throughput and latencies are summed up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any, Final

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .._bulk import KINDS
from .._exceptions import SendError
from .._message import SMS
from .._sender import AsyncSender
from ..testing._cli import config_from_options
from ..testing._config import option_specs
from ..testing._model import DEMO_API_ID, DEMO_API_PASSWORD, DEMO_SENDER_ID
from ._app import app
from ._common import Timings, describe_failure, load_options, time_sends
from ._emulator import emulator_options, emulator_process

#: Sends in flight by default: enough to keep one emulator busy without a pool so large that
#: connection set-up dominates a short run.
DEFAULT_DEMO_CONCURRENCY: Final = 50
DEFAULT_DEMO_COUNT: Final = 10_000
DEMO_PHONENUMBER: Final = "8613912345678"


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
            timings = await _fan_out(console, sender, count, concurrency)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(base_url + "/_emulator/stats")).json()
    _summary(console, count, timings, stats)
    counts = timings.counts
    if sum(counts.values()) != count:  # pragma: no cover - send_many accounts for every item
        raise click.ClickException(f"{sum(counts.values())} outcomes for {count} sends")
    faults = any(flag.startswith("--rate-") for flag in emulator_args)
    if not faults and counts.get("sent", 0) != count:  # pragma: no cover - a broken SDK
        # Without injected faults every message must go through: anything else is a bug.
        return 1
    return 0


async def _fan_out(console: Console, sender: AsyncSender, count: int, concurrency: int) -> Timings:
    progress = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("send", total=count)
        return await time_sends(
            sender,
            lambda index: SMS(DEMO_PHONENUMBER, f"demo message {index}", uid=f"demo-{index}"),
            count,
            concurrency,
            progress=lambda done: progress.advance(task, done),
        )


def _summary(console: Console, count: int, timings: Timings, stats: dict[str, object]) -> None:
    table = Table(title=f"{count} sends")
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    for kind in KINDS:
        table.add_row(kind, str(timings.counts.get(kind, 0)))
    table.add_row("[bold]total[/]", f"[bold]{sum(timings.counts.values())}[/]")
    console.print(table)
    p50, p99 = timings.latency_ms(0.50), timings.latency_ms(0.99)
    console.print(
        f"{timings.rate:,.0f} messages/s over {timings.elapsed:.2f} s; "
        f"latency p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )
    console.print(f"emulator: {json.dumps(stats)}")


@app.command("demo")
@load_options(
    count=DEFAULT_DEMO_COUNT,
    concurrency=DEFAULT_DEMO_CONCURRENCY,
    count_help="How many single sends to fan out after the first one.",
    least_count=0,
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
