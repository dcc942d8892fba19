"""Answers nobody asked for: a message's result is only ever the answer to its own request.

HTTP/1.1 ties an answer to a request by position on the connection alone; the documented
answer also echoes the message's `uid`. Bytes beyond an answer, or an answer for another uid,
mean the connection can no longer be trusted: it is dropped, and no later message takes a
stray answer for its own.
"""

from __future__ import annotations

from ._checks import PHONE, TEXT, MakeSender, send_with_unknown_outcome, within, yield_to_loop
from ._server import Connection, RequestRecord, Serve, Signal, answer_bytes


async def test_a_second_answer_to_one_request_is_never_taken_for_the_next(
    serve: Serve, make_sender: MakeSender
) -> None:
    async def answer_twice(conn: Connection, request: RequestRecord) -> None:
        if request.uid == "first":
            await conn.send(answer_bytes("first") + answer_bytes("stray", message_id=1))
        else:
            await conn.answer(request.uid)

    server = serve(answer_twice)
    sender = make_sender(server, max_concurrency=1)

    for uid in ["first", "second", "third"]:
        result = await within(sender.send(PHONE, TEXT, uid=uid), f"the send of {uid}")
        assert result.uid == uid
        assert result.message_id != "1"


async def test_an_answer_for_another_uid_is_an_unknown_outcome_and_drops_the_connection(
    serve: Serve, make_sender: MakeSender
) -> None:
    async def answer_for_someone_else(conn: Connection, request: RequestRecord) -> None:
        await conn.answer("someone-else" if request.uid == "mine" else request.uid)

    server = serve(answer_for_someone_else)
    sender = make_sender(server, max_concurrency=1)

    await send_with_unknown_outcome(sender, "mine", "the send of mine")
    result = await within(sender.send(PHONE, TEXT, uid="next"), "the next send")

    assert result.uid == "next"
    mine, following = server.requests
    assert (mine.uid, following.uid) == ("mine", "next")
    assert following.connection != mine.connection
    await server.connections[mine.connection].peer_closed.wait()


async def test_a_stray_answer_on_an_idle_connection_is_not_taken_for_the_next(
    serve: Serve, make_sender: MakeSender
) -> None:
    stray_asked = Signal("the test asking for the stray answer")
    stray_sent = Signal("the server writing the stray answer")

    async def stray_after_first(conn: Connection, request: RequestRecord) -> None:
        await conn.answer(request.uid)
        if request.uid == "before":
            await stray_asked.wait()
            await conn.send(answer_bytes("stray", message_id=1))
            stray_sent.set()

    server = serve(stray_after_first)
    sender = make_sender(server, max_concurrency=1)

    before = await within(sender.send(PHONE, TEXT, uid="before"), "the first send")
    assert before.uid == "before"
    stray_asked.set()
    await stray_sent.wait()
    await yield_to_loop()
    after = await within(sender.send(PHONE, TEXT, uid="after"), "the send after the stray")

    assert after.uid == "after"
    assert after.message_id != "1"
