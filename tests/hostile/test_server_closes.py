"""Connections the gateway closes: idle ones are never reused, a cut answer is unknown.

A send that races a close may fail before the gateway read its request; that is `NotSent`,
retried by the sender, and must never end as an unknown outcome. Each test waits for the
server's close, then lets the client's loop turn, so the client has seen the EOF or reset.
"""

from __future__ import annotations

import pytest

from ._checks import PHONE, TEXT, MakeSender, send_with_unknown_outcome, within, yield_to_loop
from ._server import Behaviour, Connection, RequestRecord, Serve, Signal, answer_bytes

UIDS = ["one", "two", "three"]


async def answer_then_close(conn: Connection, request: RequestRecord) -> None:
    """A complete answer that keeps the connection alive, then a FIN while it is idle."""
    await conn.answer(request.uid)
    await conn.close()


async def answer_connection_close(conn: Connection, request: RequestRecord) -> None:
    """A complete answer that says `Connection: close`, then a FIN."""
    await conn.answer(request.uid, close=True)
    await conn.close()


@pytest.mark.parametrize(
    "behaviour",
    [answer_then_close, answer_connection_close],
    ids=["idle-close", "connection-close"],
)
async def test_a_connection_the_server_closed_is_not_reused(
    serve: Serve, make_sender: MakeSender, behaviour: Behaviour
) -> None:
    server = serve(behaviour)
    sender = make_sender(server, max_concurrency=1)

    for uid in UIDS:
        result = await within(sender.send(PHONE, TEXT, uid=uid), f"the send of {uid}")
        assert result.uid == uid
        await server.all_closed()
        await yield_to_loop()

    # Each message was read once (a retried NotSent was never read), each on a connection
    # of its own.
    assert [request.uid for request in server.requests] == UIDS
    assert [request.index for request in server.requests] == [0, 0, 0]


async def test_a_connection_reset_while_idle_is_not_reused(
    serve: Serve, make_sender: MakeSender
) -> None:
    # The reset waits until the client has its answer: a reset drops unread bytes.
    answered = {uid: Signal(f"the client having the answer to {uid}") for uid in UIDS}

    async def answer_then_reset(conn: Connection, request: RequestRecord) -> None:
        await conn.answer(request.uid)
        if request.uid in answered:
            await answered[request.uid].wait()
        await conn.reset()

    server = serve(answer_then_reset)
    sender = make_sender(server, max_concurrency=1)

    for uid in UIDS:
        result = await within(sender.send(PHONE, TEXT, uid=uid), f"the send of {uid}")
        assert result.uid == uid
        answered[uid].set()
        await server.all_closed()
        await yield_to_loop()

    assert [request.uid for request in server.requests] == UIDS
    assert {conn.ended_by for conn in server.connections} == {"server-reset"}


async def test_a_reset_in_the_middle_of_the_answer_is_an_unknown_outcome(
    serve: Serve, make_sender: MakeSender
) -> None:
    async def half_then_reset(conn: Connection, request: RequestRecord) -> None:
        whole = answer_bytes(request.uid)
        await conn.send(whole[: len(whole) // 2])
        await conn.reset()

    server = serve(half_then_reset)
    sender = make_sender(server, max_concurrency=1)

    await send_with_unknown_outcome(sender, "cut-off", "the send")

    assert [request.uid for request in server.requests] == ["cut-off"]
