"""The bulk benchmark: peak memory of sending many SMS at once, without sockets.

The peer is what a user writes by hand, `asyncio.gather` over one `send()` per message: one
task per message, all alive at once. `AsyncSender.send_many` is measured beside it once it
exists: `_send_many()` below is the hook to fill in (one call sending `count` messages,
consuming the results as they come); until then the report says it is not measured.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any, Final

import httpx

from .. import AsyncSender
from . import _account

__all__ = ["run_bulk"]

_ANSWER: Final = b'{"message_id":26471304,"status":"S","remarks":"Submitted","uid":null}'

BulkRun = Callable[[AsyncSender, int], Awaitable[None]]


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/json"}, content=_ANSWER)


async def _gather(sender: AsyncSender, count: int) -> None:
    """The hand-written peer: one task per message, gathered."""
    phone, text = _account.PHONENUMBER, _account.TEXTMESSAGE
    await asyncio.gather(*(sender.send(phone, text) for _ in range(count)))


async def _send_many(sender: AsyncSender, count: int) -> None:
    """The `send_many` run under measurement: the hook for `AsyncSender.send_many`."""
    raise NotImplementedError("AsyncSender.send_many is not benchmarked yet")


async def _peak(run: BulkRun, count: int) -> dict[str, Any]:
    api_id, password = _account.API_ID, _account.API_PASSWORD
    async with AsyncSender(
        api_id=api_id,
        api_password=password,
        sender_id=_account.SENDER_ID,
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
        except NotImplementedError as exc:
            results[name] = {"messages": count, "note": str(exc)}
    return results
