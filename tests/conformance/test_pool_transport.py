"""The SDK's own HTTP/1.1 pool on its own: `PoolTransport` (httpx's interface), `FastBackend`
(the pool driven directly) and the pure `_wire` writer, through raw loopback servers.

Ported from the tests of the former `FastTransport`; where the contract changed on purpose, the
test says so. Every test runs on asyncio's loop and on uvloop (see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import httpx
import pytest
import trustme

from haorui_async import ConfigurationError
from haorui_async._backends import Answer
from haorui_async._backends._fast import FastBackend
from haorui_async._backends._transport import DEADLINE_EXTENSION, PoolTransport
from haorui_async._backends._wire import (
    AnswerReader,
    AnswerTooLarge,
    H11Reader,
    HttptoolsReader,
    PlainReader,
    encode_request,
    header_block,
)
from haorui_async._defaults import MAX_ANSWER_BODY, MAX_ANSWER_HEAD
from haorui_async._protocol import Request

from ._servers import (
    HOST,
    RawServer,
    answer_bytes,
    free_port,
    read_head_and_body,
    reset,
    until,
)

pytestmark = pytest.mark.integration

Parser = Literal["httptools", "plain", "h11"]
PARSERS: list[Parser] = ["httptools", "plain", "h11"]
TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
NO_TIMEOUTS = {"connect": None, "read": None, "write": None, "pool": None}
#: A safety bound on waiting for a server-side event, so a broken test fails instead of hanging.
EVENT_BOUND = 10.0

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, RawServer], Any]


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> Parser:
    name: Parser = request.param
    return name


class Pools:
    """The pools a test opens (`PoolTransport`s and `FastBackend`s), all closed after it."""

    def __init__(self) -> None:
        self.made: list[PoolTransport | FastBackend] = []

    def transport(self, url: str, **options: Any) -> PoolTransport:
        transport = PoolTransport(url, **options)
        self.made.append(transport)
        return transport

    def fast_backend(self, url: str, parser: Parser) -> FastBackend:
        backend = fast_backend(url, parser)
        self.made.append(backend)
        return backend

    @contextlib.asynccontextmanager
    async def serving(
        self, handler: Handler, **options: Any
    ) -> AsyncIterator[tuple[RawServer, PoolTransport]]:
        """A raw server acting out `handler`, and a transport for it with `options`."""
        async with RawServer(handler).serving() as server:
            yield server, self.transport(server.url, **options)

    @contextlib.asynccontextmanager
    async def serving_fast(
        self, handler: Handler, parser: Parser
    ) -> AsyncIterator[tuple[RawServer, FastBackend]]:
        """A raw server acting out `handler`, and a `FastBackend` for it."""
        async with RawServer(handler).serving() as server:
            yield server, self.fast_backend(server.url, parser)


@pytest.fixture
async def pools() -> AsyncIterator[Pools]:
    pools = Pools()
    yield pools
    for pool in pools.made:
        await pool.aclose()


def post(
    url: str,
    body: bytes = b'{"uid": null}',
    /,
    *,
    deadline: float | None = None,
    **timeouts: float | None,
) -> httpx.Request:
    """A SendSMS request to `url` with the `TIMEOUTS` (bar those given) and `deadline`."""
    extensions: dict[str, Any] = {"timeout": {**TIMEOUTS, **timeouts}}
    if deadline is not None:
        extensions[DEADLINE_EXTENSION] = deadline
    return httpx.Request(
        "POST",
        url + "/api/SendSMS",
        headers={"Content-Type": "application/json"},
        content=body,
        extensions=extensions,
    )


def deadline(seconds: float = 30.0) -> float:
    """The loop time `seconds` from now."""
    return asyncio.get_running_loop().time() + seconds


async def exchange(transport: PoolTransport, request: httpx.Request) -> httpx.Response:
    response = await transport.handle_async_request(request)
    await response.aread()
    await response.aclose()
    return response


async def event(flag: asyncio.Event) -> None:
    await asyncio.wait_for(flag.wait(), EVENT_BOUND)


async def at_once(
    transport: PoolTransport, count: int, **timeouts: float | None
) -> list[httpx.Response]:
    """The responses to `count` exchanges on `transport`, all started at once."""
    requests = [post(transport.origin, **timeouts) for _ in range(count)]
    return await asyncio.gather(*(exchange(transport, request) for request in requests))


async def queued(transport: PoolTransport) -> asyncio.Future[httpx.Response]:
    """Start an exchange on `transport` and let it run (one loop turn) until it waits its turn."""
    waiting = asyncio.ensure_future(exchange(transport, post(transport.origin)))
    await asyncio.sleep(0)
    return waiting


async def cancel(task: asyncio.Future[Any]) -> None:
    """Cancel `task` and check that it ends cancelled."""
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@contextlib.contextmanager
def ends_within(seconds: float) -> Iterator[None]:
    """Check that the block ends within `seconds` (a timeout it must not wait out)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    yield
    assert loop.time() - started < seconds


async def read_to_the_end(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass


def serve_answers(*answers: bytes, then_wait: float = 0.0) -> Handler:
    """A fault handler that answers each request on the connection with the next answer."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        for answer in answers:
            await server.read_request(reader)
            writer.write(answer)
            await writer.drain()
        await asyncio.sleep(then_wait)

    return handle


def keep_answering(
    answer: bytes, delay: float = 0.0, *, keep: list[tuple[bytes, bytes]] | None = None
) -> Handler:
    """A handler that answers every request on the connection with `answer`, after `delay` s;
    each request read (its head and body) is appended to `keep`."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while True:
            request = await server.read_head_and_body(reader)
            if keep is not None:
                keep.append(request)
            await asyncio.sleep(delay)
            writer.write(answer)
            await writer.drain()

    return handle


def slow_answers(delay: float, *, close: bool = False) -> Handler:
    """A handler that takes `delay` s over each answer, so that requests overlap."""
    return keep_answering(answer_bytes(None, close=close), delay)


class Gate:
    """A handler that answers each request once the test opens the gate: no wall time.

    `asked` is set when a request has been read; `closed` when the client closed the
    connection (watched while the answer is held back, too).
    """

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.opened = asyncio.Event()
        self.asked = asyncio.Event()
        self.closed = asyncio.Event()

    async def __call__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        try:
            while True:
                await server.read_request(reader)
                self.asked.set()
                if not await self._opened_before_eof(reader):
                    return
                writer.write(self.answer)
                await writer.drain()
        finally:
            self.closed.set()

    async def hold(self, transport: PoolTransport) -> asyncio.Future[httpx.Response]:
        """Start an exchange on `transport`; return it once its request is read and held."""
        held = asyncio.ensure_future(exchange(transport, post(transport.origin)))
        await event(self.asked)
        return held

    async def _opened_before_eof(self, reader: asyncio.StreamReader) -> bool:
        # The client sends nothing more before its answer: any read ends at its close.
        opened = asyncio.ensure_future(self.opened.wait())
        eof = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait({opened, eof}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (opened, eof):
                waiting.cancel()
            await asyncio.gather(opened, eof, return_exceptions=True)
        return not eof.done() or eof.cancelled()


def answer_then_watch(answer: bytes, closed: asyncio.Event) -> Handler:
    """Answer one request with `answer` (written whole), then wait for the client to close."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        try:
            await server.read_request(reader)
            writer.write(answer)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            await read_to_the_end(reader)
        finally:
            closed.set()

    return handle


# -- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"base_url": "ftp://example.org"}, "base_url"),
        ({"base_url": "/relative"}, "base_url"),
        ({"max_connections": 0}, "max_connections"),
        ({"max_connections": True}, "max_connections"),
        ({"max_connections": 2.0}, "max_connections"),
        ({"keepalive_expiry": -1.0}, "keepalive_expiry"),
        ({"parser": "picohttp"}, "parser"),
    ],
)
def test_invalid_options_are_refused_naming_the_option(
    options: dict[str, Any], complaint: str
) -> None:
    options = {"base_url": "http://127.0.0.1:1", **options}
    with pytest.raises(ConfigurationError, match=complaint):
        PoolTransport(**options)


@pytest.mark.parametrize("verify_mode", [ssl.CERT_REQUIRED, ssl.CERT_OPTIONAL, ssl.CERT_NONE])
def test_ssl_context_that_does_not_verify_is_refused(verify_mode: ssl.VerifyMode) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = verify_mode
    for url in ("https://127.0.0.1:1", "http://127.0.0.1:1"):
        with pytest.raises(ConfigurationError, match="ssl_context"):
            PoolTransport(url, ssl_context=context)


def test_repr_names_origin_parser_and_size() -> None:
    transport = PoolTransport("https://api.haorui.com/base/", max_connections=7, parser="h11")
    assert repr(transport) == (
        "<PoolTransport origin='https://api.haorui.com' parser='h11' max_connections=7 open=0>"
    )


def test_parser_defaults_to_plain_and_auto_prefers_httptools() -> None:
    # PoolTransport reads with the plain reader (no dependency beyond httpx's) unless asked
    # otherwise; FastBackend keeps "auto".
    assert PoolTransport("http://127.0.0.1:8080").parser == "plain"
    assert PoolTransport("http://127.0.0.1:8080", parser="h11").parser == "h11"
    assert PoolTransport("http://127.0.0.1:8080", parser="auto").parser == "httptools"
    assert PoolTransport("http://127.0.0.1:8080", parser="httptools").parser == "httptools"


async def test_request_for_another_origin_is_refused_before_connecting() -> None:
    transport = PoolTransport("http://127.0.0.1:8000")
    for other in ("http://127.0.0.1:8001", "https://127.0.0.1:8000", "http://localhost:8000"):
        with pytest.raises(httpx.UnsupportedProtocol, match="serves http://127.0.0.1:8000 only"):
            await transport.handle_async_request(post(other))
    assert transport.pool.connections == 0


async def test_closed_transport_refuses_requests_and_closes_once() -> None:
    # Changed on purpose: the closed pool refuses with httpx.ConnectError (nothing was sent),
    # not RuntimeError.
    transport = PoolTransport("http://127.0.0.1:8000")
    await transport.aclose()
    await transport.aclose()
    with pytest.raises(httpx.ConnectError, match="closed"):
        await transport.handle_async_request(post("http://127.0.0.1:8000"))


async def test_request_without_timeouts_gets_the_default_ones(parser: Parser, pools: Pools) -> None:
    async with pools.serving(keep_answering(answer_bytes("u")), parser=parser) as (
        server,
        transport,
    ):
        request = httpx.Request("POST", server.url + "/x", content=b"{}")
        response = await exchange(transport, request)
    assert response.json()["uid"] == "u"


async def test_connection_refused_is_connect_error() -> None:
    transport = PoolTransport(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(httpx.ConnectError, match="could not connect"):
        await transport.handle_async_request(post(transport.origin))
    assert transport.pool.connections == 0


@pytest.fixture
def unaccepting_port() -> Iterator[socket.socket]:
    """A listener whose accept queue is full, so a new connection attempt hangs."""
    listener = socket.socket()
    listener.bind((HOST, 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex((HOST, port))
        fillers.append(filler)
    yield listener
    for sock in [*fillers, listener]:
        sock.close()


def port_of(listener: socket.socket) -> int:
    port: int = listener.getsockname()[1]
    return port


async def test_connect_that_hangs_is_connect_timeout(unaccepting_port: socket.socket) -> None:
    transport = PoolTransport(f"http://127.0.0.1:{port_of(unaccepting_port)}")
    with pytest.raises(httpx.ConnectTimeout):
        await transport.handle_async_request(post(transport.origin, connect=0.2))
    assert transport.pool.connections == 0


async def test_tls_request_without_timeouts_uses_the_default_context(
    tls_server: str,
) -> None:
    transport = PoolTransport(tls_server)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await transport.handle_async_request(httpx.Request("GET", tls_server + "/x/ok/"))
    assert transport.pool.connections == 0


async def test_tls_with_a_trusted_ca_is_served(
    parser: Parser, tls_server: str, trusting_context: ssl.SSLContext
) -> None:
    transport = PoolTransport(tls_server, ssl_context=trusting_context, parser=parser)
    try:
        response = await exchange(transport, httpx.Request("GET", tls_server + "/x/ok/?uid=t"))
    finally:
        await transport.aclose()
    assert (response.status_code, response.json()["uid"]) == (200, "t")


# -- request framing -------------------------------------------------------------------------


async def test_streamed_request_body_is_sent_whole_with_a_content_length(
    parser: Parser, pools: Pools
) -> None:
    # Changed on purpose: FastTransport sent a chunked body as chunks; PoolTransport reads a
    # streamed body whole and frames it with a Content-Length (the only framing it writes),
    # whatever framing headers the caller gave.
    received: list[tuple[bytes, bytes]] = []
    record = keep_answering(answer_bytes(None), keep=received)
    async with pools.serving(record, parser=parser) as (server, transport):
        netloc = server.url.removeprefix("http://").encode()
        for body, headers in [
            ((b"ab", b"cde"), {"Transfer-Encoding": "chunked"}),
            ((), {"Transfer-Encoding": "chunked"}),
            ((b"ab", b"cde"), {"Content-Length": "5"}),
        ]:
            # A request built from a stream gets no headers from httpx; the caller's Host and
            # framing headers are replaced by the writer's own.
            headers["Host"] = "elsewhere"
            request = httpx.Request(
                "POST",
                server.url + "/x",
                headers=headers,
                stream=_Stream(body),
                extensions={"timeout": TIMEOUTS},
            )
            response = await exchange(transport, request)
            assert response.status_code == 200
    assert [body for _, body in received] == [b"abcde", b"", b"abcde"]
    for head, sent in received:
        lines = head.lower().split(b"\r\n")
        assert b"transfer-encoding: chunked" not in lines
        assert [line for line in lines if line.startswith(b"host:")] == [b"host: " + netloc]
        assert lines.count(b"content-length: %d" % len(sent)) == 1
    assert server.connections == 1


class _Stream(httpx.AsyncByteStream):
    def __init__(self, parts: tuple[bytes, ...]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nInjected: yes"},
        {"X-Evil": "a\nb"},
        {"X-Evil": "a\rb"},
        {"X-Evil": "a\0b"},
        {"Bad Name": "x"},
        {"Bad:Name": "x"},
    ],
)
async def test_header_that_cannot_be_written_is_refused_and_the_connection_kept(
    parser: Parser, headers: dict[str, str], pools: Pools
) -> None:
    async with pools.serving(keep_answering(answer_bytes(None)), parser=parser) as (
        server,
        transport,
    ):
        await exchange(transport, post(server.url))
        request = httpx.Request("GET", server.url + "/x", headers=headers)
        with pytest.raises(httpx.LocalProtocolError):
            await transport.handle_async_request(request)
        await exchange(transport, post(server.url))
    assert (server.connections, server.requests) == (1, 2)


@pytest.mark.parametrize(
    "method", ["PO ST", "GET /admin HTTP/1.1\r\nX-Injected: yes\r\nX-Pad:"], ids=["space", "crlf"]
)
async def test_method_that_is_not_a_token_is_refused_before_connecting(
    parser: Parser, method: str, pools: Pools
) -> None:
    # FastTransport refused such a method (LocalProtocolError), as httpcore does.
    async with pools.serving(keep_answering(answer_bytes(None)), parser=parser) as (
        server,
        transport,
    ):
        request = httpx.Request(method, server.url + "/x", extensions={"timeout": TIMEOUTS})
        with pytest.raises(httpx.LocalProtocolError):
            await exchange(transport, request)
    assert (server.connections, server.requests) == (0, 0)


# -- response framing -------------------------------------------------------------------------


async def test_interim_answer_is_skipped(parser: Parser, pools: Pools) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    async with pools.serving(serve_answers(interim + answer_bytes("u")), parser=parser) as (
        server,
        transport,
    ):
        response = await exchange(transport, post(server.url))
    assert (response.status_code, response.json()["uid"]) == (200, "u")


async def test_body_delimited_by_the_end_of_the_connection_is_read_whole(
    parser: Parser, pools: Pools
) -> None:
    answer = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"uid": "eof"}'
    async with pools.serving(serve_answers(answer), parser=parser) as (server, transport):
        response = await exchange(transport, post(server.url))
        assert response.json() == {"uid": "eof"}
        # The connection ended with the body: the next request opens another.
        server.fault = serve_answers(answer_bytes("again"))
        response = await exchange(transport, post(server.url))
    assert response.json()["uid"] == "again"
    assert server.connections == 2


async def test_answer_to_head_has_no_body_and_keeps_the_connection(
    parser: Parser, pools: Pools
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
    async with pools.serving(
        serve_answers(head, answer_bytes("next"), then_wait=5), parser=parser
    ) as (server, transport):
        request = httpx.Request("HEAD", server.url + "/x", extensions={"timeout": TIMEOUTS})
        answer = await exchange(transport, request)
        response = await exchange(transport, post(server.url))
    assert (answer.status_code, answer.content) == (200, b"")
    assert response.json()["uid"] == "next"
    assert server.connections == 1


async def test_compressed_body_comes_back_as_sent(parser: Parser, pools: Pools) -> None:
    # Changed on purpose: FastTransport decoded a gzip body; the pool never decodes (the SDK
    # asks for identity, and a decompression bomb must cost nothing), so the raw bytes come
    # back, from PoolTransport's stream and from FastBackend alike.
    body = gzip.compress(b'{"uid": "gz"}')
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with pools.serving(serve_answers(answer + body, answer + body), parser=parser) as (
        server,
        transport,
    ):
        response = await transport.handle_async_request(post(server.url))
        raw = b"".join([part async for part in response.aiter_raw()])
        await response.aclose()
        backend = pools.fast_backend(server.url, parser)
        fast = await backend.exchange(Request("POST", b"/", b"{}"), deadline())
        fast.finish(keep=True)
    assert raw == body
    assert (fast.status, fast.body) == (200, body)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-",
        b"",
    ],
    ids=["content-length", "chunked", "head", "nothing"],
)
async def test_answer_cut_short_is_remote_protocol_error(
    parser: Parser, answer: bytes, pools: Pools
) -> None:
    async with pools.serving(serve_answers(answer), parser=parser) as (server, transport):
        with pytest.raises(httpx.RemoteProtocolError):
            await exchange(transport, post(server.url))
    assert transport.pool.connections == 0


async def test_invalid_answer_is_remote_protocol_error(parser: Parser, pools: Pools) -> None:
    async with pools.serving(serve_answers(b"SMTP ready\r\n\r\n", then_wait=5), parser=parser) as (
        server,
        transport,
    ):
        with pytest.raises(httpx.RemoteProtocolError, match="not valid HTTP"):
            await exchange(transport, post(server.url))
    assert transport.pool.connections == 0


# -- the caps on what is read ------------------------------------------------------------------


def head_of(size: int, *, end: bool = True) -> bytes:
    """A 200 answer's head of about `size` bytes (padding headers), with an empty body."""
    lines = [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"]
    total = len(lines[0])
    n = 0
    while total < size:
        line = b"X-Pad-%d: %b\r\n" % (n, b"p" * 200)
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines) + (b"\r\n" if end else b"")


OVERSIZED_HEADS = {
    "one-header": b"HTTP/1.1 200 OK\r\nX-Pad: %b\r\nContent-Length: 0\r\n\r\n"
    % (b"p" * MAX_ANSWER_HEAD),
    "many-headers": head_of(MAX_ANSWER_HEAD + 1024),
    "unterminated": head_of(MAX_ANSWER_HEAD + 1024, end=False),
}


def chunked(body: bytes, *, end: bool = True, piece: int = 4096) -> bytes:
    parts = [
        b"%x\r\n%b\r\n" % (len(body[i : i + piece]), body[i : i + piece])
        for i in range(0, len(body), piece)
    ]
    return b"".join(parts) + (b"0\r\n\r\n" if end else b"")


def body_answer(framing: str, size: int, *, whole: bool) -> bytes:
    """An answer whose body is `size` bytes, framed as `framing`; `whole`: the framing ends."""
    body = b"b" * size
    if framing == "content-length":
        head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
        return head + (body if whole else b"")  # past the cap: only the head is sent
    if framing == "chunked":
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        return head + chunked(body, end=whole)
    assert framing == "close-delimited"
    return b"HTTP/1.0 200 OK\r\n\r\n" + body


FRAMINGS = ["content-length", "chunked", "close-delimited"]


async def check_refused_as_too_large(
    pools: Pools, answer: bytes, *, parser: Parser, **timeouts: float
) -> None:
    """Check that `answer` is refused as too large and its connection dropped at once, and
    that the next request is served, on a new connection."""
    closed = asyncio.Event()
    async with pools.serving(answer_then_watch(answer, closed), parser=parser) as (
        server,
        transport,
    ):
        with pytest.raises(httpx.RemoteProtocolError, match="too large"):
            await exchange(transport, post(server.url, **timeouts))
        assert transport.pool.connections == 0
        await event(closed)
        server.fault = keep_answering(answer_bytes("next"))
        response = await exchange(transport, post(server.url))
    assert response.json()["uid"] == "next"
    assert server.connections == 2


@pytest.mark.parametrize("answer", list(OVERSIZED_HEADS.values()), ids=list(OVERSIZED_HEADS))
async def test_answer_head_past_the_cap_is_refused_and_closes_the_connection(
    parser: Parser, answer: bytes, pools: Pools
) -> None:
    await check_refused_as_too_large(pools, answer, parser=parser)


async def test_answer_head_within_the_cap_is_read(parser: Parser, pools: Pools) -> None:
    answer = head_of(MAX_ANSWER_HEAD - 1024)
    async with pools.serving(serve_answers(answer), parser=parser) as (server, transport):
        response = await exchange(transport, post(server.url))
    assert (response.status_code, response.headers["x-pad-0"]) == (200, "p" * 200)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_answer_body_past_the_cap_is_refused_and_closes_the_connection(
    parser: Parser, framing: str, pools: Pools
) -> None:
    # The server then keeps the connection open: the refusal comes from the size, as soon as
    # it is known, never from the end of the connection or a timeout.
    answer = body_answer(framing, MAX_ANSWER_BODY + 1, whole=False)
    await check_refused_as_too_large(pools, answer, parser=parser, read=30.0)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_answer_body_at_the_cap_is_read_whole(
    parser: Parser, framing: str, pools: Pools
) -> None:
    answer = body_answer(framing, MAX_ANSWER_BODY, whole=True)
    async with pools.serving(serve_answers(answer), parser=parser) as (server, transport):
        response = await exchange(transport, post(server.url))
    assert response.content == b"b" * MAX_ANSWER_BODY


# -- answers nobody asked for ------------------------------------------------------------------


@pytest.mark.parametrize(
    "stray", [answer_bytes("1"), b"HTTP/1.1 200 OK\r\n"], ids=["whole-answer", "part-of-a-head"]
)
async def test_second_answer_to_one_request_retires_the_connection(
    parser: Parser, stray: bytes, pools: Pools
) -> None:
    async with pools.serving(
        serve_answers(answer_bytes("1") + stray, then_wait=5), parser=parser
    ) as (server, transport):
        first = await exchange(transport, post(server.url))
        assert transport.pool.connections == 0
        second = await exchange(transport, post(server.url))
    assert [first.json()["uid"], second.json()["uid"]] == ["1", "1"]
    assert server.connections == 2


async def test_bytes_sent_to_an_idle_connection_retire_it(parser: Parser, pools: Pools) -> None:
    babbled = asyncio.Event()
    answered = asyncio.Event()

    async def answer_then_babble(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await server.read_request(reader)
        writer.write(answer_bytes(str(server.connections)))
        await writer.drain()
        if server.connections == 1:
            await answered.wait()
            writer.write(b"HTTP/1.1 200 OK\r\n")
            await writer.drain()
            babbled.set()
        await read_to_the_end(reader)

    async with pools.serving(answer_then_babble, parser=parser) as (server, transport):
        await exchange(transport, post(server.url))
        assert transport.pool.connections == 1  # idle, kept
        answered.set()
        await event(babbled)
        await until(lambda: transport.pool.connections == 0, "the idle connection retired")
        response = await exchange(transport, post(server.url))
    assert response.json()["uid"] == "2"  # the answer of a new connection
    assert server.connections == 2


# -- the pool ---------------------------------------------------------------------------------


async def test_requests_beyond_the_pool_wait_and_share_its_connections(
    parser: Parser, pools: Pools
) -> None:
    async with pools.serving(slow_answers(0.01), max_connections=2, parser=parser) as (
        server,
        transport,
    ):
        responses = await at_once(transport, 10)
    assert all(r.status_code == 200 for r in responses)
    assert (server.connections, server.requests) == (2, 10)


async def test_waiting_request_opens_a_connection_when_one_closes(
    parser: Parser, pools: Pools
) -> None:
    async with pools.serving(slow_answers(0.01, close=True), max_connections=1, parser=parser) as (
        server,
        transport,
    ):
        responses = await at_once(transport, 3)
    assert all(r.status_code == 200 for r in responses)
    assert server.connections == 3


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
async def test_no_free_connection_in_time_is_pool_timeout(close: bool, pools: Pools) -> None:
    gate = Gate(answer_bytes(None, close=close))
    async with pools.serving(gate, max_connections=1) as (server, transport):
        first = await gate.hold(transport)
        with pytest.raises(httpx.PoolTimeout):
            await exchange(transport, post(server.url, pool=0.1))
        gate.opened.set()
        assert (await first).status_code == 200
        # The timed-out waiter is skipped: the connection (or its slot) goes back to the pool.
        await exchange(transport, post(server.url))
    assert server.connections == (2 if close else 1)


async def test_idle_connection_past_its_expiry_is_not_reused(pools: Pools) -> None:
    async with pools.serving(keep_answering(answer_bytes(None)), keepalive_expiry=0.0) as (
        server,
        transport,
    ):
        for _ in range(3):
            await exchange(transport, post(server.url))
    assert server.connections == 3


async def test_aclose_fails_requests_in_flight_and_waiting(parser: Parser, pools: Pools) -> None:
    gate = Gate(answer_bytes(None))
    async with RawServer(gate).serving() as server:
        transport = PoolTransport(server.url, max_connections=1, parser=parser)
        in_flight = await gate.hold(transport)
        waiting = await queued(transport)
        given_up = await queued(transport)
        given_up.cancel()
        await transport.aclose()
        with pytest.raises(httpx.ReadError, match="closed"):
            await in_flight
        with pytest.raises(httpx.ConnectError, match="closed"):
            await waiting
        with pytest.raises(asyncio.CancelledError):
            await given_up
        await event(gate.closed)
    assert transport.pool.connections == 0
    assert server.requests == 1


# -- cancellation: no slot is ever left taken ------------------------------------------------


async def test_cancelled_request_retires_its_connection(parser: Parser, pools: Pools) -> None:
    gate = Gate(answer_bytes(None))
    async with pools.serving(gate, max_connections=1, parser=parser) as (server, transport):
        task = await gate.hold(transport)  # the request is out: the task waits for the answer
        await cancel(task)
        await until(lambda: transport.pool.connections == 0, "the aborted connection freed")
        await event(gate.closed)
        gate.opened.set()
        responses = [await exchange(transport, post(server.url)) for _ in range(2)]
    assert [r.status_code for r in responses] == [200, 200]
    assert server.connections == 2


async def test_cancelled_waiter_leaves_the_queue(parser: Parser, pools: Pools) -> None:
    gate = Gate(answer_bytes(None))
    async with pools.serving(gate, max_connections=1, parser=parser) as (server, transport):
        first = await gate.hold(transport)
        await cancel(await queued(transport))
        gate.opened.set()
        assert (await first).status_code == 200
        assert transport.pool.connections == 1  # the idle connection alone
        await exchange(transport, post(server.url))
    assert server.connections == 1


@pytest.mark.parametrize("close", [False, True], ids=["connection-handed", "slot-handed"])
async def test_waiter_cancelled_as_it_is_handed_over_passes_it_on(
    parser: Parser, close: bool, pools: Pools
) -> None:
    gate = Gate(answer_bytes(None, close=close))
    async with pools.serving(gate, max_connections=1, parser=parser) as (server, transport):
        first = asyncio.ensure_future(transport.handle_async_request(post(server.url)))
        await event(gate.asked)
        waiting = await queued(transport)
        gate.opened.set()
        response = await first
        # Closing the response hands the connection (or, with `close`, its slot) to the
        # waiter; the waiter is cancelled in the same loop iteration, before it runs.
        await response.aclose()
        await cancel(waiting)
        assert transport.pool.connections == (0 if close else 1)
        responses = [await exchange(transport, post(server.url)) for _ in range(2)]
        assert transport.pool.connections == (0 if close else 1)
    assert [r.status_code for r in responses] == [200, 200]
    assert server.connections == (3 if close else 1)


async def test_request_cancelled_while_connecting_takes_no_slot(
    unaccepting_port: socket.socket, pools: Pools
) -> None:
    transport = pools.transport(f"http://127.0.0.1:{port_of(unaccepting_port)}")
    task = asyncio.ensure_future(exchange(transport, post(transport.origin, connect=30.0)))
    await until(lambda: transport.pool.connections == 1, "the connect started")
    for _ in range(10):  # well into the connect, which hangs
        await asyncio.sleep(0)
    assert not task.done()
    await cancel(task)
    await until(lambda: transport.pool.connections == 0, "the connect's slot freed")
    # The listener starts accepting: the next requests are served.
    async with answering(answer_bytes("late"), sock=unaccepting_port) as server:
        responses = [await exchange(transport, post(transport.origin)) for _ in range(2)]
        await transport.aclose()
    assert [r.json()["uid"] for r in responses] == ["late", "late"]
    assert server.requests == 2


class Answering:
    """What `answering()` yields: the port, and the requests read."""

    def __init__(self) -> None:
        self.port = 0
        self.requests = 0


@contextlib.asynccontextmanager
async def answering(
    answer: bytes, *, sock: socket.socket | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Answering]:
    """A server (on `sock`, or a new port; over TLS with `tls`) answering every request with
    `answer`; its handlers are ended with it."""
    served = Answering()
    tasks: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
                while True:
                    await read_head_and_body(reader)
                    served.requests += 1
                    writer.write(answer)
                    await writer.drain()
        except asyncio.CancelledError:
            pass  # the end of the test
        finally:
            writer.close()
            tasks.discard(task)

    if sock is None:
        server = await asyncio.start_server(handle, HOST, 0, ssl=tls)
    else:
        server = await asyncio.start_server(handle, sock=sock, ssl=tls)
    served.port = server.sockets[0].getsockname()[1]
    try:
        yield served
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
    finally:
        writer.close()


def relay_to(port: int) -> Handler:
    """A handler that relays the connection's bytes, both ways, to `port`."""

    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(HOST, port)
        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        finally:
            up_writer.close()

    return handle


async def test_request_cancelled_during_the_tls_handshake_takes_no_slot(
    parser: Parser,
    ca: trustme.CA,
    trusting_context: ssl.SSLContext,
    pools: Pools,
) -> None:
    accepted = asyncio.Event()
    closed = asyncio.Event()

    async def never_shake_hands(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        accepted.set()
        try:
            await read_to_the_end(reader)
        finally:
            closed.set()

    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    async with RawServer(never_shake_hands).serving() as server:
        url = server.url.replace("http://", "https://")
        transport = pools.transport(url, ssl_context=trusting_context, parser=parser)
        task = asyncio.ensure_future(exchange(transport, post(url)))
        await event(accepted)  # TCP is up; the handshake waits for the server's hello
        await cancel(task)
        await until(lambda: transport.pool.connections == 0, "the handshake's slot freed")
        await event(closed)
        async with answering(answer_bytes("tls"), tls=server_context) as upstream:
            server.fault = relay_to(upstream.port)
            responses = [await exchange(transport, post(url)) for _ in range(2)]
            await transport.aclose()
    assert [r.json()["uid"] for r in responses] == ["tls", "tls"]
    assert server.connections == 2


# -- the deadline extension ------------------------------------------------------------------


async def test_deadline_ends_an_answer_that_trickles(parser: Parser, pools: Pools) -> None:
    answer = answer_bytes("slow")

    async def trickle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await server.read_request(reader)
        for i in range(len(answer)):  # about 60 s in all; each byte renews the read timeout
            writer.write(answer[i : i + 1])
            await asyncio.sleep(60 / len(answer))

    async with pools.serving(trickle, parser=parser) as (server, transport):
        with ends_within(30.0), pytest.raises(httpx.ReadTimeout, match="deadline"):
            await exchange(transport, post(server.url, read=5.0, deadline=deadline(0.3)))
        assert transport.pool.connections == 0


async def test_deadline_ends_a_wait_for_the_pool(parser: Parser, pools: Pools) -> None:
    gate = Gate(answer_bytes(None))
    async with pools.serving(gate, max_connections=1, parser=parser) as (server, transport):
        first = await gate.hold(transport)
        with ends_within(30.0), pytest.raises(httpx.PoolTimeout):
            await exchange(transport, post(server.url, pool=30.0, deadline=deadline(0.2)))
        gate.opened.set()
        assert (await first).status_code == 200
    assert server.connections == 1


async def test_deadline_ends_a_connect_that_hangs(unaccepting_port: socket.socket) -> None:
    transport = PoolTransport(f"http://127.0.0.1:{port_of(unaccepting_port)}")
    with ends_within(30.0), pytest.raises(httpx.ConnectTimeout):
        await transport.handle_async_request(
            post(transport.origin, connect=30.0, deadline=deadline(0.2))
        )
    assert transport.pool.connections == 0


# -- write flow control -------------------------------------------------------------------------

#: Larger than loopback's socket buffers on both ends, so the write must wait for the reader.
BIG = 64 * 1024 * 1024


@pytest.mark.parametrize("timeouts", [{"read": 0.5}, NO_TIMEOUTS], ids=["read-0.5", "none"])
async def test_request_the_server_reads_slowly_waits_for_the_socket(
    timeouts: dict[str, Any], pools: Pools
) -> None:
    # The server starts reading after twice the read timeout: the read is timed from when
    # the request is out, not while it waits for the socket.
    async def slow_reader(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await asyncio.sleep(1.0)
        await server.read_request(reader)
        writer.write(answer_bytes("big"))

    async with pools.serving(slow_reader) as (server, transport):
        response = await exchange(transport, post(server.url, b"x" * BIG, **timeouts))
    assert response.json()["uid"] == "big"


async def test_request_the_server_never_reads_is_write_timeout(pools: Pools) -> None:
    async def deaf(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await asyncio.sleep(5)

    async with pools.serving(deaf) as (server, transport):
        with pytest.raises(httpx.WriteTimeout):
            await exchange(transport, post(server.url, b"x" * BIG, write=0.2))


async def test_requests_without_any_timeout_wait_as_long_as_it_takes(
    parser: Parser, pools: Pools
) -> None:
    async with pools.serving(slow_answers(0.05), max_connections=1, parser=parser) as (
        _,
        transport,
    ):
        responses = await at_once(transport, 2, **NO_TIMEOUTS)
    assert [r.status_code for r in responses] == [200, 200]


async def test_shorter_read_timeout_on_a_reused_connection_is_kept(
    parser: Parser, pools: Pools
) -> None:
    async with pools.serving(serve_answers(answer_bytes(None), then_wait=60), parser=parser) as (
        server,
        transport,
    ):
        await exchange(transport, post(server.url, read=30.0))
        # Within 30 s: not the first request's read timeout.
        with ends_within(30.0), pytest.raises(httpx.ReadTimeout):
            await exchange(transport, post(server.url, read=0.2))
    assert server.connections == 1


async def test_a_clock_set_on_the_loop_is_the_one_the_timeouts_run_on(pools: Pools) -> None:
    # A test's virtual clock (aiotools' VirtualClock, `mock.patch.object(loop, "time", ...)`)
    # replaces `time` on the loop itself; the loop's timers run on it, so the pool must too.
    loop = asyncio.get_running_loop()
    if not isinstance(loop, asyncio.BaseEventLoop):
        pytest.skip("uvloop's loop takes no attribute of its own")
    offset = time.monotonic() - 1_000.0  # a clock that reads 1,000 s now
    loop.time = lambda: time.monotonic() - offset  # type: ignore[method-assign]
    try:
        async with pools.serving(serve_answers(then_wait=60), parser="httptools") as (
            server,
            transport,
        ):
            with ends_within(30.0), pytest.raises(httpx.ReadTimeout):
                await asyncio.wait_for(exchange(transport, post(server.url, read=0.2)), 20.0)
    finally:
        del loop.time


async def test_connection_reset_while_writing_is_write_error(pools: Pools) -> None:
    async def reset_soon(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await reader.readexactly(1024)
        await asyncio.sleep(0.1)
        reset(writer)

    async with pools.serving(reset_soon) as (server, transport):
        with pytest.raises((httpx.WriteError, httpx.ReadError)) as caught:
            await exchange(transport, post(server.url, b"x" * BIG))
    assert isinstance(caught.value, httpx.WriteError)


async def test_read_timer_that_fires_on_an_idle_connection_leaves_it_usable(pools: Pools) -> None:
    async with pools.serving(keep_answering(answer_bytes(None))) as (server, transport):
        await exchange(transport, post(server.url, read=0.05))
        await asyncio.sleep(0.15)
        response = await exchange(transport, post(server.url, read=0.05))
    assert response.status_code == 200
    assert server.connections == 1


# -- the lean path: FastBackend.exchange -------------------------------------------------------
# Changed on purpose: FastTransport.template()/send_raw() are gone; FastBackend drives the pool
# with the fixed header block of `_wire.header_block()` and `_wire.encode_request()`.

SEND_SMS_HEADERS = [("Accept", "application/json"), ("Content-Type", "application/json")]


def fast_backend(url: str, parser: Parser) -> FastBackend:
    """A `FastBackend` that sends the headers of a SendSMS request."""
    return FastBackend(
        url,
        headers=SEND_SMS_HEADERS,
        timeout=httpx.Timeout(5.0),
        max_connections=4,
        parser=parser,
    )


async def test_fast_backend_sends_the_header_block_and_returns_the_raw_answer(
    parser: Parser, pools: Pools
) -> None:
    received: list[tuple[bytes, bytes]] = []
    record = keep_answering(answer_bytes("raw"), keep=received)
    async with pools.serving_fast(record, parser) as (server, backend):
        port = server.url.rsplit(":", 1)[1].encode()
        answer = await backend.exchange(
            Request("POST", b"/api/SendSMS?x=1", b'{"a":1}'), deadline()
        )
        answer.finish(keep=True)
        again = await backend.exchange(Request("POST", b"/api/SendSMS", b""), deadline())
        again.finish(keep=True)
    assert isinstance(answer, Answer)
    assert answer.status == 200
    assert (b"content-type", b"application/json") in [(k.lower(), v) for k, v in answer.headers]
    assert answer.body == answer_bytes("raw").split(b"\r\n\r\n")[1]
    assert again.status == 200
    heads = [head + body for head, body in received]
    assert heads[0].lower() == (
        b"post /api/sendsms?x=1 http/1.1\r\nhost: 127.0.0.1:%b\r\naccept: application/json\r\n"
        b'content-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}' % port
    )
    assert heads[1].lower().endswith(b"content-length: 0\r\n\r\n")
    assert server.connections == 1


async def test_fast_backend_answer_finished_without_keep_retires_the_connection(
    parser: Parser, pools: Pools
) -> None:
    async with pools.serving_fast(keep_answering(answer_bytes("1")), parser) as (server, backend):
        for _ in range(2):
            answer = await backend.exchange(Request("POST", b"/", b"{}"), deadline())
            answer.finish(keep=False)
            answer.finish(keep=True)  # a second finish does nothing
    assert server.connections == 2


def test_fast_backend_parser_defaults_to_auto() -> None:
    backend = FastBackend(
        "http://127.0.0.1:8000", headers=[], timeout=httpx.Timeout(5.0), max_connections=1
    )
    assert backend.parser == "httptools"


@pytest.mark.parametrize(
    "headers",
    [
        [("Bad Name", "x")],
        [("X-Evil", "a\r\nInjected: yes")],
        [("X-Padded", " x")],
        [("Host", "elsewhere")],
        [("Content-Length", "3")],
        [("transfer-encoding", "chunked")],
    ],
)
def test_fast_backend_refuses_headers_that_cannot_be_sent_as_they_stand(
    headers: list[tuple[str, str]],
) -> None:
    with pytest.raises(ConfigurationError, match="headers"):
        FastBackend(
            "http://127.0.0.1:8000", headers=headers, timeout=httpx.Timeout(5.0), max_connections=1
        )


@pytest.mark.parametrize("target", [b"", b"/a b", b"/a\r\nX: y", b"/a\n"])
async def test_fast_backend_refuses_a_target_before_connecting(target: bytes, pools: Pools) -> None:
    # Nothing listens there: a connect would be a ConnectError, not the ValueError.
    backend = pools.fast_backend(f"http://127.0.0.1:{free_port()}", "h11")
    with pytest.raises(ValueError, match="not a request target"):
        await backend.exchange(Request("POST", target, b""), deadline())


async def test_fast_backend_after_aclose_refuses_requests(parser: Parser) -> None:
    # Changed on purpose: httpx.ConnectError (nothing was sent), not RuntimeError.
    backend = fast_backend("http://127.0.0.1:8000", parser)
    await backend.aclose()
    with pytest.raises(httpx.ConnectError, match="closed"):
        await backend.exchange(Request("POST", b"/", b""), deadline())


async def test_fast_backend_classifies_failures_as_the_transport_does(
    parser: Parser, pools: Pools
) -> None:
    refused = pools.fast_backend(f"http://127.0.0.1:{free_port()}", parser)
    with pytest.raises(httpx.ConnectError):
        await refused.exchange(Request("POST", b"/", b"{}"), deadline())

    async def close_after_reading(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await server.read_request(reader)

    async with pools.serving_fast(close_after_reading, parser) as (server, backend):
        with pytest.raises(httpx.RemoteProtocolError):
            await backend.exchange(Request("POST", b"/", b"{}"), deadline())
    assert server.requests == 1


async def test_fast_backend_deadline_ends_the_exchange(parser: Parser, pools: Pools) -> None:
    gate = Gate(answer_bytes(None))
    async with pools.serving_fast(gate, parser) as (_, backend):
        with pytest.raises(httpx.ReadTimeout, match="deadline"):
            await backend.exchange(Request("POST", b"/", b"{}"), deadline(0.2))
        await event(gate.closed)


# -- the request writer, pure ------------------------------------------------------------------


def test_header_block_puts_host_first_and_keeps_names_as_given() -> None:
    block = header_block(b"api.haorui.com", [(b"Accept", b"application/json"), (b"X-a", b"")])
    assert block == b"Host: api.haorui.com\r\nAccept: application/json\r\nX-a: \r\n"


@pytest.mark.parametrize(
    "header",
    [
        (b"Bad Name", b"x"),
        (b"", b"x"),
        (b"X:Y", b"x"),
        (b"X-\xe9", b"x"),
        (b"X-Evil", b"a\r\nInjected: yes"),
        (b"X-Evil", b"a\nb"),
        (b"X-Evil", b"a\rb"),
        (b"X-Evil", b"a\0b"),
        (b"X-Padded", b" x"),
        (b"X-Padded", b"x\t"),
    ],
)
def test_header_block_refuses_a_header_that_is_not_valid(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="not a valid header"):
        header_block(b"h", [header])


@pytest.mark.parametrize("name", [b"Host", b"content-length", b"Transfer-Encoding", b"HOST"])
def test_header_block_refuses_the_framing_headers(name: bytes) -> None:
    with pytest.raises(ValueError, match="set by the request writer"):
        header_block(b"h", [(name, b"1")])


def test_encode_request_frames_the_body_with_a_content_length() -> None:
    block = header_block(b"h:1", [(b"Accept", b"*/*")])
    assert encode_request(b"POST", b"/a?b=c%20d", block, b"{}") == (
        b"POST /a?b=c%20d HTTP/1.1\r\nHost: h:1\r\nAccept: */*\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert encode_request(b"GET", b"/", block, b"").endswith(b"Content-Length: 0\r\n\r\n")


@pytest.mark.parametrize("target", [b"", b"/a b", b"/a\r\nX: y", b"/a\n", b"/a\r"])
def test_encode_request_refuses_a_target_that_is_not_one(target: bytes) -> None:
    with pytest.raises(ValueError, match="not a request target"):
        encode_request(b"POST", target, header_block(b"h", []), b"")


# -- the answer readers, pure ----------------------------------------------------------------
# Whether an oversized head reaches the pool in one read or several depends on TCP; the caps
# must not.

READERS: dict[str, Callable[[], AnswerReader]] = {
    "h11": H11Reader,
    "plain": PlainReader,
    "httptools": HttptoolsReader,
}


@pytest.mark.parametrize("pieces", [1, 1000], ids=["fed-at-once", "fed-in-pieces"])
@pytest.mark.parametrize("head", list(OVERSIZED_HEADS.values()), ids=list(OVERSIZED_HEADS))
@pytest.mark.parametrize("parser", PARSERS)
def test_reader_refuses_a_head_past_the_cap_however_it_arrives(
    parser: Parser, head: bytes, pieces: int
) -> None:
    reader = READERS[parser]()
    reader.start(b"POST")
    size = -(-len(head) // pieces)
    with pytest.raises(AnswerTooLarge):
        feed_all(reader, [head[i : i + size] for i in range(0, len(head), size)])


def feed_all(reader: AnswerReader, parts: list[bytes]) -> None:
    for part in parts:
        assert reader.feed(part) is None


@pytest.mark.parametrize("parser", PARSERS)
def test_reader_retires_a_connection_with_bytes_after_the_answer(parser: Parser) -> None:
    reader = READERS[parser]()
    reader.start(b"POST")
    answer = reader.feed(answer_bytes("1") + answer_bytes("2"))
    assert answer is not None
    assert (answer.status, answer.keep_alive) == (200, False)
    assert answer.body == answer_bytes("1").split(b"\r\n\r\n")[1]
