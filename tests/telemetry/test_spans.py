"""One span per send: its name, kind, parent, attributes, status and events, for every outcome."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from haorui_async import (
    SMS,
    AsyncSender,
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    Rejected,
    RetryPolicy,
    Sender,
    SendError,
    SendRecord,
    SubmissionFailed,
)
from haorui_async.testing import (
    DropConnection,
    FakeGateway,
    Fault,
    LoseAnswer,
    RefuseConnection,
    RespondWith,
)

from .._kit import API_ID, ATTEMPTS, PASSWORD
from ._otel_kit import InMemoryOtel
from .conftest import PHONE, FakeSleep

#: The attributes every send span carries, whatever its outcome.
STATIC = {
    "http.request.method": "POST",
    "server.address": "api.haorui.com",
    "server.port": 443,
    "haorui.backend": "httpx",
    "haorui.sms.parts": 1,
    "haorui.sms.encoding": "T",
}


def only_send_span(otel: InMemoryOtel) -> ReadableSpan:
    (span,) = otel.send_spans()
    return span


async def test_a_sent_message_is_one_client_span_under_the_callers_span(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    tracer = otel.tracer_provider.get_tracer("the caller")
    async with make_sender(telemetry=otel.telemetry) as sender:
        with tracer.start_as_current_span("checkout") as parent:
            await sender.send(PHONE, "Your code is 112233", uid="u-1")
    span = only_send_span(otel)
    assert span.name == "haorui.send"
    assert span.kind is SpanKind.CLIENT
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.context is not None
    assert span.context.trace_id == parent.get_span_context().trace_id
    attributes = dict(span.attributes or {})
    assert attributes.pop("haorui.wait.rate_limit") == 0.0
    assert attributes.pop("haorui.wait.pause") == 0.0
    assert attributes == {
        **STATIC,
        "haorui.uid": "u-1",
        "haorui.outcome": "sent",
        "haorui.attempts": 1,
        "haorui.may_have_been_sent": True,
        "haorui.reconciled": False,
        "http.response.status_code": 200,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


async def test_without_a_current_span_the_send_starts_a_trace(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    async with make_sender(telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "hi")
    assert only_send_span(otel).parent is None


async def test_the_send_span_is_current_while_the_request_goes_out(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    # What a transport (or an HTTP instrumentation under it) sees as the current span.
    seen: list[trace.Span] = []

    class Watching(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(trace.get_current_span())
            return await gateway.transport.handle_async_request(request)

    async with make_sender(transport=Watching(), telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "hi")
    assert trace.get_current_span() is trace.INVALID_SPAN
    span = only_send_span(otel)
    assert [s.get_span_context() for s in seen] == [span.context]


#: Each failure class, with what its span says: the faults served to every attempt, the error,
#: its kind, may_have_been_sent, the last status code, and the attempts made.
FAILURES: list[tuple[str, list[Fault], type[SendError], str, bool, int | None, int]] = [
    ("not sent", [RespondWith(503)] * ATTEMPTS, NotSent, "not_sent", False, 503, ATTEMPTS),
    ("refused", [RefuseConnection()] * ATTEMPTS, NotSent, "not_sent", False, None, ATTEMPTS),
    ("rejected", [RespondWith(403)], Rejected, "rejected", False, 403, 1),
    ("unknown", [RespondWith(500)], OutcomeUnknown, "unknown", True, 500, 1),
    ("lost answer", [LoseAnswer()], OutcomeUnknown, "unknown", True, None, 1),
]


@pytest.mark.parametrize(
    ("faults", "error", "kind", "maybe", "status", "attempts"),
    [case[1:] for case in FAILURES],
    ids=[case[0] for case in FAILURES],
)
async def test_a_failed_send_is_an_error_span_with_the_error_class(
    gateway: FakeGateway,
    make_sender: Callable[..., AsyncSender],
    otel: InMemoryOtel,
    faults: list[Fault],
    error: type[SendError],
    kind: str,
    maybe: bool,
    status: int | None,
    attempts: int,
) -> None:
    gateway.inject(*faults)
    async with make_sender(telemetry=otel.telemetry) as sender:
        with pytest.raises(error) as caught:
            await sender.send(PHONE, "hi", uid="u-f")
    assert type(caught.value) is error
    span = only_send_span(otel)
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert attributes["error.type"] == error.__name__
    assert attributes["haorui.outcome"] == kind
    assert attributes["haorui.may_have_been_sent"] is maybe
    assert attributes["haorui.attempts"] == attempts
    assert attributes.get("http.response.status_code") == status
    assert len(span.events) == attempts - 1


async def test_status_f_is_submission_failed_on_an_http_200(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    async with make_sender(api_password="not the account's", telemetry=otel.telemetry) as sender:
        with pytest.raises(SubmissionFailed):
            await sender.send(PHONE, "hi")
    span = only_send_span(otel)
    attributes = dict(span.attributes or {})
    assert span.status.status_code is StatusCode.ERROR
    assert (attributes["error.type"], attributes["haorui.outcome"]) == (
        "SubmissionFailed",
        "failed",
    )
    assert attributes["http.response.status_code"] == 200
    assert attributes["haorui.may_have_been_sent"] is False


async def test_an_invalid_message_gets_no_span_no_metric_and_no_record(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    # Raised while the message is built, before a send begins: the caller has the error at
    # once, and nothing went anywhere to be observed.
    records: list[SendRecord] = []
    async with make_sender(telemetry=otel.telemetry, on_outcome=records.append) as sender:
        with pytest.raises(InvalidMessage):
            await sender.send("0123", "hi")
        with pytest.raises(InvalidMessage):
            await sender.send_message(SMS(PHONE, ""))
    assert otel.spans() == []
    assert otel.points("haorui.sends") == []
    assert records == []


async def test_a_retried_send_has_one_event_per_retry_with_its_wait(
    gateway: FakeGateway,
    make_sender: Callable[..., AsyncSender],
    otel: InMemoryOtel,
    fake_sleep: FakeSleep,
) -> None:
    gateway.inject(RespondWith(503), RefuseConnection())
    async with make_sender(telemetry=otel.telemetry) as sender:
        result = await sender.send(PHONE, "hi")
    assert result.attempts == 3
    span = only_send_span(otel)
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {})["haorui.attempts"] == 3
    assert [event.name for event in span.events] == ["haorui.retry", "haorui.retry"]
    first, second = (dict(event.attributes or {}) for event in span.events)
    assert first == {
        "haorui.attempt": 1,
        "haorui.outcome": "not_sent",
        "error.type": "NotSent",
        "haorui.retry.wait": fake_sleep.calls[0],
        "http.response.status_code": 503,
    }
    assert second == {
        "haorui.attempt": 2,
        "haorui.outcome": "not_sent",
        "error.type": "NotSent",
        "haorui.retry.wait": fake_sleep.calls[1],
    }


async def test_a_429_pause_is_the_waited_time_on_the_span(
    gateway: FakeGateway,
    make_sender: Callable[..., AsyncSender],
    otel: InMemoryOtel,
) -> None:
    gateway.inject(RespondWith(429, retry_after=30))
    # The sleep never sleeps: the pause the gateway asked for is still ahead when the retry
    # comes to admission, and is waited out there.
    async with make_sender(telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "hi")
    attributes = dict(only_send_span(otel).attributes or {})
    assert 29 < float(attributes["haorui.wait.pause"]) <= 30  # type: ignore[arg-type]  # a float


async def test_a_send_settled_by_reconciliation_says_so(otel: InMemoryOtel) -> None:
    gateway = FakeGateway(accounts={API_ID: PASSWORD}, lookup_lag=0.01)
    gateway.inject(LoseAnswer())
    async with AsyncSender(
        api_id=API_ID,
        api_password=PASSWORD,
        sender_id="HAORUI",
        transport=gateway.transport,
        reconcile_unknown=True,
        reconcile_settle=0.02,
        telemetry=otel.telemetry,
    ) as sender:
        result = await sender.send(PHONE, "hi", uid="lost")
    assert result.reconciled
    span = only_send_span(otel)
    attributes = dict(span.attributes or {})
    assert (attributes["haorui.outcome"], attributes["haorui.reconciled"]) == ("sent", True)
    assert "http.response.status_code" not in attributes  # the one answer was lost
    (event,) = span.events
    assert event.name == "haorui.reconcile"
    assert dict(event.attributes or {}) == {
        "haorui.attempt": 1,
        "haorui.reconcile.verdict": "accepted",
    }


async def test_not_accepted_with_no_attempt_left_is_a_reconciled_not_sent(
    otel: InMemoryOtel,
) -> None:
    gateway = FakeGateway(accounts={API_ID: PASSWORD}, lookup_lag=0.01)
    gateway.inject(DropConnection(accepted=False))
    async with AsyncSender(
        api_id=API_ID,
        api_password=PASSWORD,
        sender_id="HAORUI",
        transport=gateway.transport,
        retry=RetryPolicy(attempts=1),
        reconcile_unknown=True,
        reconcile_settle=0.02,
        telemetry=otel.telemetry,
    ) as sender:
        with pytest.raises(NotSent, match="reconciled: not accepted"):
            await sender.send(PHONE, "hi")
    attributes = dict(only_send_span(otel).attributes or {})
    assert attributes["error.type"] == "NotSent"
    assert attributes["haorui.reconciled"] is True
    assert attributes["haorui.may_have_been_sent"] is False


async def test_a_resend_after_not_accepted_is_a_retry_event_marked_reconciled(
    otel: InMemoryOtel,
) -> None:
    gateway = FakeGateway(accounts={API_ID: PASSWORD}, lookup_lag=0.01)
    gateway.inject(DropConnection(accepted=False))
    async with AsyncSender(
        api_id=API_ID,
        api_password=PASSWORD,
        sender_id="HAORUI",
        transport=gateway.transport,
        reconcile_unknown=True,
        reconcile_settle=0.02,
        telemetry=otel.telemetry,
    ) as sender:
        result = await sender.send(PHONE, "hi")
    assert (result.attempts, result.reconciled) == (2, False)
    span = only_send_span(otel)
    assert [event.name for event in span.events] == ["haorui.reconcile", "haorui.retry"]
    retry = dict(span.events[1].attributes or {})
    assert retry["haorui.reconciled"] is True
    assert retry["haorui.retry.wait"] == 0.0
    assert dict(span.attributes or {})["haorui.reconciled"] is False


async def test_a_cancelled_send_ends_its_span(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    arrived = asyncio.Event()

    class Hanging(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            arrived.set()
            await asyncio.sleep(30)
            raise AssertionError("cancelled before")

    async with make_sender(transport=Hanging(), telemetry=otel.telemetry, timeout=60) as sender:
        task = asyncio.create_task(sender.send(PHONE, "hi"))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    attributes = dict(only_send_span(otel).attributes or {})
    assert attributes["error.type"] == "CancelledError"
    # A request was out: nothing proves the gateway did not take it.
    assert (attributes["haorui.outcome"], attributes["haorui.may_have_been_sent"]) == (
        "unknown",
        True,
    )
    (active,) = otel.points("http.client.active_requests")
    assert active.value == 0


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("backend", ["httpx", "fast"])
async def test_the_span_names_the_method_and_backend(
    method: str, backend: str, otel: InMemoryOtel
) -> None:
    gateway = FakeGateway(accounts={API_ID: PASSWORD})
    options: dict[str, Any] = {"transport": gateway.transport}
    port = 0
    if backend == "fast":
        pytest.importorskip("httptools")
        # The fast backend drives its own pool: a connection refused by a port just closed.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        options = {"base_url": f"http://127.0.0.1:{port}", "retry": RetryPolicy(attempts=1)}
    async with AsyncSender(
        api_id=API_ID,
        api_password=PASSWORD,
        sender_id="HAORUI",
        method=method,  # type: ignore[arg-type]  # the parameter
        backend=backend,  # type: ignore[arg-type]  # the parameter
        telemetry=otel.telemetry,
        **options,
    ) as sender:
        try:
            await sender.send(PHONE, "hi")
        except NotSent:
            assert backend == "fast"
    attributes = dict(only_send_span(otel).attributes or {})
    assert attributes["http.request.method"] == method
    assert attributes["haorui.backend"] == backend
    if backend == "fast":
        assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", port)


async def test_parts_and_encoding_are_those_the_message_goes_out_with(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    async with make_sender(telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "你好" * 40)  # 80 UCS-2 units: two parts of 67
        await sender.send(PHONE, "a" * 161, encoding="U")  # 161 units in UCS-2: three parts
    first, second = (dict(span.attributes or {}) for span in otel.send_spans())
    assert (first["haorui.sms.encoding"], first["haorui.sms.parts"]) == ("U", 2)
    assert (second["haorui.sms.encoding"], second["haorui.sms.parts"]) == ("U", 3)


async def test_the_phone_number_is_on_no_span_unless_asked_for(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel, gateway: FakeGateway
) -> None:
    gateway.inject(RespondWith(503))
    async with make_sender(telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "hi")
    span = only_send_span(otel)
    values = [*(span.attributes or {}).values()]
    values += [v for event in span.events for v in (event.attributes or {}).values()]
    assert not any(PHONE in str(value) for value in values)
    assert not any("phone" in key for key in span.attributes or {})


async def test_the_phone_number_is_on_the_span_when_asked_for_and_never_on_a_metric(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    async with make_sender(telemetry=otel.telemetry, telemetry_phonenumber=True) as sender:
        await sender.send("+86 139 1234 5678", "hi")
    assert dict(only_send_span(otel).attributes or {})["haorui.sms.phonenumber"] == PHONE
    for points in otel.metrics().values():
        for point in points:
            assert PHONE not in repr(point.attributes)


async def test_the_span_carries_the_data_of_the_on_outcome_record(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    records: list[SendRecord] = []
    gateway.inject(RespondWith(503), RespondWith(500))
    async with make_sender(
        telemetry=otel.telemetry, on_outcome=records.append, telemetry_phonenumber=True
    ) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send(PHONE, "hi", uid="same")
    (record,) = records
    attributes = dict(only_send_span(otel).attributes or {})
    assert {
        "haorui.uid": record.uid,
        "haorui.outcome": record.kind,
        "haorui.attempts": record.attempts,
        "haorui.may_have_been_sent": record.may_have_been_sent,
        "haorui.sms.parts": record.parts,
        "haorui.sms.encoding": record.encoding,
        "haorui.backend": record.backend,
        "http.request.method": record.method,
        "haorui.wait.rate_limit": record.rate_limit_wait,
        "haorui.wait.pause": record.pause_wait,
        "error.type": record.error,
        "http.response.status_code": record.status_code,
        "haorui.reconciled": record.reconciled,
        "haorui.sms.phonenumber": record.phonenumber,
    }.items() <= attributes.items()
    (duration,) = otel.points("haorui.send.duration")
    assert duration.total == pytest.approx(record.duration)


async def test_a_span_a_sampler_drops_is_not_exported_and_the_send_is_still_counted(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    dropping = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    telemetry = attrs.evolve(otel.telemetry, tracer_provider=dropping)
    async with make_sender(telemetry=telemetry) as sender:
        await sender.send(PHONE, "hi")
    dropping.shutdown()
    assert otel.spans() == []
    assert [p.value for p in otel.points("haorui.sends")] == [1]


def test_the_sync_sender_s_span_is_a_child_of_the_calling_thread_s_span(
    otel: InMemoryOtel,
) -> None:
    # The facade's loop runs in its own thread: the caller's context travels with each call.
    gateway = FakeGateway(accounts={API_ID: PASSWORD})
    tracer = otel.tracer_provider.get_tracer("the caller")
    with (
        Sender(
            api_id=API_ID,
            api_password=PASSWORD,
            sender_id="HAORUI",
            transport=gateway.transport,
            telemetry=otel.telemetry,
        ) as sender,
        tracer.start_as_current_span("view") as parent,
    ):
        sender.send(PHONE, "hi")
    span = only_send_span(otel)
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
