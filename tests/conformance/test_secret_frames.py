"""No frame a failed send passes through holds the password in a form a traceback shows.

A traceback printed with its locals (`traceback.TracebackException(capture_locals=True)`,
pytest's `--showlocals`, Sentry's default `include_local_variables`) shows the repr of every
local of every frame, down the chain of causes; Sentry lists a sequence's or a mapping's
items instead, bytes decoded. The request carries the password (a POST's
body, a GET's query), so each frame of the exchange must hold it only in an object whose repr
hides it. Checked on each backend, POST and GET, for a refused answer, a connection reset
after the request, the send's own deadline, and the caller's cancellation (`asyncio.timeout`:
its `TimeoutError` chains the `CancelledError` that went through every frame of the exchange).
An answer may carry it too, where a gateway echoes what it was sent: no frame of a send or a
lookup whose answer echoes it shows it either.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from types import TracebackType
from urllib.parse import quote, quote_plus

import pytest

from haorui_async import AsyncSender, LookupFailed, SendError

from .._kit import PASSWORD
from ._servers import HOST, Fault, RawServer, read_head_and_body, reset
from .conftest import MakeSender

pytestmark = pytest.mark.integration

#: The password's forms on the wire (as is, percent-encoded in a GET, JSON-escaped in a
#: POST), each also as the repr of a str or of bytes shows it.
WIRE_FORMS = {PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), json.dumps(PASSWORD)[1:-1]}
FORMS = (
    WIRE_FORMS
    | {repr(form)[1:-1] for form in WIRE_FORMS}
    | {repr(form.encode())[2:-1] for form in WIRE_FORMS}
)
REFUSED = json.dumps({"message_id": "", "status": "F", "remarks": "no", "uid": None}).encode()


def chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception chained to it, as a traceback shows them."""
    todo, seen = [exc], set()
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        yield one
        todo.extend(e for e in (one.__cause__, one.__context__) if e is not None)


def shown(value: object, depth: int = 3) -> str:
    """What a traceback printer shows of a local: its repr; and, as error trackers do
    (Sentry's serializer), the items of a mapping or a sequence one by one, bytes decoded."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace") + repr(value)
    if depth and isinstance(value, Mapping):
        return " ".join(shown(k, depth - 1) + shown(v, depth - 1) for k, v in value.items())
    if depth and isinstance(value, (Sequence, AbstractSet)) and not isinstance(value, str):
        return " ".join(shown(item, depth - 1) for item in value)
    return repr(value)


def shown_locals(exc: BaseException) -> list[str]:
    """What is shown of every local of every frame of `exc`'s tracebacks but this module's
    own (this test's frame holds the sender, whose password it set)."""
    lines = []
    for one in chain(exc):
        tb: TracebackType | None = one.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if frame.f_code.co_filename != __file__:
                lines += [
                    f"{frame.f_code.co_name}: {name} = {shown(value)}"
                    for name, value in frame.f_locals.items()
                ]
            tb = tb.tb_next
    return lines


def assert_no_password(exc: BaseException) -> None:
    shown = shown_locals(exc)
    assert shown, "the traceback has the frames of the send"
    leaks = [line for line in shown if any(form in line for form in FORMS)]
    assert not leaks, "\n".join(leak[:300] for leak in leaks)


async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawServer) -> None:
    await read_head_and_body(reader)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
    writer.write(head % len(REFUSED) + REFUSED)
    await writer.drain()
    await reader.read()  # until the client closes


def answering(body: bytes) -> Fault:
    """A fault that answers every request 200 with `body`."""

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawServer
    ) -> None:
        await read_head_and_body(reader)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        writer.write(head % len(body) + body)
        await writer.drain()
        await reader.read()  # until the client closes

    return answer


#: Answers that echo the password (a gateway quoting what it was sent): the error's text is
#: scrubbed, and no frame of the answer's reading may show it either.
ECHOES = {
    "refused-echoing": {"status": "F", "remarks": f"bad password {PASSWORD}", "uid": None},
    "malformed-echoing": {"status": "S", "message_id": None, "remarks": PASSWORD},
    "unknown-status-echoing": {"status": PASSWORD, "remarks": PASSWORD},
}


async def reset_after_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawServer
) -> None:
    await read_head_and_body(reader)
    reset(writer)


class NeverAnswer:
    """Reads the request and answers nothing; `read` is set once a request was read."""

    def __init__(self) -> None:
        self.read = asyncio.Event()

    async def __call__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: RawServer
    ) -> None:
        await read_head_and_body(reader)
        self.read.set()
        await reader.read()  # until the client gives up


async def failure_of(sender: AsyncSender, how: str, fault: object) -> BaseException:
    """What the send raises: on its own (`how` "send"), or cancelled by its caller once the
    request reached the server (a caller's timeout does just this)."""
    send = asyncio.ensure_future(sender.send("8613912345678", "hi"))
    if how == "cancelled":
        assert isinstance(fault, NeverAnswer)
        await fault.read.wait()
        send.cancel()
    try:
        await send
    except (SendError, asyncio.CancelledError) as exc:
        return exc
    raise AssertionError("the send succeeded")


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    ("fault", "how"),
    [
        (refuse, "send"),
        (reset_after_request, "send"),
        (NeverAnswer, "deadline"),
        (NeverAnswer, "cancelled"),
    ],
    ids=["refused", "reset", "deadline", "cancelled"],
)
async def test_no_frame_of_a_failed_send_shows_the_password(
    backend: MakeSender, method: str, fault: object, how: str
) -> None:
    if isinstance(fault, type):
        fault = fault()
    async with RawServer(fault).serving() as server:  # type: ignore[arg-type]  # a Fault
        sender = backend(server.url, method=method, deadline=0.5 if how == "deadline" else 30.0)
        async with sender:
            failure = await failure_of(sender, how, fault)
    expected = asyncio.CancelledError if how == "cancelled" else SendError
    assert isinstance(failure, expected)
    assert_no_password(failure)


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize(
    "body",
    [json.dumps(echo).encode() for echo in ECHOES.values()] + [f"<h1>{PASSWORD}</h1>".encode()],
    ids=[*ECHOES, "not-json-echoing"],
)
async def test_no_frame_of_an_answer_echoing_the_password_shows_it(
    backend: MakeSender, method: str, body: bytes
) -> None:
    async with RawServer(answering(body)).serving() as server:
        sender = backend(server.url, method=method)
        async with sender:
            failure = await failure_of(sender, "send", None)
    assert isinstance(failure, SendError)
    assert_no_password(failure)


@pytest.mark.parametrize("lookup", ["get_delivery_status", "check_balance"])
async def test_no_frame_of_a_lookup_whose_answer_echoes_the_password_shows_it(
    backend: MakeSender, lookup: str
) -> None:
    async with RawServer(answering(f"<h1>{PASSWORD}</h1>".encode())).serving() as server:
        sender = backend(server.url)
        async with sender:
            call = getattr(sender, lookup)
            with pytest.raises(LookupFailed) as caught:
                await (call(uid="u-1") if lookup == "get_delivery_status" else call())
    assert_no_password(caught.value)


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_no_frame_of_a_send_that_cannot_connect_shows_the_password(
    backend: MakeSender, method: str
) -> None:
    with socket.socket() as unused:
        unused.bind((HOST, 0))
        port = unused.getsockname()[1]
    async with backend(f"http://{HOST}:{port}", method=method) as sender:
        with pytest.raises(SendError) as caught:
            await sender.send("8613912345678", "hi")
    assert_no_password(caught.value)
