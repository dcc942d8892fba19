"""The bulk benchmark: peak memory of sending many SMS at once, without sockets.

The peer is what a user writes by hand, `asyncio.gather` over one `send()` per message: one
task per message, all alive at once. `send_many` is measured beside it, fed by a lazy
generator. (`benchmarks/bulk_memory.py` measures the same against the process's peak RSS, at
up to a million messages.)
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from haorui_async import SMS, AsyncSender

from . import account

__all__ = ["run_bulk"]

_ANSWER: Final = b'{"message_id":26471304,"status":"S","remarks":"Submitted","uid":null}'

BulkRun = Callable[[AsyncSender, int], Awaitable[None]]


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, content=_ANSWER)


async def _gather(sender: AsyncSender, count: int) -> None:
    """The hand-written peer: one task per message, gathered."""
    phone, text = account.PHONENUMBER, account.TEXTMESSAGE
    await asyncio.gather(*(sender.send(phone, text) for _ in range(count)))


async def _send_many(sender: AsyncSender, count: int) -> None:
    """`send_many` over a lazy generator of messages, each outcome consumed as it comes."""
    try:
        from haorui_async._bulk import send_many
    except ImportError:  # pragma: no cover - an SDK without send_many
        raise NotImplementedError("AsyncSender has no send_many in this version") from None
    phone, text = account.PHONENUMBER, account.TEXTMESSAGE
    messages = (SMS(phone, text) for _ in range(count))
    async for _ in send_many(sender, messages):
        pass


async def _peak(run: BulkRun, count: int) -> dict[str, Any]:
    api_id, password = account.API_ID, account.API_PASSWORD
    async with AsyncSender(
        api_id=api_id,
        api_password=password,
        sender_id=account.SENDER_ID,
        base_url="http://127.0.0.1:9",
        transport=httpx.MockTransport(_answer),
    ) as sender:
        tracemalloc.start()
        begin = time.perf_counter()
        try:
            await run(sender, count)
            elapsed = time.perf_counter() - begin
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return {"messages": count, "peak_bytes": peak, "seconds_traced": elapsed}


def run_bulk(count: int = 5000) -> dict[str, dict[str, Any]]:
    """Peak traced memory of sending `count` SMS by each bulk method, or why it is missing.

    Seconds are measured under `tracemalloc`, which slows Python several times: compare memory.
    """
    results: dict[str, dict[str, Any]] = {}
    runs: dict[str, BulkRun] = {"gather of send()": _gather, "send_many": _send_many}
    for name, run in runs.items():
        try:
            results[name] = asyncio.run(_peak(run, count))
        except NotImplementedError as exc:  # pragma: no cover - an SDK without send_many
            results[name] = {"messages": count, "note": str(exc)}
    return results
