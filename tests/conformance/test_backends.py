"""One suite, every backend: the same outcomes, the same guarantees, against real servers.

Each test runs once per backend (`backend` fixture: the default httpx backend, and
`FastTransport` with each of its parsers); those marked with `server` also run against each
real server (uvicorn with h11, uvicorn with httptools, hypercorn).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import traceback
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import pytest

from haorui_async import AsyncSender, NotSent, OutcomeUnknown, SendError

from .._kit import ATTEMPTS, PASSWORD
from ._servers import (
    LARGE_REMARKS,
    SERVER_KEEPALIVE,
    Fault,
    Gateway,
    RawServer,
    answer_bytes,
    free_port,
    reset,
)
from .conftest import MakeSender

pytestmark = pytest.mark.integration

PHONE = "+86 139 1234 5678"
TEXT = "Your code is 112233"


# -- answers read whole, from every server -----------------------------------------------------


async def test_content_length_answer_is_accepted(
    backend: MakeSender, server: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{server}/{tag}/ok")
    result = await sender.send(PHONE, TEXT, uid="u-1")
    assert (result.message_id, result.uid, result.attempts) == ("26471304", "u-1", 1)
    assert gateway.requests(tag) == 1


async def test_chunked_answer_is_accepted(
    backend: MakeSender, server: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{server}/{tag}/chunked")
    result = await sender.send(PHONE, TEXT, uid="u-2")
    assert (result.message_id, result.uid) == ("26471304", "u-2")


async def test_large_answer_is_read_whole(
    backend: MakeSender, server: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{server}/{tag}/large")
    result = await sender.send(PHONE, TEXT)
    assert len(result.remarks) == len(LARGE_REMARKS)


@pytest.mark.parametrize("behaviour", ["huge", "huge-chunked"])
async def test_an_answer_past_the_cap_is_unknown(
    backend: MakeSender, server: str, gateway: Gateway, tag: str, behaviour: str
) -> None:
    sender = backend(f"{server}/{tag}/{behaviour}")
    with pytest.raises(OutcomeUnknown, match="past|cap") as info:
        await sender.send(PHONE, TEXT, uid="u-huge")
    assert info.value.uid == "u-huge"


async def test_get_request_is_accepted(
    backend: MakeSender, server: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{server}/{tag}/ok", method="GET")
    result = await sender.send(PHONE, TEXT, uid="u-3")
    assert result.uid == "u-3"


async def test_sequential_sends_reuse_one_connection(
    backend: MakeSender, server: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{server}/{tag}/ok")
    for n in range(5):
        await sender.send(PHONE, TEXT, uid=f"u-{n}")
    assert gateway.requests(tag) == 5
    assert gateway.connections(tag) == 1


async def test_concurrent_sends_all_succeed(
    backend: MakeSender, server: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{server}/{tag}/ok", max_concurrency=4)
    results = await asyncio.gather(*(sender.send(PHONE, TEXT, uid=f"u-{n}") for n in range(40)))
    assert sorted(r.uid or "" for r in results) == sorted(f"u-{n}" for n in range(40))
    assert gateway.connections(tag) <= 4


@pytest.mark.slow
async def test_connection_closed_by_idle_server_is_replaced_without_error(
    backend: MakeSender, uvicorn_httptools: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{uvicorn_httptools}/{tag}/ok")
    await sender.send(PHONE, TEXT)
    await asyncio.sleep(SERVER_KEEPALIVE + 0.5)  # the server closes the idle connection
    result = await sender.send(PHONE, TEXT)
    assert result.attempts == 1
    assert gateway.requests(tag) == 2
    assert gateway.connections(tag) == 2


# -- the outcome of each HTTP status -------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "error", "status", "attempts"),
    [("status500", OutcomeUnknown, 500, 1), ("status503", NotSent, 503, ATTEMPTS)],
    ids=["500-is-outcome-unknown-and-not-retried", "503-is-not-sent-and-retried"],
)
async def test_an_http_status_ends_as_its_outcome_after_its_retries(
    backend: MakeSender,
    uvicorn_httptools: str,
    gateway: Gateway,
    tag: str,
    behaviour: str,
    error: type[SendError],
    status: int,
    attempts: int,
) -> None:
    sender = backend(f"{uvicorn_httptools}/{tag}/{behaviour}")
    with pytest.raises(error) as caught:
        await sender.send(PHONE, TEXT)
    assert (caught.value.status_code, caught.value.attempts) == (status, attempts)
    assert gateway.requests(tag) == attempts


# -- faults: the error classification ---------------------------------------------------------


@contextlib.asynccontextmanager
async def sender_facing(
    fault: Fault, backend: MakeSender, **options: Any
) -> AsyncIterator[tuple[RawServer, AsyncSender]]:
    """A raw server acting out `fault`, and a sender on the test's backend for it."""
    async with RawServer(fault).serving() as server:
        yield server, backend(server.url, **options)


async def test_connection_refused_is_not_sent_and_retried(backend: MakeSender) -> None:
    sender = backend(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(NotSent) as caught:
        await sender.send(PHONE, TEXT)
    assert caught.value.attempts == ATTEMPTS
    assert not caught.value.may_have_been_sent
    assert caught.value.status_code is None


async def _close_after_reading(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    await server.read_request(reader)


async def _reset_after_reading(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    await server.read_request(reader)
    reset(writer)


async def _never_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    await server.read_request(reader)
    await asyncio.sleep(30)


async def _half_an_answer(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    await server.read_request(reader)
    writer.write(answer_bytes(None)[:-10])
    await writer.drain()


@pytest.mark.parametrize(
    "fault", [_close_after_reading, _reset_after_reading, _half_an_answer], ids=lambda f: f.__name__
)
async def test_connection_lost_after_the_request_is_outcome_unknown_and_not_retried(
    backend: MakeSender, fault: Fault
) -> None:
    async with sender_facing(fault, backend) as (server, sender):
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, TEXT)
    assert caught.value.may_have_been_sent
    assert caught.value.attempts == 1
    assert server.requests == 1


async def test_read_timeout_is_outcome_unknown_and_not_retried(backend: MakeSender) -> None:
    timeout = httpx.Timeout(TIMEOUT_OTHER, read=0.3)
    async with sender_facing(_never_answer, backend, timeout=timeout) as (server, sender):
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, TEXT)
        elapsed = loop.time() - started
    assert caught.value.attempts == 1
    assert server.requests == 1
    assert 0.25 < elapsed < 3.0


TIMEOUT_OTHER = 5.0


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    await server.read_request(reader)
    answer = answer_bytes("u-slow")
    size = len(answer) // TRICKLE_PARTS + 1
    for start in range(0, len(answer), size):
        writer.write(answer[start : start + size])
        await writer.drain()
        await asyncio.sleep(TRICKLE_GAP)


#: The trickling answer: in this many parts, this many seconds apart, against a read timeout
#: shorter than the whole (so it is per read) and 9 gaps long (so a busy machine's stall of
#: most of a second between two parts still passes).
TRICKLE_PARTS = 12
TRICKLE_GAP = 0.1
TRICKLE_READ_TIMEOUT = 0.9


async def test_slow_answer_within_the_read_timeout_of_each_read_is_accepted(
    backend: MakeSender,
) -> None:
    # About 1.2 s in all, never 0.9 s without a byte: the read timeout is per read.
    timeout = httpx.Timeout(TIMEOUT_OTHER, read=TRICKLE_READ_TIMEOUT)
    async with sender_facing(_trickle, backend, timeout=timeout) as (_, sender):
        result = await sender.send(PHONE, TEXT, uid="u-slow")
    assert result.uid == "u-slow"


async def test_connection_closed_by_server_after_an_answer_is_not_reused(
    backend: MakeSender,
) -> None:
    answered, closed = asyncio.Event(), asyncio.Event()

    async def answer_then_close_when_idle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        await server.read_request(reader)
        writer.write(answer_bytes(None))
        await writer.drain()
        await answered.wait()  # the answer was read: the connection is idle in the pool
        writer.close()
        await writer.wait_closed()
        closed.set()

    async with sender_facing(answer_then_close_when_idle, backend) as (server, sender):
        await sender.send(PHONE, TEXT)
        answered.set()
        await closed.wait()
        # The server's socket is closed, its FIN on the client's: a few loop iterations
        # read it (the EOF, then the connection lost), events, not a wait for time.
        for _ in range(10):
            await asyncio.sleep(0)
        result = await sender.send(PHONE, TEXT)
    assert result.attempts == 1
    assert (server.connections, server.requests) == (2, 2)


async def _answer_with_connection_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
) -> None:
    await server.read_request(reader)
    writer.write(answer_bytes(None, close=True))
    await writer.drain()
    # Keep the socket open: the client must close on the header, not on EOF.
    await asyncio.sleep(5)


async def test_connection_close_answer_is_not_reused(backend: MakeSender) -> None:
    async with sender_facing(_answer_with_connection_close, backend) as (server, sender):
        await sender.send(PHONE, TEXT)
        result = await sender.send(PHONE, TEXT)
    assert result.attempts == 1
    assert (server.connections, server.requests) == (2, 2)


# -- TLS -------------------------------------------------------------------------------------


async def test_untrusted_certificate_is_not_sent(
    backend: MakeSender, tls_server: str, gateway: Gateway, tag: str
) -> None:
    sender = backend(f"{tls_server}/{tag}/ok")
    with pytest.raises(NotSent) as caught:
        await sender.send(PHONE, TEXT)
    assert "certificate" in str(caught.value).lower()
    assert caught.value.attempts == ATTEMPTS
    assert gateway.requests(tag) == 0


async def test_certificate_of_a_trusted_ca_is_accepted(
    backend: MakeSender,
    tls_server: str,
    gateway: Gateway,
    tag: str,
    trusting_context: ssl.SSLContext,
) -> None:
    sender = backend(f"{tls_server}/{tag}/ok", ssl_context=trusting_context)
    for _ in range(2):
        await sender.send(PHONE, TEXT)
    assert gateway.requests(tag) == 2
    assert gateway.connections(tag) == 1


# -- secrets ----------------------------------------------------------------------------------


def _wire_forms(secret: str) -> list[str]:
    from urllib.parse import quote, quote_plus

    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret),
        secret.encode("unicode_escape").decode(),
    ]


def _assert_clean(text: str) -> None:
    for form in _wire_forms(PASSWORD):
        assert form not in text


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("scenario", ["refused", "lost", "timeout", "status500", "accepted"])
async def test_password_is_in_no_exception_repr_traceback_or_log_record(
    backend: MakeSender,
    uvicorn_httptools: str,
    tag: str,
    method: Literal["POST", "GET"],
    scenario: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with (
        RawServer(_close_after_reading).serving() as lost,
        RawServer(_never_answer).serving() as silent,
    ):
        url = {
            "refused": f"http://127.0.0.1:{free_port()}",
            "lost": lost.url,
            "timeout": silent.url,
            "status500": f"{uvicorn_httptools}/{tag}/status500",
            "accepted": f"{uvicorn_httptools}/{tag}/ok",
        }[scenario]
        sender = backend(url, method=method, timeout=httpx.Timeout(TIMEOUT_OTHER, read=0.3))
        _assert_clean(repr(sender))
        try:
            result = await sender.send(PHONE, TEXT)
        except SendError as exc:
            assert scenario != "accepted"
            _assert_clean(str(exc))
            _assert_clean(repr(exc))
            _assert_clean("".join(traceback.format_exception(exc)))
            cause = exc.__cause__
            while cause is not None:
                _assert_clean(str(cause))
                _assert_clean(repr(cause))
                cause = cause.__cause__
        else:
            assert scenario == "accepted"
            _assert_clean(repr(result))
    assert caplog.records, "the sender logs each attempt at DEBUG"
    for record in caplog.records:
        _assert_clean(record.getMessage())
