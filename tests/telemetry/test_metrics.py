"""The metrics: sends by outcome, their duration, the waits, and per request the HTTP
semantic conventions' `http.client.request.duration` and `http.client.active_requests`."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from haorui_async import AsyncSender, NotSent, OutcomeUnknown, Rejected, SubmissionFailed
from haorui_async.testing import FakeGateway, RefuseConnection, RespondWith

from .._kit import ATTEMPTS
from ._otel_kit import InMemoryOtel, Point
from .conftest import PHONE

#: What every request's metric attributes hold (the sender's method and gateway).
REQUEST = {"http.request.method": "POST", "server.address": "api.haorui.com", "server.port": 443}


def by_attributes(points: list[Point]) -> dict[frozenset[tuple[str, object]], Point]:
    return {frozenset(point.attributes.items()): point for point in points}


def key(**attributes: object) -> frozenset[tuple[str, object]]:
    return frozenset(attributes.items())


async def test_sends_are_counted_and_timed_by_outcome(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    async with make_sender(telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "one")
        await sender.send(PHONE, "two")
        gateway.inject(RespondWith(403))
        with pytest.raises(Rejected):
            await sender.send(PHONE, "three")
        gateway.inject(RespondWith(502))
        with pytest.raises(OutcomeUnknown):
            await sender.send(PHONE, "four")
        gateway.inject(*[RespondWith(503)] * ATTEMPTS)
        with pytest.raises(NotSent):
            await sender.send(PHONE, "five")
    async with make_sender(api_password="wrong", telemetry=otel.telemetry) as sender:
        with pytest.raises(SubmissionFailed):
            await sender.send(PHONE, "six")
    sends = by_attributes(otel.points("haorui.sends"))
    assert {k: p.value for k, p in sends.items()} == {
        key(**{"haorui.outcome": "sent"}): 2,
        key(**{"haorui.outcome": "rejected", "error.type": "Rejected"}): 1,
        key(**{"haorui.outcome": "unknown", "error.type": "OutcomeUnknown"}): 1,
        key(**{"haorui.outcome": "not_sent", "error.type": "NotSent"}): 1,
        key(**{"haorui.outcome": "failed", "error.type": "SubmissionFailed"}): 1,
    }
    durations = by_attributes(otel.points("haorui.send.duration"))
    assert durations.keys() == sends.keys()
    assert durations[key(**{"haorui.outcome": "sent"})].count == 2
    assert all(p.total is not None and p.total > 0 for p in durations.values())


async def test_each_request_is_timed_with_the_http_conventions_names(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    gateway.inject(RespondWith(503), RefuseConnection())
    async with make_sender(telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "hi")
    requests = by_attributes(otel.points("http.client.request.duration"))
    assert {k: p.count for k, p in requests.items()} == {
        key(**REQUEST, **{"http.response.status_code": 503, "error.type": "503"}): 1,
        # No answer: the transport's exception class, low cardinality.
        key(**REQUEST, **{"error.type": "ConnectError"}): 1,
        key(**REQUEST, **{"http.response.status_code": 200}): 1,
    }
    (active,) = otel.points("http.client.active_requests")
    assert (active.attributes, active.value) == (REQUEST, 0)


async def test_a_status_f_answer_is_an_http_success(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    # The HTTP conventions describe the exchange: a 200 is a success there, whatever its
    # body says; the send's own metrics carry SubmissionFailed.
    async with make_sender(api_password="wrong", telemetry=otel.telemetry) as sender:
        with pytest.raises(SubmissionFailed):
            await sender.send(PHONE, "hi")
    (request,) = otel.points("http.client.request.duration")
    assert request.attributes == {**REQUEST, "http.response.status_code": 200}


async def test_the_waits_for_the_rate_limit_and_a_pause_are_recorded_per_wait(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    pytest.importorskip("aiolimiter")
    gateway.inject(RespondWith(429, retry_after=2))
    async with make_sender(telemetry=otel.telemetry, rate_limit=1000) as sender:
        await sender.send(PHONE, "hi")
    waits = by_attributes(otel.points("haorui.send.wait.duration"))
    rate_limit = waits[key(**{"haorui.wait.reason": "rate_limit"})]
    pause = waits[key(**{"haorui.wait.reason": "pause"})]
    assert rate_limit.count == 2  # one turn per attempt
    assert pause.count == 1
    assert pause.total is not None
    assert 1 < pause.total <= 2


async def test_no_wait_is_recorded_without_a_rate_limit_or_a_pause(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    async with make_sender(telemetry=otel.telemetry) as sender:
        await sender.send(PHONE, "hi")
    assert otel.points("haorui.send.wait.duration") == []


async def test_metric_attributes_never_hold_the_uid(
    make_sender: Callable[..., AsyncSender], otel: InMemoryOtel
) -> None:
    # One series per message would make every metric grow with the traffic.
    async with make_sender(telemetry=otel.telemetry, telemetry_phonenumber=True) as sender:
        await sender.send(PHONE, "hi", uid="a-distinct-uid")
    for points in otel.metrics().values():
        for point in points:
            assert "a-distinct-uid" not in repr(point.attributes)
            assert not any(
                name.startswith(("haorui.uid", "haorui.sms")) for name in point.attributes
            )
