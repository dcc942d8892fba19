"""Answers past the caps: a send's memory is bounded whatever the gateway sends back.

The caps are `MAX_ANSWER_HEAD` and `MAX_ANSWER_BODY` (`haorui_async._defaults`). An answer past
either is given up as an unknown outcome (the request went out), the connection is dropped
without reading the rest, and an encoding the SDK did not ask for is never decoded.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import pytest

from haorui_async._defaults import MAX_ANSWER_BODY, MAX_ANSWER_HEAD

from ._checks import (
    MB,
    PHONE,
    TEXT,
    MakeSender,
    dropped_by_the_client,
    peak_memory,
    send_with_unknown_outcome,
    within,
)
from ._server import (
    Behaviour,
    Connection,
    RequestRecord,
    Serve,
    answer_bytes,
    answer_json,
    response_head,
)

#: The body the gateway announces, or pours out: far past the cap.
HUGE = 50_000_000
#: Bytes the server may have written before the client gave up: the caps, the socket buffers
#: of both ends and asyncio's, with room to spare, and still a tiny part of HUGE.
WRITTEN_AT_MOST = 4 * MB
#: The most a send past the caps may allocate at once.
MEMORY_AT_MOST = 8 * MB
#: The size of the gzip bomb once inflated.
INFLATED = 200 * MB
CHUNK = b"x" * (64 * 1024)


def pieces(total: int, chunk: bytes = CHUNK) -> Iterator[bytes]:
    """`total` bytes in pieces of `chunk`."""
    whole, rest = divmod(total, len(chunk))
    for _ in range(whole):
        yield chunk
    yield chunk[:rest]


def chunked(total: int, chunk: bytes = CHUNK) -> Iterator[bytes]:
    """Chunks of a chunked body, `total` bytes of data and never the last chunk."""
    for piece in pieces(total, chunk):
        yield b"%x\r\n%b\r\n" % (len(piece), piece)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """About 200 KB of gzip that inflates to 200 MB of zeros (built without holding them)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MB)
    parts = [compressor.compress(zeros) for _ in range(INFLATED // MB)]
    parts.append(compressor.flush())
    return b"".join(parts)


async def huge_body(conn: Connection, request: RequestRecord) -> None:
    await conn.send(response_head(content_length=HUGE))
    await conn.pour(pieces(HUGE))


async def endless_chunks(conn: Connection, request: RequestRecord) -> None:
    await conn.send(response_head(content_length=None, headers=[("Transfer-Encoding", "chunked")]))
    # "Never ends": HUGE bytes of chunks, then silence with the connection open.
    if await conn.pour(chunked(HUGE)):
        await conn.wait_ended()


@pytest.mark.parametrize(
    "behaviour", [huge_body, endless_chunks], ids=["50-MB-body", "chunked-body-that-never-ends"]
)
async def test_a_body_past_the_cap_is_given_up_without_reading_it(
    serve: Serve, make_sender: MakeSender, behaviour: Behaviour
) -> None:
    server = serve(behaviour)
    sender = make_sender(server)

    with peak_memory() as peak:
        await send_with_unknown_outcome(sender, "past-the-cap", "a send with a 50 MB answer")

    assert peak.bytes < MEMORY_AT_MOST
    conn = await dropped_by_the_client(server)
    assert conn.bytes_written < WRITTEN_AT_MOST


async def test_an_answer_at_the_body_cap_is_read(serve: Serve, make_sender: MakeSender) -> None:
    async def padded_to_the_cap(conn: Connection, request: RequestRecord) -> None:
        await conn.send(
            answer_bytes(request.uid, body=answer_json(request.uid).ljust(MAX_ANSWER_BODY))
        )

    server = serve(padded_to_the_cap)
    sender = make_sender(server)

    result = await within(sender.send(PHONE, TEXT, uid="at-the-cap"), "a send")

    assert result.uid == "at-the-cap"


async def test_an_answer_one_byte_past_the_body_cap_is_an_unknown_outcome(
    serve: Serve, make_sender: MakeSender
) -> None:
    async def padded_past_the_cap(conn: Connection, request: RequestRecord) -> None:
        body = answer_json(request.uid).ljust(MAX_ANSWER_BODY + 1)
        await conn.send(answer_bytes(request.uid, body=body))

    sender = make_sender(serve(padded_past_the_cap))

    await send_with_unknown_outcome(sender, "past-the-cap")


async def test_every_request_asks_for_the_identity_encoding(
    serve: Serve, make_sender: MakeSender
) -> None:
    async def answer(conn: Connection, request: RequestRecord) -> None:
        await conn.answer(request.uid)

    server = serve(answer)
    sender = make_sender(server)

    await within(sender.send(PHONE, TEXT, uid="identity"), "a send")

    (request,) = server.requests
    assert request.header("Accept-Encoding") == "identity"


async def test_a_gzip_bomb_is_never_inflated(
    serve: Serve, make_sender: MakeSender, gzip_bomb: bytes
) -> None:
    async def bomb(conn: Connection, request: RequestRecord) -> None:
        headers = [("Content-Encoding", "gzip")]
        await conn.send(response_head(content_length=len(gzip_bomb), headers=headers))
        await conn.send(gzip_bomb)

    server = serve(bomb)
    sender = make_sender(server)

    with peak_memory() as peak:
        await send_with_unknown_outcome(sender, "bomb", "a send answered by a gzip bomb")

    assert peak.bytes < MEMORY_AT_MOST
    assert server.requests[0].header("Accept-Encoding") == "identity"


async def test_a_small_gzip_answer_is_not_decoded(serve: Serve, make_sender: MakeSender) -> None:
    # The documented answer, gzipped and well within the cap: still an encoding the SDK did
    # not ask for, so its bytes are not the documented JSON.
    async def gzipped(conn: Connection, request: RequestRecord) -> None:
        body = gzip.compress(answer_json(request.uid))
        await conn.send(
            answer_bytes(request.uid, body=body, headers=[("Content-Encoding", "gzip")])
        )

    sender = make_sender(serve(gzipped))

    await send_with_unknown_outcome(sender, "gzipped")


@pytest.mark.parametrize(
    "headers",
    [
        [(f"X-Filler-{n}", "y") for n in range(10_000)],
        # One header twice the cap long: past the cap, yet under h11's and httpcore's own limits.
        [("X-Padding", "p" * (2 * MAX_ANSWER_HEAD))],
    ],
    ids=["ten-thousand-headers", "one-header-twice-the-cap"],
)
async def test_an_answer_head_past_the_head_cap_is_refused(
    serve: Serve, make_sender: MakeSender, headers: list[tuple[str, str]]
) -> None:
    async def long_head(conn: Connection, request: RequestRecord) -> None:
        await conn.send(answer_bytes(request.uid, headers=headers))

    server = serve(long_head)
    sender = make_sender(server)

    await send_with_unknown_outcome(sender, "long-head")

    await dropped_by_the_client(server)
