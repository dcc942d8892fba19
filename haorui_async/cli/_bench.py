"""`haorui-async bench`: the SDK's throughput and latency on the user's own setup.

N messages go through `send_many()`, C at a time, to the gateway at `--url`, or without it
to the built-in emulator started on loopback (in a subprocess, so client and server share
neither an event loop nor the GIL). Prints messages/s, p50/p99 latency and the outcomes by
kind. No peer is measured here: the comparison with raw httpx, aiohttp and an asyncio floor
is the project's benchmark suite (`python benchmarks/run.py` in a checkout).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Final

import click

from .. import _defaults as defaults
from .._exceptions import ConfigurationError
from .._message import SMS
from .._outcome import KINDS
from .._sender import AsyncSender
from ..testing._model import DEMO_API_ID, DEMO_API_PASSWORD, DEMO_SENDER_ID
from ._app import app
from ._common import (
    BadInput,
    Timings,
    credentials,
    credentials_option,
    describe_failure,
    exit_code_for_counts,
    load_options,
    sender_id_option,
    time_sends,
)
from ._emulator import emulator_process

#: Enough sends for a p99 taken from ten of them; against a real gateway each is a billed SMS.
DEFAULT_BENCH_COUNT: Final = 1000
#: The SDK's own default, so the figure is what an `AsyncSender()` with defaults does.
DEFAULT_BENCH_CONCURRENCY: Final = defaults.DEFAULT_MAX_CONCURRENCY
#: The emulator accepts any number; a real gateway is only sent to a number the user gives.
EMULATOR_PHONENUMBER: Final = "8613912345678"
BENCH_TEXT: Final = "haorui-async bench {index}"


async def _bench(
    url: str | None,
    sender_options: dict[str, Any],
    phonenumber: str,
    count: int,
    concurrency: int,
) -> int:
    """The whole run against `url` (None: a fresh emulator); returns the exit code."""
    if url is not None:
        return await _measure(url, sender_options, phonenumber, count, concurrency)
    async with emulator_process() as emulator_url:
        click.echo(f"gateway: {emulator_url} (the built-in emulator, in a subprocess)")
        demo_account = {
            "api_id": DEMO_API_ID,
            "api_password": DEMO_API_PASSWORD,
            "sender_id": DEMO_SENDER_ID,
        }
        options = {**demo_account, **sender_options}
        return await _measure(emulator_url, options, phonenumber, count, concurrency)


async def _measure(
    url: str, sender_options: dict[str, Any], phonenumber: str, count: int, concurrency: int
) -> int:
    try:
        sender = AsyncSender(base_url=url, max_concurrency=concurrency, **sender_options)
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    backend, method = sender_options["backend"], sender_options["method"]
    click.echo(f"{count:,} sends to {url}: backend {backend}, {method}, {concurrency} in flight")
    async with sender:
        timings = await time_sends(
            sender,
            lambda index: SMS(phonenumber, BENCH_TEXT.format(index=index)),
            count,
            concurrency,
        )
    _report(timings)
    return exit_code_for_counts(timings.counts)


def _report(timings: Timings) -> None:
    click.echo(
        f"{timings.rate:,.0f} messages/s over {timings.elapsed:.2f} s; "
        f"latency p50 {timings.latency_ms(0.50):.1f} ms, p99 {timings.latency_ms(0.99):.1f} ms"
    )
    kinds = ", ".join(f"{kind} {timings.counts.get(kind, 0):,}" for kind in KINDS)
    click.echo(f"outcomes: {kinds}")
    if timings.first_error is not None:
        click.echo(f"first failure: {describe_failure(timings.first_error)}")


@app.command("bench")
@click.option(
    "--url",
    default=None,
    help="The gateway's base URL. Without it, the built-in emulator is started on loopback.",
)
@click.option(
    "--to",
    "phonenumber",
    default=None,
    help="The number every message goes to; required with --url (each one is a real SMS).",
)
@load_options(
    count=DEFAULT_BENCH_COUNT,
    concurrency=DEFAULT_BENCH_CONCURRENCY,
    count_help="How many messages to send.",
)
@sender_id_option
@credentials_option
def bench(
    url: str | None,
    phonenumber: str | None,
    count: int,
    concurrency: int,
    backend: str,
    method: str,
    sender_id: str | None,
    credentials_file: Path | None,
) -> None:
    """Send N messages with the SDK, C at a time, and print messages/s, p50/p99 latency and
    the outcomes by kind.

    With --url, the credentials come from --credentials-file or HAORUI_API_ID and
    HAORUI_API_PASSWORD, and every message goes to --to: against a real gateway, each one is
    a real SMS. Without --url, the built-in emulator runs on 127.0.0.1 with the demo account
    and nothing leaves this machine. The timing includes opening the connections.

    Exit status: 0 when every message was sent; else that of `haorui-async bulk` (3 when some
    may have been sent, 1 when some failed).
    """
    if url is not None and phonenumber is None:
        raise click.BadParameter("required with --url: every message goes to it", param_hint="--to")
    options: dict[str, Any] = {
        "backend": "fast" if backend == "fast" else "httpx",
        "method": "GET" if method.upper() == "GET" else "POST",
    }
    if url is not None:
        creds = credentials(credentials_file)
        options.update(api_id=creds["api_id"], api_password=creds["api_password"])
    if sender_id is not None:
        options["sender_id"] = sender_id
    phonenumber = phonenumber or EMULATOR_PHONENUMBER
    raise SystemExit(asyncio.run(_bench(url, options, phonenumber, count, concurrency)))
