"""`send_many(reconcile_unknown=...)`, `send_message(reconcile_unknown=...)` and
`reconcile(what, age=...)`, against the in-process `FakeGateway`."""

from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

from haorui_async import SMS, AsyncSender, NotSent, OutcomeUnknown, RetryPolicy
from haorui_async._bulk import Outcome
from haorui_async.testing import (
    DEMO_API_ID,
    DEMO_API_PASSWORD,
    DropConnection,
    FakeGateway,
    FaultRates,
    LoseAnswer,
)

from .._kit import make_test_sender
from .test_reconcile import Clock

PHONE = "8613912345678"
COUNT = 40
#: The share of SendSMS requests accepted and then answered by a reset connection.
LOSE_RATE = 0.3
SEED = 11
#: Small, so a reconciliation waits next to nothing; the gateway's records trail by less.
SETTLE = 0.05
LAG = SETTLE / 2


class Recorded(httpx.AsyncBaseTransport):
    """Passes every request on to `inner` and keeps the uid of each SendSMS whose answer never
    came (the transport raised): which messages' outcomes the client could not know."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lost: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.inner.handle_async_request(request)
        except httpx.TransportError:
            if request.url.path.endswith("SendSMS"):
                self.lost.append(json.loads(request.content)["uid"])
            raise

    async def aclose(self) -> None:
        await self.inner.aclose()


def lossy_gateway() -> FakeGateway:
    return FakeGateway(rates=FaultRates(rate_lose_answer=LOSE_RATE), seed=SEED, lookup_lag=LAG)


def make(transport: httpx.AsyncBaseTransport, **options: object) -> AsyncSender:
    return make_test_sender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        transport=transport,
        max_concurrency=10,
        reconcile_settle=SETTLE,
        **options,
    )


def batch(prefix: str, count: int = COUNT) -> list[SMS]:
    return [SMS(PHONE, f"code {n}", uid=f"{prefix}-{n}") for n in range(count)]


async def outcomes_of(
    sender: AsyncSender, messages: list[SMS], reconcile_unknown: bool | None = None
) -> dict[str, Outcome]:
    """Every outcome of `send_many`, by uid (one per message)."""
    found: dict[str, Outcome] = {}
    async with sender.send_many(messages, reconcile_unknown=reconcile_unknown) as bulk:
        async for outcome in bulk:
            assert outcome.uid is not None
            assert outcome.uid not in found
            found[outcome.uid] = outcome
    assert bulk.unyielded == ()
    assert set(found) == {sms.uid for sms in messages}
    return found


def reconciled(outcomes: dict[str, Outcome]) -> set[str]:
    return {uid for uid, o in outcomes.items() if o.result is not None and o.result.reconciled}


async def test_the_per_call_option_reconciles_lost_answers_of_a_sender_without_it() -> None:
    gateway = lossy_gateway()
    transport = Recorded(gateway.transport)
    messages = batch("on")
    async with make(transport) as sender:
        assert sender.config.reconcile_unknown is False
        outcomes = await outcomes_of(sender, messages, reconcile_unknown=True)
    lost = set(transport.lost)
    # The faults did happen, to some of the messages only.
    assert 0 < len(lost) < COUNT
    assert len(lost) == len(transport.lost) == gateway.stats()["faults"]["lose_answer"]
    assert Counter(o.kind for o in outcomes.values()) == {"sent": COUNT}
    # Exactly the lost ones were settled by a lookup, and none of them was sent again.
    assert reconciled(outcomes) == lost
    for uid in lost:
        result = outcomes[uid].result
        assert result is not None
        assert result.attempts == 1
        assert result.message_id == str(gateway.model.messages_for_uid(uid)[0].message_id)
    # The gateway's own counts: every uid accepted exactly once, no request beyond one each.
    assert gateway.uids == Counter({sms.uid: 1 for sms in messages})
    stats = gateway.stats()
    assert (stats["accepted"], stats["duplicates"], gateway.received) == (COUNT, 0, COUNT)
    assert stats["lookups"] >= len(lost)


async def test_by_default_the_senders_option_holds_and_lost_answers_stay_unknown() -> None:
    gateway = lossy_gateway()
    transport = Recorded(gateway.transport)
    messages = batch("off")
    async with make(transport) as sender:
        outcomes = await outcomes_of(sender, messages)
    lost = set(transport.lost)
    assert 0 < len(lost) < COUNT
    unknown = {uid for uid, o in outcomes.items() if o.kind == "unknown"}
    assert unknown == lost
    assert all(isinstance(outcomes[uid].error, OutcomeUnknown) for uid in lost)
    assert Counter(o.kind for o in outcomes.values()) == {
        "sent": COUNT - len(lost),
        "unknown": len(lost),
    }
    assert reconciled(outcomes) == set()
    assert gateway.uids == Counter({sms.uid: 1 for sms in messages})
    assert gateway.stats()["lookups"] == 0


async def test_the_per_call_option_turns_off_a_senders_reconciliation() -> None:
    gateway = lossy_gateway()
    transport = Recorded(gateway.transport)
    messages = batch("veto")
    async with make(transport, reconcile_unknown=True) as sender:
        assert sender.config.reconcile_unknown is True
        outcomes = await outcomes_of(sender, messages, reconcile_unknown=False)
    lost = set(transport.lost)
    assert 0 < len(lost) < COUNT
    assert {uid for uid, o in outcomes.items() if o.kind == "unknown"} == lost
    assert reconciled(outcomes) == set()
    assert gateway.stats()["lookups"] == 0
    assert gateway.received == COUNT


async def test_the_senders_own_option_still_applies_to_send_many_by_default() -> None:
    # The counterpart of the test above: the sender's option alone reconciles.
    gateway = lossy_gateway()
    transport = Recorded(gateway.transport)
    messages = batch("own")
    async with make(transport, reconcile_unknown=True) as sender:
        outcomes = await outcomes_of(sender, messages)
    lost = set(transport.lost)
    assert 0 < len(lost) < COUNT
    assert reconciled(outcomes) == lost
    assert Counter(o.kind for o in outcomes.values()) == {"sent": COUNT}
    assert gateway.uids == Counter({sms.uid: 1 for sms in messages})


async def test_a_message_dropped_before_acceptance_is_sent_again_and_accepted_once() -> None:
    gateway = FakeGateway(lookup_lag=LAG)
    gateway.inject(DropConnection(accepted=False))
    transport = Recorded(gateway.transport)
    messages = batch("drop", 5)
    async with make(transport) as sender:
        outcomes = await outcomes_of(sender, messages, reconcile_unknown=True)
    # The first request to arrive was dropped, before the gateway took it.
    assert len(transport.lost) == 1
    (dropped,) = transport.lost
    assert gateway.stats()["faults"] == {"drop": 1}
    assert Counter(o.kind for o in outcomes.values()) == {"sent": 5}
    result = outcomes[dropped].result
    assert result is not None
    # Two settled lookups found nothing, so it was sent again: a fresh acceptance.
    assert result.attempts == 2
    assert not result.reconciled
    assert result.message_id == str(gateway.model.messages_for_uid(dropped)[0].message_id)
    assert reconciled(outcomes) == set()
    assert gateway.uids == Counter({sms.uid: 1 for sms in messages})
    stats = gateway.stats()
    assert (stats["duplicates"], stats["lookups"], gateway.received) == (0, 2, 6)


async def test_found_not_accepted_with_no_attempt_left_is_not_sent_not_unknown() -> None:
    gateway = FakeGateway(lookup_lag=LAG)
    gateway.inject(DropConnection(accepted=False))
    async with make(gateway.transport, retry=RetryPolicy(attempts=1)) as sender:
        with pytest.raises(NotSent, match="reconciled: not accepted") as caught:
            await sender.send_message(SMS(PHONE, "one try", uid="last-try"), reconcile_unknown=True)
    assert caught.value.may_have_been_sent is False
    assert caught.value.attempts == 1
    assert isinstance(caught.value.__cause__, OutcomeUnknown)
    assert gateway.uids == Counter()
    assert gateway.stats()["lookups"] == 2


@pytest.mark.parametrize("per_call", [True, False, None])
async def test_send_message_takes_the_option_per_call(per_call: bool | None) -> None:
    gateway = FakeGateway(lookup_lag=LAG)
    gateway.inject(LoseAnswer())
    async with make(gateway.transport) as sender:
        sms = SMS(PHONE, "hello", uid="one")
        if per_call:
            result = await sender.send_message(sms, reconcile_unknown=per_call)
            assert result.reconciled
            assert result.message_id == str(gateway.messages[0].message_id)
        else:
            with pytest.raises(OutcomeUnknown):
                await sender.send_message(sms, reconcile_unknown=per_call)
    assert gateway.count_for_uid("one") == 1
    assert gateway.received == 1
    assert (gateway.stats()["lookups"] > 0) is bool(per_call)


# -- reconcile(what, age=...), on a fake clock ------------------------------------------------

FAKE_SETTLE = 5.0


def on_clock(gateway: FakeGateway, clock: Clock) -> AsyncSender:
    return make_test_sender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        transport=gateway.transport,
        retry=RetryPolicy(attempts=3, backoff_base=0.0),
        reconcile_settle=FAKE_SETTLE,
        sleep=clock.sleep,
        clock=clock,
    )


@pytest.mark.parametrize("age", [FAKE_SETTLE, 3 * FAKE_SETTLE])
async def test_an_old_enough_attempt_is_looked_up_at_once(age: float) -> None:
    clock = Clock()
    gateway = FakeGateway(clock=clock)
    async with on_clock(gateway, clock) as sender:
        await sender.send(PHONE, "hello", uid="there")
        found = await sender.reconcile("there", age=age)
        assert (found.verdict, found.source) == ("accepted", "lookup")
        assert found.message_id == str(gateway.messages[0].message_id)
        assert clock.sleeps == []
        assert gateway.stats()["lookups"] == 1
        # Not found: only the wait between the two lookups is left.
        missing = await sender.reconcile("never-sent", age=age)
    assert missing.verdict == "not_accepted"
    assert clock.sleeps == [FAKE_SETTLE]
    assert gateway.stats()["lookups"] == 3
    assert gateway.received == 1


@pytest.mark.parametrize(
    ("age", "sleeps"),
    [
        (None, [FAKE_SETTLE, FAKE_SETTLE]),
        (0.0, [FAKE_SETTLE, FAKE_SETTLE]),
        (2.0, [FAKE_SETTLE - 2.0, FAKE_SETTLE]),
    ],
)
async def test_a_younger_attempt_waits_out_the_rest_of_the_settle_time(
    age: float | None, sleeps: list[float]
) -> None:
    clock = Clock()
    gateway = FakeGateway(clock=clock)
    async with on_clock(gateway, clock) as sender:
        found = await sender.reconcile("never-sent", age=age)
    assert found.verdict == "not_accepted"
    assert clock.sleeps == sleeps
    assert gateway.stats()["lookups"] == 2


async def test_the_age_given_wins_over_the_time_the_error_ended() -> None:
    clock = Clock()
    gateway = FakeGateway(clock=clock)
    gateway.inject(DropConnection(accepted=False))
    async with on_clock(gateway, clock) as sender:
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, "hello", uid="gone")
        assert caught.value.ended_at == clock.now
        found = await sender.reconcile(caught.value, age=FAKE_SETTLE)
    assert found.verdict == "not_accepted"
    assert clock.sleeps == [FAKE_SETTLE]


@pytest.mark.parametrize("age", [-1.0, -1e-9, float("-inf"), float("nan")])
async def test_a_negative_age_is_refused_before_any_lookup(age: float) -> None:
    clock = Clock()
    gateway = FakeGateway(clock=clock)
    async with on_clock(gateway, clock) as sender:
        with pytest.raises(ValueError, match="age"):
            await sender.reconcile("u-1", age=age)
    assert clock.sleeps == []
    assert gateway.stats()["lookups"] == 0
