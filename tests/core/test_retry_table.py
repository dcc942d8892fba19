"""The outcome table, one row at a time: retried or not, requests made, error class."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import tenacity

from haorui_async import (
    AsyncSender,
    NotSent,
    OutcomeUnknown,
    Rejected,
    RetryPolicy,
    SenderClosed,
    SendError,
    SubmissionFailed,
)

from .._kit import Answer, CountingHandler, make_test_sender
from .conftest import FakeSleep, accepted, scripted

ATTEMPTS = 4


def raising(exc_type: type[Exception]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)  # type: ignore[call-arg]  # httpx errors take request=

    return handler


def answering(status: int, **kwargs: Any) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, **kwargs)


TABLE = [
    # (case, handler, error class, requests that reached the server)
    ("connect refused / DNS", raising(httpx.ConnectError), NotSent, ATTEMPTS),
    ("connect timeout", raising(httpx.ConnectTimeout), NotSent, ATTEMPTS),
    ("pool timeout", raising(httpx.PoolTimeout), NotSent, ATTEMPTS),
    ("proxy error", raising(httpx.ProxyError), NotSent, ATTEMPTS),
    ("HTTP 408", answering(408), NotSent, ATTEMPTS),
    ("HTTP 429", answering(429), NotSent, ATTEMPTS),
    ("HTTP 503", answering(503), NotSent, ATTEMPTS),
    ("read timeout", raising(httpx.ReadTimeout), OutcomeUnknown, 1),
    ("write timeout", raising(httpx.WriteTimeout), OutcomeUnknown, 1),
    ("connection lost after write", raising(httpx.RemoteProtocolError), OutcomeUnknown, 1),
    ("read error", raising(httpx.ReadError), OutcomeUnknown, 1),
    ("write error", raising(httpx.WriteError), OutcomeUnknown, 1),
    ("HTTP 500", answering(500), OutcomeUnknown, 1),
    ("HTTP 502", answering(502), OutcomeUnknown, 1),
    ("HTTP 504", answering(504), OutcomeUnknown, 1),
    ("HTTP 599", answering(599), OutcomeUnknown, 1),
    ("200, body not JSON", answering(200, text="<html>busy</html>"), OutcomeUnknown, 1),
    ("200, JSON not an object", answering(200, json=[1]), OutcomeUnknown, 1),
    ("200, unknown status", answering(200, json={"status": "Q"}), OutcomeUnknown, 1),
    (
        "200, S without message_id",
        answering(200, json={"status": "S", "message_id": None}),
        OutcomeUnknown,
        1,
    ),
    (
        "200, S with a float message_id",
        answering(200, json={"status": "S", "message_id": 2.5e18}),
        OutcomeUnknown,
        1,
    ),
    (
        "200, S with an empty message_id",
        answering(200, json={"status": "S", "message_id": " "}),
        OutcomeUnknown,
        1,
    ),
    ("status F", answering(200, json={"status": "F", "remarks": "Invalid"}), SubmissionFailed, 1),
    ("HTTP 400", answering(400), Rejected, 1),
    ("HTTP 401", answering(401), Rejected, 1),
    ("HTTP 403", answering(403), Rejected, 1),
    ("HTTP 404", answering(404), Rejected, 1),
    ("HTTP 301", answering(301, headers={"Location": "https://x.test/"}), Rejected, 1),
    ("HTTP 501", answering(501), Rejected, 1),
    ("unsupported protocol", raising(httpx.UnsupportedProtocol), Rejected, 1),
    ("a transport bug", lambda r: 1 / 0, OutcomeUnknown, 1),
]


@pytest.mark.parametrize(
    ("handler", "error", "requests"),
    [pytest.param(h, e, n, id=case) for case, h, e, n in TABLE],
)
async def test_outcome_table(
    make_sender: Callable[..., AsyncSender],
    handler: Callable[[httpx.Request], httpx.Response],
    error: type[SendError],
    requests: int,
) -> None:
    counting = CountingHandler(handler)
    async with make_sender(counting) as sender:
        with pytest.raises(error) as info:
            await sender.send("8613912345678", "hi", uid="row-7")
    assert type(info.value) is error
    assert counting.calls == requests
    assert info.value.uid == "row-7"
    assert info.value.attempts == requests
    assert info.value.may_have_been_sent is (error is OutcomeUnknown)
    assert "uid='row-7'" in str(info.value)


async def test_read_timeout_is_not_retried_by_default_and_carries_the_uid(
    make_sender: Callable[..., AsyncSender],
) -> None:
    handler = CountingHandler(raising(httpx.ReadTimeout))
    async with make_sender(handler) as sender:
        with pytest.raises(OutcomeUnknown) as info:
            await sender.send("8613912345678", "hi", uid="order-1")
    assert handler.calls == 1
    assert info.value.uid == "order-1"
    assert info.value.status_code is None
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


async def test_read_timeout_is_retried_when_the_caller_opts_in(
    make_sender: Callable[..., AsyncSender],
) -> None:
    timed_out = raising(httpx.ReadTimeout)
    handler = CountingHandler(scripted(timed_out, timed_out))
    async with make_sender(handler, retry_ambiguous=True) as sender:
        result = await sender.send("8613912345678", "hi")
    assert handler.calls == 3
    assert result.attempts == 3


async def test_retry_after_seconds_is_waited_out_then_succeeds(
    make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    handler = scripted(httpx.Response(429, headers={"Retry-After": "1"}))

    async with make_sender(handler) as sender:
        result = await sender.send("8613912345678", "hi")
    assert result.status == "S"
    assert result.attempts == 2
    assert fake_sleep.calls[0] == 1.0


async def test_retry_after_http_date_is_honoured(
    make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    handler = scripted(httpx.Response(503, headers={"Retry-After": when}))

    async with make_sender(handler) as sender:
        await sender.send("8613912345678", "hi")
    assert 1.0 <= fake_sleep.calls[0] <= 3.0


async def test_retry_after_beyond_the_cap_gives_up_at_once(
    make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    handler = CountingHandler(answering(429, headers={"Retry-After": "3600"}))
    async with make_sender(handler) as sender:
        with pytest.raises(NotSent) as info:
            await sender.send("8613912345678", "hi")
    assert handler.calls == 1
    assert fake_sleep.calls == []
    assert info.value.retry_after == 3600.0
    assert info.value.status_code == 429


async def test_retry_after_past_the_deadline_gives_up_at_once(
    make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    handler = CountingHandler(answering(503, headers={"Retry-After": "20"}))
    async with make_sender(handler, deadline=10.0) as sender:
        with pytest.raises(NotSent):
            await sender.send("8613912345678", "hi")
    assert handler.calls == 1
    assert fake_sleep.calls == []


async def test_back_off_is_full_jitter_exponential(
    make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    policy = RetryPolicy(attempts=5, backoff_base=0.5, backoff_max=1.5)
    async with make_sender(raising(httpx.ConnectError), retry=policy) as sender:
        with pytest.raises(NotSent) as info:
            await sender.send("8613912345678", "hi")
    assert info.value.attempts == 5
    ceilings = [0.5, 1.0, 1.5, 1.5]
    assert len(fake_sleep.calls) == 4
    for waited, ceiling in zip(fake_sleep.calls, ceilings, strict=True):
        assert 0.0 <= waited <= ceiling


def test_backoff_bounds_follow_the_policy() -> None:
    policy = RetryPolicy(backoff_base=0.25, backoff_max=10.0)
    assert policy.backoff(3, rand=lambda: 1.0) == 1.0
    assert policy.backoff(10, rand=lambda: 1.0) == 10.0
    assert policy.backoff(1, rand=lambda: 0.0) == 0.0


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"backoff_base": -1.0}, {"retry_after_cap": -0.1}]
)
def test_retry_policy_validates(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        RetryPolicy(**kwargs)


async def test_one_attempt_policy_turns_retries_off(
    make_sender: Callable[..., AsyncSender],
) -> None:
    handler = CountingHandler(answering(503))
    async with make_sender(handler, retry=RetryPolicy(attempts=1)) as sender:
        with pytest.raises(NotSent):
            await sender.send("8613912345678", "hi")
    assert handler.calls == 1


async def test_first_attempt_success_does_not_enter_tenacity(
    make_sender: Callable[..., AsyncSender], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the retry machinery was entered")

    # tenacity's strategies are consulted only to decide on a retry, after a failure.
    monkeypatch.setattr(tenacity.RetryCallState, "__init__", refuse)
    async with make_sender(accepted) as sender:
        result = await sender.send("8613912345678", "hi")
    assert result.attempts == 1
    async with make_sender(scripted(httpx.Response(503))) as sender:
        with pytest.raises(AssertionError, match="retry machinery"):
            await sender.send("8613912345678", "hi")


async def test_an_injected_clock_bounds_the_retries_by_the_deadline_without_waiting() -> None:
    now = 1000.0
    waits: list[float] = []

    def clock() -> float:
        return now

    async def sleep(seconds: float) -> None:
        nonlocal now
        waits.append(seconds)
        now += seconds

    handler = CountingHandler(answering(503, headers={"Retry-After": "4"}))
    async with make_test_sender(
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=10),
        deadline=10.0,
        sleep=sleep,
        clock=clock,
    ) as sender:
        with pytest.raises(NotSent) as info:
            await sender.send("8613912345678", "hi")
    # Waits of 4 s at 1000 and 1004; a third would end at 1012, past the deadline of 1010.
    assert waits == [4.0, 4.0]
    assert handler.calls == info.value.attempts == 3


async def test_a_429_pauses_every_send_of_the_sender(
    make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    handler = scripted(httpx.Response(429, headers={"Retry-After": "2"}))

    async with make_sender(handler, retry=RetryPolicy(attempts=1)) as sender:
        with pytest.raises(NotSent):
            await sender.send("8613912345678", "first")
        await sender.send("8613912345678", "second")
    # The second send waited behind the pause the first one's 429 set.
    assert len(fake_sleep.calls) == 1
    assert 1.0 < fake_sleep.calls[0] <= 2.0


async def test_a_pause_past_the_deadline_is_not_sent(
    make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    handler = CountingHandler(scripted(httpx.Response(429, headers={"Retry-After": "30"})))
    async with make_sender(handler, retry=RetryPolicy(attempts=1), deadline=5.0) as sender:
        with pytest.raises(NotSent):
            await sender.send("8613912345678", "first")
        with pytest.raises(NotSent, match="pause"):
            await sender.send("8613912345678", "second")
    assert handler.calls == 1


# -- an attempt that may have been accepted, then one that settles nothing ------------------

AMBIGUOUS_THEN = [
    ("not sent twice", [raising(httpx.ConnectError), raising(httpx.ConnectError)]),
    ("refused as it stands", [answering(401)]),
    ("answered F", [answering(200, json={"status": "F", "remarks": "duplicate"})]),
]


@pytest.mark.parametrize(
    "then", [then for _, then in AMBIGUOUS_THEN], ids=[case for case, _ in AMBIGUOUS_THEN]
)
async def test_a_retry_of_an_ambiguous_attempt_never_makes_the_message_not_sent(
    make_sender: Callable[..., AsyncSender], then: list[Callable[[httpx.Request], httpx.Response]]
) -> None:
    # retry_ambiguous=True: the first request may have been accepted. What the retries meet
    # afterwards (a refused connection, a 401, a refusal) says nothing of that first one.
    handler = CountingHandler(scripted(raising(httpx.ReadTimeout), *then))
    retry = RetryPolicy(attempts=len(then) + 1, retry_ambiguous=True)
    async with make_sender(handler, retry=retry) as sender:
        with pytest.raises(SendError) as info:
            await sender.send("8613912345678", "hi", uid="maybe-1")
    assert handler.calls == len(then) + 1
    assert type(info.value) is OutcomeUnknown
    assert info.value.may_have_been_sent
    assert info.value.attempts == len(then) + 1
    assert "attempt 1 may have been accepted" in info.value.detail
    assert isinstance(info.value.__cause__, SendError)


def closed_in_its_first_wait(
    make_sender: Callable[..., AsyncSender], first: Answer, **options: Any
) -> tuple[AsyncSender, CountingHandler]:
    """A sender whose first request meets `first`, and which the service shuts down during
    the first wait that follows (the pause before a retry, or before a lookup)."""
    handler = CountingHandler(scripted(first))
    closing: list[AsyncSender] = []

    async def sleep(seconds: float) -> None:
        await closing[0].aclose()

    closing.append(make_sender(handler, sleep=sleep, **options))
    return closing[0], handler


async def test_a_sender_closed_before_the_retry_of_an_ambiguous_attempt_leaves_it_unknown(
    make_sender: Callable[..., AsyncSender],
) -> None:
    retry = RetryPolicy(attempts=3, retry_ambiguous=True)
    sender, handler = closed_in_its_first_wait(make_sender, raising(httpx.ReadTimeout), retry=retry)
    with pytest.raises(SendError) as info:
        await sender.send("8613912345678", "hi", uid="maybe-2")
    assert handler.calls == 1
    assert type(info.value) is OutcomeUnknown
    assert info.value.attempts == 1
    assert "closed" in info.value.detail


async def test_a_sender_closed_before_a_retry_of_what_never_went_out_is_sender_closed(
    make_sender: Callable[..., AsyncSender],
) -> None:
    # Nothing reached the gateway: closing it is no reason to say more than SenderClosed.
    retry = RetryPolicy(attempts=3)
    sender, handler = closed_in_its_first_wait(
        make_sender, raising(httpx.ConnectError), retry=retry
    )
    with pytest.raises(SenderClosed):
        await sender.send("8613912345678", "hi")
    assert handler.calls == 1


async def test_a_sender_closed_while_it_waits_to_look_up_a_lost_answer_leaves_it_unknown(
    make_sender: Callable[..., AsyncSender],
) -> None:
    sender, handler = closed_in_its_first_wait(
        make_sender, raising(httpx.ReadTimeout), reconcile_unknown=True
    )
    with pytest.raises(SendError) as info:
        await sender.send("8613912345678", "hi", uid="maybe-3")
    assert handler.calls == 1
    # The lookup could not be made: the verdict is unknown, and so is the outcome.
    assert type(info.value) is OutcomeUnknown
    assert info.value.attempts == 1
