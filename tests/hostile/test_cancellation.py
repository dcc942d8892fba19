"""A storm of cancelled sends leaves the sender whole: no slot, connection or answer leaks.

Hundreds of sends are cancelled, each at another point of its path (waiting for a slot, for
a connection, in the connect or the TLS handshake, writing, waiting for the answer). Each
must end cancelled, or done if it finished first; afterwards the sender must still send at
its full concurrency, every message getting its own answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

import pytest

from haorui_async import RetryPolicy, SendResult

from ._checks import PHONE, TEXT, MakeSender, within
from ._server import WAIT, Connection, RequestRecord, Serve, Signal

STORM = 500
CONCURRENCY = 20
AFTER = 200
#: How long the server takes to answer a message of the storm: a few ms, so that
#: cancellations land both before and after the request went out.
STORM_ANSWER_DELAY = 0.002
#: The spread of the storm's cancellations: after 0..50 loop turns, or 0..4.8 ms.
TURNS = 51
TIMEOUT_STEPS = 25
TIMEOUT_STEP = 0.0002


async def cancelled_send(send: asyncio.Task[SendResult], i: int) -> str:
    """Cancel the `i`-th send of the storm at its point; say how it ended."""
    if i % 2:
        await asyncio.wait({send}, timeout=(i // 2 % TIMEOUT_STEPS) * TIMEOUT_STEP)
    else:
        for _ in range(i // 2 % TURNS):
            await asyncio.sleep(0)
    send.cancel()
    try:
        result = await send
    except asyncio.CancelledError:
        return "cancelled"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return "completed" if result.uid == f"storm-{i}" else f"completed with uid {result.uid!r}"


@pytest.mark.parametrize("tls", [False, True], ids=["http", "tls"])
async def test_a_cancellation_storm_leaves_the_sender_whole(
    serve: Serve, make_sender: MakeSender, tls: bool
) -> None:
    full = Signal(f"{CONCURRENCY} sends after the storm in flight at once")
    held: set[str] = set()  # touched by the server's thread only

    async def answer(conn: Connection, request: RequestRecord) -> None:
        uid = request.uid or ""
        if uid.startswith("after-"):
            # Hold every answer until CONCURRENCY requests are in flight at once.
            held.add(uid)
            if len(held) >= CONCURRENCY:
                full.set()
            with contextlib.suppress(AssertionError):  # the test reports it; answer anyway
                await full.wait()
        else:
            await conn.pause(STORM_ANSWER_DELAY)
        await conn.answer(request.uid)

    server = serve(answer, tls=tls)
    sender = make_sender(
        server,
        max_concurrency=CONCURRENCY,
        timeout=WAIT,
        deadline=2 * WAIT,
        retry=RetryPolicy(attempts=3, backoff_base=0.0),
    )

    storm = [
        cancelled_send(asyncio.create_task(sender.send(PHONE, TEXT, uid=f"storm-{i}")), i)
        for i in range(STORM)
    ]
    endings = collections.Counter(await within(asyncio.gather(*storm), "the storm"))

    assert set(endings) <= {"cancelled", "completed"}, endings
    assert sum(endings.values()) == STORM

    after = [asyncio.create_task(sender.send(PHONE, TEXT, uid=f"after-{i}")) for i in range(AFTER)]
    try:
        await full.wait()
        results = await within(
            asyncio.gather(*after, return_exceptions=True), "the sends after the storm"
        )
    finally:
        for task in after:
            task.cancel()
        await asyncio.gather(*after, return_exceptions=True)

    failures = [repr(result) for result in results if not isinstance(result, SendResult)]
    assert not failures, failures
    assert [result.uid for result in results if isinstance(result, SendResult)] == [
        f"after-{i}" for i in range(AFTER)
    ]
