"""`Sender`, the synchronous facade: from many threads, from inside a loop, closing."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from haorui_async import SMS, InvalidMessage, Outcome, OutcomeUnknown, Sender, SenderClosed
from haorui_async.testing import (
    DEMO_API_ID,
    DEMO_API_PASSWORD,
    FakeGateway,
    FaultRates,
    LoseAnswer,
)

PHONE = "8613912345678"


def make(gateway: FakeGateway, **options: object) -> Sender:
    return Sender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        sender_id="HAORUI",
        transport=gateway.transport,
        **options,
    )


def facade_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "haorui-async Sender"]


def test_eight_threads_send_a_thousand_messages_one_outcome_each() -> None:
    gateway = FakeGateway()
    with make(gateway, max_concurrency=50) as sender:

        def send(n: int) -> tuple[str | None, str]:
            result = sender.send(PHONE, f"code {n}", uid=f"t-{n}")
            return result.uid, result.message_id

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(send, range(1000)))
    assert sorted(str(uid) for uid, _ in results) == sorted(f"t-{n}" for n in range(1000))
    assert len({message_id for _, message_id in results}) == 1000
    assert gateway.uids == Counter({f"t-{n}": 1 for n in range(1000)})


def test_its_errors_are_the_async_senders() -> None:
    gateway = FakeGateway()
    gateway.inject(LoseAnswer())
    with make(gateway) as sender:
        with pytest.raises(InvalidMessage, match="phonenumber"):
            sender.send("12", "too short a number")
        with pytest.raises(OutcomeUnknown) as caught:
            sender.send(PHONE, "its answer is lost", uid="lost-1")
    assert caught.value.uid == "lost-1"
    assert gateway.received == 1  # the invalid one never went out


def test_send_many_yields_one_outcome_per_message() -> None:
    gateway = FakeGateway(rates=FaultRates(rate_lose_answer=0.2), seed=3)
    messages = [SMS(PHONE, f"many {n}", uid=f"m-{n}") for n in range(200)]
    with make(gateway, max_concurrency=20) as sender:
        outcomes = list(sender.send_many(messages, ordered=True))
    assert [o.uid for o in outcomes] == [m.uid for m in messages]
    kinds = Counter(o.kind for o in outcomes)
    assert set(kinds) == {"sent", "unknown"}
    assert kinds["unknown"] == gateway.stats()["faults"]["lose_answer"]


def test_leaving_send_many_early_stops_the_run() -> None:
    gateway = FakeGateway()
    messages = (SMS(PHONE, f"early {n}", uid=f"e-{n}") for n in range(10_000))
    with make(gateway, max_concurrency=5) as sender:
        for taken, _ in enumerate(sender.send_many(messages, concurrency=5), start=1):
            if taken == 20:
                break
        # The run has stopped: the sender is free for another send.
        sender.send(PHONE, "after", uid="after")
    assert gateway.received < 100


def test_a_call_from_inside_a_running_loop_raises_at_once() -> None:
    gateway = FakeGateway()
    with make(gateway) as sender:

        async def inside() -> None:
            with pytest.raises(RuntimeError, match="use AsyncSender"):
                sender.send(PHONE, "from a coroutine")
            with pytest.raises(RuntimeError, match="use AsyncSender"):
                sender.check_balance()

        asyncio.run(inside())
        # Nothing was sent, and the facade still works outside the loop.
        assert gateway.received == 0
        assert sender.send(PHONE, "from plain code").status == "S"


def test_a_call_from_the_facades_own_loop_raises_instead_of_deadlocking() -> None:
    gateway = FakeGateway()
    with make(gateway) as sender:

        def messages() -> object:
            # Read on the facade's loop thread: a call back into it could never return.
            with pytest.raises(RuntimeError, match="use AsyncSender"):
                sender.send(PHONE, "re-entrant")
            yield SMS(PHONE, "the one message", uid="only")

        outcomes = list(sender.send_many(messages()))  # type: ignore[arg-type]
    assert [o.kind for o in outcomes] == ["sent"]
    assert gateway.uids == Counter({"only": 1})


def test_closing_it_ends_its_thread_and_later_calls_are_refused() -> None:
    before = len(facade_threads())
    sender = make(FakeGateway())
    assert len(facade_threads()) == before + 1
    sender.send(PHONE, "hello")
    sender.close()
    sender.close()  # a second close does nothing
    assert len(facade_threads()) == before
    assert sender.closed
    with pytest.raises(SenderClosed):
        sender.send(PHONE, "too late")


def test_a_bad_option_is_refused_and_leaves_no_thread() -> None:
    before = len(facade_threads())
    with pytest.raises(ValueError, match="max_concurrency"):
        Sender(api_id=DEMO_API_ID, api_password=DEMO_API_PASSWORD, max_concurrency=0)
    assert len(facade_threads()) == before


def test_lookups_go_through_the_facade_too() -> None:
    gateway = FakeGateway()
    with make(gateway) as sender:
        sent = sender.send(PHONE, "look me up", uid="look-1")
        status = sender.get_delivery_status(uid="look-1")
        balance = sender.check_balance()
        verdict = sender.reconcile("look-1", age=60.0)
    assert status is not None
    assert status.message_id == sent.message_id
    assert balance.amount > 0
    assert verdict.verdict == "accepted"


class _NeverLimiter:
    """A rate limiter whose turn never comes; says when a send is waiting in it."""

    def __init__(self) -> None:
        self.waiting = threading.Event()

    async def acquire(self) -> None:
        self.waiting.set()
        await asyncio.Event().wait()


def closed_during(
    sender: Sender, call: Callable[[], object], reached: threading.Event
) -> list[BaseException]:
    """Run `call` in a thread of its own, close `sender` once `reached` is set, and return
    what the call raised. A bound on a failure, not a timing: before the fixes these tests
    came with, such a call could wait for a stopped loop for good."""
    caught: list[BaseException] = []

    def run() -> None:
        try:
            call()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert reached.wait(30)
    sender.close()
    thread.join(30)
    assert not thread.is_alive()
    return caught


def test_closing_it_ends_a_call_still_waiting_with_sender_closed() -> None:
    limiter = _NeverLimiter()
    gateway = FakeGateway()
    sender = make(gateway, rate_limit=limiter)
    caught = closed_during(
        sender, lambda: sender.send(PHONE, "waits for a turn that never comes"), limiter.waiting
    )
    assert [type(exc) for exc in caught] == [SenderClosed]
    assert "closed while" in str(caught[0])
    assert gateway.received == 0


def test_closing_it_while_a_lost_answer_is_looked_up_leaves_the_outcome_unknown() -> None:
    # The request reached the gateway (which accepted it) and its answer was lost: closed
    # while the call waits to look the message up, the call may not say "not sent".
    gateway = FakeGateway()
    gateway.inject(LoseAnswer())
    settling = threading.Event()

    async def sleep(seconds: float) -> None:
        settling.set()
        await asyncio.Event().wait()

    sender = make(gateway, reconcile_unknown=True, sleep=sleep)
    caught = closed_during(
        sender,
        lambda: sender.send(PHONE, "its answer is lost, then the sender closes", uid="lost-2"),
        settling,
    )
    assert [type(exc) for exc in caught] == [OutcomeUnknown]
    unknown = caught[0]
    assert isinstance(unknown, OutcomeUnknown)
    assert unknown.uid == "lost-2"
    assert unknown.may_have_been_sent
    assert "closed while" in str(unknown)
    assert gateway.received == 1


def hanging(arrived: threading.Event, expected: int = 1) -> Sender:
    """A `Sender` to a gateway that takes each request and never answers (through a
    transport that does not abort its requests when closed); `arrived` is set once
    `expected` requests have reached it."""
    received: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        if len(received) == expected:
            arrived.set()
        await asyncio.Event().wait()
        raise AssertionError("never answered")

    return Sender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        sender_id="HAORUI",
        transport=httpx.MockTransport(handler),
    )


def test_closing_it_during_an_exchange_leaves_the_outcome_unknown() -> None:
    arrived = threading.Event()
    sender = hanging(arrived)
    caught = closed_during(
        sender,
        lambda: sender.send(PHONE, "at the gateway when the sender closes", uid="inflight-1"),
        arrived,
    )
    assert [type(exc) for exc in caught] == [OutcomeUnknown]
    assert isinstance(caught[0], OutcomeUnknown)
    assert caught[0].uid == "inflight-1"
    assert caught[0].attempts == 1


def test_closing_it_during_send_many_yields_the_messages_in_flight_then_raises() -> None:
    arrived = threading.Event()
    sender = hanging(arrived, expected=2)
    messages = [SMS(PHONE, f"bulk {n}", uid=f"bulk-{n}") for n in range(4)]
    got: list[Outcome] = []
    caught = closed_during(
        sender, lambda: got.extend(sender.send_many(messages, concurrency=2)), arrived
    )
    # The two at the gateway: one outcome each, unknown; the two never taken: none.
    assert sorted((o.uid, o.kind) for o in got) == [("bulk-0", "unknown"), ("bulk-1", "unknown")]
    assert [type(exc) for exc in caught] == [SenderClosed]
