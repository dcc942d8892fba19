"""A gateway that answers a byte at a time: the deadline of a send bounds it all the same.

A read timeout alone never fires here (a byte comes every 20 ms); only the send's deadline
can end the exchange. The request went out, so the outcome is unknown.
"""

from __future__ import annotations

from ._checks import MakeSender, dropped_by_the_client, send_with_unknown_outcome
from ._server import (
    Behaviour,
    Connection,
    ConnectionRecord,
    RequestRecord,
    Serve,
    answer_json,
    response_head,
)

#: Bytes trickled, one every `EVERY` seconds: 100 s in all, far beyond any test's patience.
TRICKLED = 5000
EVERY = 0.02
DEADLINE = 0.5


async def cut_off_at_the_deadline(
    serve: Serve, make_sender: MakeSender, behaviour: Behaviour, uid: str
) -> ConnectionRecord:
    """Send as `uid`, with a deadline of `DEADLINE` s, to a server acting out `behaviour`;
    check that the send is given up as an unknown outcome. Returns the connection, once the
    client has dropped it."""
    server = serve(behaviour)
    sender = make_sender(server, deadline=DEADLINE, timeout=5.0)
    await send_with_unknown_outcome(sender, uid, "a send past its deadline")
    return await dropped_by_the_client(server)


async def test_a_trickled_body_is_cut_off_at_the_deadline(
    serve: Serve, make_sender: MakeSender
) -> None:
    head = response_head(content_length=TRICKLED)

    async def trickle_body(conn: Connection, request: RequestRecord) -> None:
        # A valid answer, padded: only the time it takes is wrong with it.
        await conn.send(head)
        await conn.trickle(answer_json(request.uid).ljust(TRICKLED), every=EVERY)

    conn = await cut_off_at_the_deadline(serve, make_sender, trickle_body, "trickled-body")
    assert conn.bytes_written < len(head) + TRICKLED


async def test_a_trickled_head_is_cut_off_at_the_deadline(
    serve: Serve, make_sender: MakeSender
) -> None:
    # A head of about TRICKLED bytes (well under the head cap), every byte of it trickled.
    padding = [("X-Padding", "p" * (TRICKLED - 100))]

    async def trickle_head(conn: Connection, request: RequestRecord) -> None:
        body = answer_json(request.uid)
        await conn.trickle(response_head(content_length=len(body), headers=padding), EVERY)
        await conn.send(body)

    conn = await cut_off_at_the_deadline(serve, make_sender, trickle_head, "trickled-head")
    assert conn.bytes_written < len(response_head(content_length=100, headers=padding))
