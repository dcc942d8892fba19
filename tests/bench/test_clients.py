from __future__ import annotations

import pytest

from benchmarks.suite.clients import CLIENTS, BadAnswer, floor_session
from benchmarks.suite.load import measure
from haorui_async.testing import EmulatorProcess

from .conftest import RawServer


@pytest.mark.parametrize("name", sorted(CLIENTS))
async def test_every_client_gets_its_messages_accepted_by_a_loopback_server(
    name: str, emulator: EmulatorProcess
) -> None:
    async with CLIENTS[name].factory(emulator.base_url, 3) as send:
        result = await measure(send, concurrency=3, count=30, seconds=10, grace=5)
    assert result.errors == {}
    assert result.ok == 30


def _answer(head: str, body: bytes) -> bytes:
    return f"HTTP/1.1 {head}\r\n".encode() + body


async def test_floor_reads_a_chunked_answer_and_keeps_the_connection(
    raw_server: RawServer,
) -> None:
    url = await raw_server(
        _answer(
            "200 OK",
            b'Transfer-Encoding: chunked\r\n\r\n5\r\n{"sta\r\n9;ext=1\r\ntus":"S"}\r\n0\r\n\r\n',
        )
    )
    async with floor_session(url) as send:
        for _ in range(3):
            await send()


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (_answer("503 Busy", b"Content-Length: 2\r\n\r\n{}"), "HTTP 503"),
        (_answer("200 OK", b'Content-Length: 14\r\n\r\n{"status":"F"}'), "not an accepted"),
        (_answer("200 OK", b"Connection: keep-alive\r\n\r\n"), "neither Content-Length"),
    ],
)
async def test_floor_raises_bad_answer_for_anything_but_an_accepted_sendsms(
    raw_server: RawServer, answer: bytes, complaint: str
) -> None:
    url = await raw_server(answer)
    async with floor_session(url) as send:
        with pytest.raises(BadAnswer, match=complaint):
            await send()
