"""`FastTransport` on its own: options, pool, framing and faults, through raw loopback servers."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

import httpx
import pytest

from haorui_async import ConfigurationError
from haorui_async._fast import FastTransport

from ._servers import HOST, RawServer, answer_bytes, free_port, reset

pytestmark = pytest.mark.integration

Parser = Literal["httptools", "h11"]
PARSERS: list[Parser] = ["httptools", "h11"]
TIMEOUTS = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}
NO_TIMEOUTS = {"connect": None, "read": None, "write": None, "pool": None}

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, RawServer], Any]


@pytest.fixture(params=PARSERS)
def parser(request: pytest.FixtureRequest) -> Parser:
    name: Parser = request.param
    return name


@pytest.fixture
async def transports() -> AsyncIterator[list[FastTransport]]:
    made: list[FastTransport] = []
    yield made
    for transport in made:
        await transport.aclose()


def post(url: str, body: bytes = b'{"uid": null}', **timeouts: float | None) -> httpx.Request:
    return httpx.Request(
        "POST",
        url + "/api/SendSMS",
        headers={"Content-Type": "application/json"},
        content=body,
        extensions={"timeout": {**TIMEOUTS, **timeouts}},
    )


async def exchange(transport: FastTransport, request: httpx.Request) -> httpx.Response:
    response = await transport.handle_async_request(request)
    await response.aread()
    await response.aclose()
    return response


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


def keep_answering(answer: bytes, delay: float = 0.0) -> Handler:
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(delay)
            writer.write(answer)
            await writer.drain()

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
        FastTransport(**options)


@pytest.mark.parametrize("verify_mode", [ssl.CERT_REQUIRED, ssl.CERT_OPTIONAL, ssl.CERT_NONE])
def test_ssl_context_that_does_not_verify_is_refused(verify_mode: ssl.VerifyMode) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = verify_mode
    for url in ("https://127.0.0.1:1", "http://127.0.0.1:1"):
        with pytest.raises(ConfigurationError, match="ssl_context"):
            FastTransport(url, ssl_context=context)


def test_repr_names_origin_parser_and_size() -> None:
    transport = FastTransport("https://api.haorui.com/base/", max_connections=7, parser="h11")
    assert repr(transport) == (
        "<FastTransport origin='https://api.haorui.com' parser='h11' max_connections=7 open=0>"
    )
    assert FastTransport("http://127.0.0.1:8080").parser == "httptools"


async def test_request_for_another_origin_is_refused_before_connecting() -> None:
    transport = FastTransport("http://127.0.0.1:8000")
    for other in ("http://127.0.0.1:8001", "https://127.0.0.1:8000", "http://localhost:8000"):
        with pytest.raises(httpx.UnsupportedProtocol, match="serves http://127.0.0.1:8000 only"):
            await transport.handle_async_request(post(other))
    assert repr(transport).endswith("open=0>")


async def test_closed_transport_refuses_requests_and_closes_once() -> None:
    transport = FastTransport("http://127.0.0.1:8000")
    await transport.aclose()
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(post("http://127.0.0.1:8000"))


async def test_request_without_timeouts_gets_the_default_ones(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(keep_answering(answer_bytes("u"))).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        request = httpx.Request("POST", server.url + "/x", content=b"{}")
        response = await exchange(transport, request)
    assert response.json()["uid"] == "u"


async def test_connection_refused_is_connect_error() -> None:
    transport = FastTransport(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(httpx.ConnectError, match="could not connect"):
        await transport.handle_async_request(post(transport.origin))
    assert repr(transport).endswith("open=0>")


@pytest.fixture
def unaccepting_port() -> Iterator[int]:
    """A port whose accept queue is full, so a new connection attempt hangs."""
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
    yield port
    for sock in [*fillers, listener]:
        sock.close()


async def test_connect_that_hangs_is_connect_timeout(unaccepting_port: int) -> None:
    transport = FastTransport(f"http://127.0.0.1:{unaccepting_port}")
    with pytest.raises(httpx.ConnectTimeout):
        await transport.handle_async_request(post(transport.origin, connect=0.2))


async def test_tls_request_without_timeouts_uses_the_default_context(
    tls_server: str,
) -> None:
    transport = FastTransport(tls_server)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        await transport.handle_async_request(httpx.Request("GET", tls_server + "/x/ok/"))


# -- request framing -------------------------------------------------------------------------


async def test_streamed_request_body_is_sent_with_its_framing(
    parser: Parser, transports: list[FastTransport]
) -> None:
    received: list[bytes] = []

    async def record(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if b"chunked" in head.lower():
                received.append(await reader.readuntil(b"0\r\n\r\n"))
            else:
                received.append(await reader.readexactly(5))
            writer.write(answer_bytes(None))

    async def stream(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    async with RawServer(record).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        for body, headers in [
            ((b"ab", b"cde"), {"Transfer-Encoding": "chunked"}),
            ((), {"Transfer-Encoding": "chunked"}),
            ((b"ab", b"cde"), {"Content-Length": "5"}),
        ]:
            # A request built from a stream gets no headers from httpx: Host is the caller's.
            headers["Host"] = "127.0.0.1"
            request = httpx.Request(
                "POST",
                server.url + "/x",
                headers=headers,
                stream=httpx.ByteStream(b"".join(body)) if not body else _Stream(body),
                extensions={"timeout": TIMEOUTS},
            )
            response = await exchange(transport, request)
            assert response.status_code == 200
    assert received == [b"5\r\nabcde\r\n0\r\n\r\n", b"0\r\n\r\n", b"abcde"]


class _Stream(httpx.AsyncByteStream):
    def __init__(self, parts: tuple[bytes, ...]) -> None:
        self.parts = parts

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            yield part


@pytest.mark.parametrize(
    "headers", [{"X-Evil": "a\r\nInjected: yes"}, {"X-Evil": "a\nb"}, {"X-Evil": "a\rb"}]
)
async def test_header_with_cr_or_lf_is_refused_and_the_connection_kept(
    parser: Parser, headers: dict[str, str], transports: list[FastTransport]
) -> None:
    async with RawServer(keep_answering(answer_bytes(None))).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        await exchange(transport, post(server.url))
        request = httpx.Request("GET", server.url + "/x", headers=headers)
        with pytest.raises(httpx.LocalProtocolError):
            await transport.handle_async_request(request)
        await exchange(transport, post(server.url))
    assert server.requests == 2


# -- response framing -------------------------------------------------------------------------


async def test_interim_answer_is_skipped(parser: Parser, transports: list[FastTransport]) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    async with RawServer(serve_answers(interim + answer_bytes("u"))).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        response = await exchange(transport, post(server.url))
    assert (response.status_code, response.json()["uid"]) == (200, "u")


async def test_body_delimited_by_the_end_of_the_connection_is_read_whole(
    parser: Parser, transports: list[FastTransport]
) -> None:
    answer = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"uid": "eof"}'
    async with RawServer(serve_answers(answer)).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        response = await exchange(transport, post(server.url))
        assert response.json() == {"uid": "eof"}
        # The connection ended with the body: the next request opens another.
        server.fault = serve_answers(answer_bytes("again"))
        response = await exchange(transport, post(server.url))
    assert response.json()["uid"] == "again"
    assert server.connections == 2


async def test_compressed_body_is_decoded(parser: Parser, transports: list[FastTransport]) -> None:
    body = gzip.compress(b'{"uid": "gz"}')
    answer = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
    async with RawServer(serve_answers(answer + body, answer + body)).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        response = await exchange(transport, post(server.url))
        _, _, content = await transport.send_raw(transport.template("POST", []), b"/", b"{}")
    assert response.json() == {"uid": "gz"}
    assert content == b'{"uid": "gz"}'


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
    parser: Parser, answer: bytes, transports: list[FastTransport]
) -> None:
    async with RawServer(serve_answers(answer)).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        with pytest.raises(httpx.RemoteProtocolError):
            await exchange(transport, post(server.url))


async def test_invalid_answer_is_remote_protocol_error(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(serve_answers(b"SMTP ready\r\n\r\n", then_wait=5)).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        with pytest.raises(httpx.RemoteProtocolError, match="not valid HTTP"):
            await exchange(transport, post(server.url))


async def test_bytes_sent_to_an_idle_connection_retire_it(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async def answer_then_babble(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await server.read_request(reader)
        writer.write(answer_bytes("1"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        await asyncio.sleep(5)

    async with RawServer(answer_then_babble).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        await exchange(transport, post(server.url))
        await asyncio.sleep(0.2)
        response = await exchange(transport, post(server.url))
    assert response.json()["uid"] == "1"  # the first answer of a new connection
    assert server.connections == 2


# -- the pool ---------------------------------------------------------------------------------


async def test_requests_beyond_the_pool_wait_and_share_its_connections(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(keep_answering(answer_bytes(None), delay=0.01)).serving() as server:
        transport = FastTransport(server.url, max_connections=2, parser=parser)
        transports.append(transport)
        responses = await asyncio.gather(
            *(exchange(transport, post(server.url)) for _ in range(10))
        )
    assert all(r.status_code == 200 for r in responses)
    assert (server.connections, server.requests) == (2, 10)


async def test_waiting_request_opens_a_connection_when_one_closes(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(keep_answering(answer_bytes(None, close=True), 0.01)).serving() as server:
        transport = FastTransport(server.url, max_connections=1, parser=parser)
        transports.append(transport)
        responses = await asyncio.gather(*(exchange(transport, post(server.url)) for _ in range(3)))
    assert all(r.status_code == 200 for r in responses)
    assert server.connections == 3


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
async def test_no_free_connection_in_time_is_pool_timeout(
    close: bool, transports: list[FastTransport]
) -> None:
    answer = answer_bytes(None, close=close)
    async with RawServer(keep_answering(answer, delay=0.5)).serving() as server:
        transport = FastTransport(server.url, max_connections=1)
        transports.append(transport)
        first = asyncio.ensure_future(exchange(transport, post(server.url)))
        await asyncio.sleep(0.05)
        with pytest.raises(httpx.PoolTimeout):
            await exchange(transport, post(server.url, pool=0.1))
        assert (await first).status_code == 200
        # The timed-out waiter is skipped: the connection (or its slot) goes back to the pool.
        await exchange(transport, post(server.url))
    assert server.connections == (2 if close else 1)


async def test_idle_connection_past_its_expiry_is_not_reused(
    transports: list[FastTransport],
) -> None:
    async with RawServer(keep_answering(answer_bytes(None))).serving() as server:
        transport = FastTransport(server.url, keepalive_expiry=0.0)
        transports.append(transport)
        for _ in range(3):
            await exchange(transport, post(server.url))
    assert server.connections == 3


async def test_cancelled_request_retires_its_connection(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(keep_answering(answer_bytes(None), delay=0.3)).serving() as server:
        transport = FastTransport(server.url, max_connections=1, parser=parser)
        transports.append(transport)
        task = asyncio.ensure_future(exchange(transport, post(server.url)))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        response = await exchange(transport, post(server.url))
    assert response.status_code == 200
    assert server.connections == 2


async def test_cancelled_waiter_leaves_the_queue(transports: list[FastTransport]) -> None:
    async with RawServer(keep_answering(answer_bytes(None), delay=0.2)).serving() as server:
        transport = FastTransport(server.url, max_connections=1)
        transports.append(transport)
        first = asyncio.ensure_future(exchange(transport, post(server.url)))
        await asyncio.sleep(0.02)
        waiting = asyncio.ensure_future(exchange(transport, post(server.url)))
        await asyncio.sleep(0.02)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await first).status_code == 200
        await exchange(transport, post(server.url))
    assert server.connections == 1


async def test_aclose_fails_requests_in_flight_and_waiting(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(keep_answering(answer_bytes(None), delay=5)).serving() as server:
        transport = FastTransport(server.url, max_connections=1, parser=parser)
        in_flight = asyncio.ensure_future(exchange(transport, post(server.url)))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(exchange(transport, post(server.url)))
        given_up = asyncio.ensure_future(exchange(transport, post(server.url)))
        await asyncio.sleep(0.05)
        given_up.cancel()
        await transport.aclose()
        with pytest.raises(httpx.ReadError, match="closed"):
            await in_flight
        with pytest.raises(httpx.ConnectError, match="closed"):
            await waiting
    assert repr(transport).endswith("open=0>")


# -- write flow control -------------------------------------------------------------------------

#: Larger than loopback's socket buffers on both ends, so the write must wait for the reader.
BIG = 64 * 1024 * 1024


@pytest.mark.parametrize("timeouts", [{"read": 0.1}, NO_TIMEOUTS], ids=["read-0.1", "none"])
async def test_request_the_server_reads_slowly_waits_for_the_socket(
    timeouts: dict[str, Any], transports: list[FastTransport]
) -> None:
    async def slow_reader(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await asyncio.sleep(0.2)
        await server.read_request(reader)
        writer.write(answer_bytes("big"))

    async with RawServer(slow_reader).serving() as server:
        transport = FastTransport(server.url)
        transports.append(transport)
        response = await exchange(transport, post(server.url, b"x" * BIG, **timeouts))
    assert response.json()["uid"] == "big"


async def test_request_the_server_never_reads_is_write_timeout(
    transports: list[FastTransport],
) -> None:
    async def deaf(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await asyncio.sleep(5)

    async with RawServer(deaf).serving() as server:
        transport = FastTransport(server.url)
        transports.append(transport)
        with pytest.raises(httpx.WriteTimeout):
            await exchange(transport, post(server.url, b"x" * BIG, write=0.2))


async def test_requests_without_any_timeout_wait_as_long_as_it_takes(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(keep_answering(answer_bytes(None), delay=0.05)).serving() as server:
        transport = FastTransport(server.url, max_connections=1, parser=parser)
        transports.append(transport)

        async def one() -> httpx.Response:
            request = httpx.Request(
                "POST", server.url + "/x", content=b"{}", extensions={"timeout": NO_TIMEOUTS}
            )
            return await exchange(transport, request)

        responses = await asyncio.gather(one(), one())
    assert [r.status_code for r in responses] == [200, 200]


async def test_shorter_read_timeout_on_a_reused_connection_is_kept(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(serve_answers(answer_bytes(None), then_wait=5)).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        await exchange(transport, post(server.url, read=30.0))
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(httpx.ReadTimeout):
            await exchange(transport, post(server.url, read=0.2))
    assert loop.time() - started < 2.0
    assert server.connections == 1


async def test_answer_nobody_asked_for_retires_the_connection(
    parser: Parser, transports: list[FastTransport]
) -> None:
    async with RawServer(serve_answers(answer_bytes("1") * 2, then_wait=5)).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        first = await exchange(transport, post(server.url))
        second = await exchange(transport, post(server.url))
    assert [first.json()["uid"], second.json()["uid"]] == ["1", "1"]
    assert server.connections == 2


async def test_connection_reset_while_writing_is_write_error(
    transports: list[FastTransport],
) -> None:
    async def reset_soon(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await reader.readexactly(1024)
        await asyncio.sleep(0.1)
        reset(writer)

    async with RawServer(reset_soon).serving() as server:
        transport = FastTransport(server.url)
        transports.append(transport)
        with pytest.raises((httpx.WriteError, httpx.ReadError)) as caught:
            await exchange(transport, post(server.url, b"x" * BIG))
    assert isinstance(caught.value, httpx.WriteError)


# -- the lean path: template() and send_raw() ------------------------------------------------

SEND_SMS_HEADERS = [("Accept", "application/json"), ("Content-Type", "application/json")]


async def test_send_raw_sends_the_template_and_returns_the_raw_answer(
    parser: Parser, transports: list[FastTransport]
) -> None:
    heads: list[bytes] = []

    async def record(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            heads.append(head + await reader.readexactly(length))
            writer.write(answer_bytes("raw"))

    async with RawServer(record).serving() as server:
        port = server.url.rsplit(":", 1)[1].encode()
        transport = FastTransport(server.url, parser=parser)
        transports.append(transport)
        template = transport.template("post", SEND_SMS_HEADERS)
        status, headers, content = await transport.send_raw(
            template, b"/api/SendSMS?x=1", b'{"a":1}', TIMEOUTS
        )
        again = await transport.send_raw(template, b"/api/SendSMS", b"")
    assert status == 200
    assert (b"content-type", b"application/json") in [(k.lower(), v) for k, v in headers]
    assert content == answer_bytes("raw").split(b"\r\n\r\n")[1]
    assert again[0] == 200
    assert heads[0].lower() == (
        b"post /api/sendsms?x=1 http/1.1\r\nhost: 127.0.0.1:%b\r\naccept: application/json\r\n"
        b'content-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}' % port
    )
    assert heads[1].lower().endswith(b"content-length: 0\r\n\r\n")
    assert server.connections == 1


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("PO ST", []),
        ("POST", [("Bad Name", "x")]),
        ("POST", [("X-Evil", "a\r\nInjected: yes")]),
        ("POST", [("X-Padded", " x")]),
        ("POST", [("Host", "elsewhere")]),
        ("POST", [("Content-Length", "3")]),
        ("POST", [("transfer-encoding", "chunked")]),
    ],
)
def test_template_refuses_what_cannot_be_sent_as_it_stands(
    method: str, headers: list[tuple[str, str]]
) -> None:
    transport = FastTransport("http://127.0.0.1:8000")
    with pytest.raises(httpx.LocalProtocolError):
        transport.template(method, headers)


@pytest.mark.parametrize("target", [b"", b"/a b", b"/a\r\nX: y", b"/a\n"])
async def test_send_raw_refuses_a_target_that_is_not_one(target: bytes) -> None:
    transport = FastTransport("http://127.0.0.1:8000")
    template = transport.template("POST", [])
    with pytest.raises(httpx.LocalProtocolError):
        await transport.send_raw(template, target)


async def test_send_raw_on_a_closed_transport_is_refused() -> None:
    transport = FastTransport("http://127.0.0.1:8000")
    template = transport.template("POST", [])
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.send_raw(template, b"/")


async def test_send_raw_classifies_failures_as_handle_async_request_does(
    parser: Parser,
) -> None:
    refused = FastTransport(f"http://127.0.0.1:{free_port()}", parser=parser)
    with pytest.raises(httpx.ConnectError):
        await refused.send_raw(refused.template("POST", []), b"/", b"{}")

    async def close_after_reading(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await server.read_request(reader)

    async with RawServer(close_after_reading).serving() as server:
        transport = FastTransport(server.url, parser=parser)
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.send_raw(transport.template("POST", []), b"/", b"{}")
        await transport.aclose()
    assert server.requests == 1


async def test_read_timer_that_fires_on_an_idle_connection_leaves_it_usable(
    transports: list[FastTransport],
) -> None:
    async with RawServer(keep_answering(answer_bytes(None))).serving() as server:
        transport = FastTransport(server.url)
        transports.append(transport)
        await exchange(transport, post(server.url, read=0.05))
        await asyncio.sleep(0.15)
        response = await exchange(transport, post(server.url, read=0.05))
    assert response.status_code == 200
    assert server.connections == 1
