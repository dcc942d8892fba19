"""The emulator over real loopback sockets (uvicorn): answers, faults, delivery reports."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from haorui_async import NotSent, OutcomeUnknown, SubmissionFailed
from haorui_async.testing import Emulator, EmulatorConfig, RespondWith, serve

from ..conformance._servers import RawServer, read_head_and_body, reset
from .conftest import ReportRecorder, eventually, make_sender

pytestmark = pytest.mark.integration

PHONE = "8613912345678"


async def test_a_post_is_accepted_and_recorded(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url, default_transport=True) as sender:
        result = await sender.send(PHONE, "hello", uid="p-1")
    assert result.status == "S"
    assert result.message_id == str(emulator.messages[0].message_id)
    assert emulator.count_for_uid("p-1") == 1
    assert emulator.messages[0].method == "POST"


async def test_a_get_is_accepted_and_listed_by_the_messages_endpoint(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url, method="GET") as sender:
        await sender.send(PHONE, "hello", uid="g-1")
    async with httpx.AsyncClient(base_url=emulator.base_url) as client:
        page = (await client.get("/_emulator/messages", params={"uid": "g-1"})).json()
        stats = (await client.get("/_emulator/stats")).json()
        missing = await client.get("/nothing/here")
    assert [m["method"] for m in page["messages"]] == ["GET"]
    assert stats["accepted"] == 1
    assert stats["received"] == 1
    assert missing.status_code == 404


@pytest.mark.emulator_config(accounts={"API1": "other"})
async def test_unknown_credentials_raise_submission_failed(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url) as sender:
        with pytest.raises(SubmissionFailed, match="Invalid API credentials"):
            await sender.send(PHONE, "hello")
    assert emulator.stats()["failed"] == 1


@pytest.mark.emulator_config(rate_500=1.0)
async def test_a_500_reaches_the_server_once_and_is_an_unknown_outcome(
    emulator: Emulator,
) -> None:
    async with make_sender(emulator.base_url) as sender:
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, "hello")
    assert caught.value.status_code == 500
    assert emulator.received == 1
    assert emulator.model.accepted == 0


async def test_503s_are_retried_until_the_answer_comes(emulator: Emulator) -> None:
    emulator.faults.inject(RespondWith(503), times=2)
    async with make_sender(emulator.base_url) as sender:
        result = await sender.send(PHONE, "hello", uid="r")
    assert result.attempts == 3
    assert emulator.received == 3
    assert emulator.count_for_uid("r") == 1


@pytest.mark.emulator_config(rate_429=1.0, retry_after="0")
async def test_429_every_time_gives_not_sent_after_every_attempt(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url) as sender:
        with pytest.raises(NotSent) as caught:
            await sender.send(PHONE, "hello")
    assert caught.value.status_code == 429
    assert caught.value.retry_after == 0
    assert emulator.received == 4
    assert emulator.stats()["faults"] == {"429": 4}


@pytest.mark.parametrize("accepted", [False, True])
async def test_a_reset_after_read_is_an_unknown_outcome_after_exactly_one_request(
    accepted: bool,
) -> None:
    async with serve(rate_drop=1.0, faults_accept=accepted) as emulator:
        async with make_sender(emulator.base_url) as sender:
            with pytest.raises(OutcomeUnknown) as caught:
                await sender.send(PHONE, "hello", uid="d")
        assert caught.value.status_code is None
        assert emulator.received == 1
        assert emulator.count_for_uid("d") == int(accepted)


@pytest.mark.emulator_config(rate_hang=1.0, faults_accept=True)
async def test_a_hang_is_a_read_timeout_and_an_unknown_outcome(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url, timeout=0.3) as sender:
        with pytest.raises(OutcomeUnknown, match="ReadTimeout"):
            await sender.send(PHONE, "hello", uid="h")
    assert emulator.received == 1
    assert emulator.count_for_uid("h") == 1


@pytest.mark.emulator_config(rate_hang=1.0, hang_seconds=0.05)
async def test_a_short_hang_ends_in_a_late_answer(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url, timeout=5.0) as sender:
        result = await sender.send(PHONE, "hello")
    assert result.status == "S"


async def test_a_hang_in_progress_does_not_hold_up_the_shutdown() -> None:
    begin = time.monotonic()
    async with serve(rate_hang=1.0) as emulator:
        client = httpx.AsyncClient(timeout=30)
        pending = asyncio.ensure_future(client.get(emulator.base_url + "/api/SendSMS"))
        await eventually(lambda: emulator.received == 1)
    response = await pending
    await client.aclose()
    assert response.status_code == 503
    assert time.monotonic() - begin < 5


@pytest.mark.emulator_config(rate_malformed=1.0)
async def test_a_malformed_body_is_an_unknown_outcome(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url) as sender:
        with pytest.raises(OutcomeUnknown, match="not a JSON object"):
            await sender.send(PHONE, "hello")
    assert emulator.received == 1


@pytest.mark.emulator_config(latency=0.05, latency_jitter=0.01, slow_rate=1.0, slow_latency=0.05)
async def test_latency_delays_every_answer(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url) as sender:
        begin = time.monotonic()
        await sender.send(PHONE, "hello")
    assert time.monotonic() - begin >= 0.1


@pytest.mark.emulator_config(dlr_delay=0.01)
async def test_a_delivery_report_reaches_the_callback_url(
    emulator: Emulator, report_recorder: ReportRecorder
) -> None:
    async with make_sender(emulator.base_url) as sender:
        result = await sender.send(PHONE, "hello", uid="dlr-1", callback_url=report_recorder.url)
    await asyncio.wait_for(report_recorder.arrived.wait(), 5)
    assert report_recorder.reports == [
        {
            "uid": "dlr-1",
            "message_id": result.message_id,
            "DLRStatus": "Delivered",
            "PhoneNumber": PHONE,
        }
    ]
    await eventually(lambda: emulator.reports["sent"] == 1)
    assert emulator.stats()["reports"] == {"sent": 1}


class FailsFirst:
    """A receiver that answers the first push of each report with a 503 (or, `reset`,
    closes the connection without an answer), and the next with a 200."""

    def __init__(self, reset: bool) -> None:
        self.reset = reset
        self.pushes: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()

    async def __call__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: RawServer
    ) -> None:
        _, body = await read_head_and_body(reader)
        report = json.loads(body)
        first = report not in self.pushes
        self.pushes.append(report)
        if first and self.reset:
            reset(writer)
            return
        status = b"503 Service Unavailable" if first else b"200 OK"
        writer.write(b"HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % status)
        await writer.drain()
        writer.close()
        if not first:
            self.arrived.set()


@pytest.mark.parametrize("reset_first", [False, True], ids=["503", "reset"])
@pytest.mark.emulator_config(dlr_delay=0.0)
async def test_a_push_that_fails_is_made_again(emulator: Emulator, reset_first: bool) -> None:
    """A gateway pushes a report again when its push got no answer or a 5xx (a receiver
    closing an idle keep-alive connection as the push is written on it): the report arrives."""
    receiver = FailsFirst(reset_first)
    async with RawServer(receiver).serving() as server:
        async with make_sender(emulator.base_url) as sender:
            await sender.send(PHONE, "hello", uid="again-1", callback_url=server.url + "/dlr")
        await asyncio.wait_for(receiver.arrived.wait(), 10)
    assert [push["uid"] for push in receiver.pushes] == ["again-1", "again-1"]
    await eventually(lambda: emulator.reports["sent"] == 1)
    assert emulator.stats()["reports"] == {"sent": 1}
    assert emulator.stats()["report_retries"] == 1


@pytest.mark.emulator_config(dlr_delay=0.0, dlr_statuses="Delivered:0,Failed:1")
async def test_the_delivery_status_mix_is_configurable(
    emulator: Emulator, report_recorder: ReportRecorder
) -> None:
    async with make_sender(emulator.base_url) as sender:
        await sender.send(PHONE, "hello", callback_url=report_recorder.url)
    await asyncio.wait_for(report_recorder.arrived.wait(), 5)
    assert report_recorder.reports[0]["DLRStatus"] == "Failed"


@pytest.mark.emulator_config(dlr_delay=0.0)
async def test_reports_to_a_dead_receiver_or_a_remote_host_are_not_delivered(
    emulator: Emulator,
) -> None:
    async with make_sender(emulator.base_url) as sender:
        # A port that was just free: nothing listens there.
        async with serve() as gone:
            dead_url = gone.base_url + "/dlr"
        await sender.send(PHONE, "hello", callback_url=dead_url)
        await sender.send(PHONE, "hello", callback_url="https://example.invalid/dlr")
    await eventually(lambda: emulator.reports["failed"] == 1)
    assert emulator.reports == {"failed": 1, "skipped": 1}


@pytest.mark.emulator_config(dlr_delay=10.0, max_pending_reports=1)
async def test_reports_past_the_pending_bound_are_dropped(
    emulator: Emulator, report_recorder: ReportRecorder
) -> None:
    async with make_sender(emulator.base_url) as sender:
        await sender.send(PHONE, "one", callback_url=report_recorder.url)
        await sender.send(PHONE, "two", callback_url=report_recorder.url)
    assert emulator.reports == {"dropped": 1}


async def test_serve_takes_a_config_or_options_but_not_both() -> None:
    with pytest.raises(TypeError, match="not both"):
        async with serve(EmulatorConfig(), rate_500=1.0):
            pass  # pragma: no cover - never entered


async def test_serve_with_a_config_uses_it() -> None:
    async with serve(EmulatorConfig(record="totals")) as emulator:
        async with make_sender(emulator.base_url) as sender:
            await sender.send(PHONE, "hello", uid="t")
        assert emulator.stats()["accepted"] == 1
        assert emulator.count_for_uid("t") == 0


async def test_an_address_in_use_raises_os_error(emulator: Emulator) -> None:
    port = int(emulator.base_url.rsplit(":", 1)[1])
    with pytest.raises(OSError, match="in use"):
        async with serve(port=port):
            pass  # pragma: no cover - never entered


@pytest.mark.parametrize(
    "options",
    [
        {"rate_500": 2.0},
        {"latency": -1.0},
        {"slow_rate": 1.5},
        {"record": "all"},
        {"dlr_statuses": "Delivered:x"},
        {"dlr_statuses": "Delivered:-1"},
        {"dlr_statuses": ","},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each names its own field
        EmulatorConfig(**options)  # type: ignore[arg-type]


async def test_a_lifespan_scope_is_ignored() -> None:
    sent: list[object] = []

    async def receive() -> dict[str, object]:
        raise AssertionError("not read")  # pragma: no cover

    async def send(message: object) -> None:
        sent.append(message)  # pragma: no cover

    await Emulator()({"type": "lifespan"}, receive, send)
    assert sent == []


async def test_a_chunked_body_is_read_whole(emulator: Emulator) -> None:
    body = (
        b'{"api_id":"API43404236","api_password":"demo-password","sms_type":"T",'
        b'"encoding":"T","sender_id":"HAORUI","phonenumber":"8613912345678",'
        b'"textmessage":"' + b"x" * 100_000 + b'"}'
    )

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 10_000):
            yield body[start : start + 10_000]

    async with httpx.AsyncClient() as client:
        response = await client.post(
            emulator.base_url + "/api/SendSMS",
            content=chunks(),
            headers={"content-type": "application/json"},
        )
    assert response.json()["status"] == "S"


@pytest.mark.emulator_config(dlr_delay=0.0)
async def test_localhost_counts_as_loopback_for_reports(
    emulator: Emulator, report_recorder: ReportRecorder
) -> None:
    url = report_recorder.url.replace("127.0.0.1", "localhost")
    async with make_sender(emulator.base_url) as sender:
        await sender.send(PHONE, "hello", callback_url=url)
    await eventually(lambda: emulator.reports["sent"] + emulator.reports["failed"] == 1)
    assert "skipped" not in emulator.reports


def _accepted_end_of(client: socket.socket) -> socket.socket:
    """The server's end of `client`'s loopback connection, among this process's sockets.

    The emulator runs in this process, so the socket it accepted is one of our descriptors:
    the one whose own address is the client's peer and whose peer is the client. Returned
    as a duplicate (close it), so the server's socket is left as it is.
    """
    wanted = (client.getpeername(), client.getsockname())
    for name in os.listdir("/dev/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
        except OSError:  # the listing's own descriptor, already closed
            continue
        candidate = socket.socket(fileno=os.dup(fd))
        try:
            if (candidate.getsockname(), candidate.getpeername()) == wanted:
                return candidate
        except OSError:  # a listening socket: no peer
            pass
        candidate.close()
    raise AssertionError(f"no socket of this process is the server's end of {wanted}")


async def _nagle_of_accepted_connection() -> int:
    """TCP_NODELAY on the emulator's end of a connection that has had one answer."""
    async with serve() as emulator:
        port = int(emulator.base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /_emulator/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            # The answer proves the server has accepted the connection and made its transport.
            assert (await reader.readline()).startswith(b"HTTP/1.1 200")
            with _accepted_end_of(writer.get_extra_info("socket")) as accepted:
                return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="lists open descriptors in /dev/fd")
@pytest.mark.parametrize("loop_factory", ["asyncio", "uvloop"])
def test_accepted_connections_send_without_waiting_for_acks(loop_factory: str) -> None:
    # With Nagle's algorithm on, each answer's body waits for the client's delayed ACK of
    # its headers: ~40 ms a request on loopback instead of ~1 ms.
    if loop_factory == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    loop = new_loop()
    try:
        assert loop.run_until_complete(_nagle_of_accepted_connection()) != 0
    finally:
        loop.close()
