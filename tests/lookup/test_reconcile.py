"""`AsyncSender.reconcile()` and `reconcile_unknown=True`, at the HTTP boundary, on a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from haorui_async import SMS, AsyncSender, OutcomeUnknown, RetryPolicy
from haorui_async._defaults import RECONCILE_IN_FLIGHT
from haorui_async._delivery import DeliveryReport
from haorui_async._reconcile import DeliveryTracker

SETTLE = 5.0


class Clock:
    """A fake clock and the sleep that moves it: reconciliation waits without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Gateway:
    """SendSMS loses its answers as scripted; GetDeliveryStatus finds what `accepted` holds
    once `lag` seconds have passed on the clock."""

    def __init__(
        self,
        clock: Clock,
        *,
        lose: int,
        accept_lost: bool,
        lag: float = 0.0,
        account_works: bool = True,
        time_out: bool = False,
        record_number: str | None = None,
    ) -> None:
        self.time_out = time_out
        self.record_number = record_number
        self.clock = clock
        self.account_works = account_works
        self.balance_checks = 0
        self.lose = lose
        self.accept_lost = accept_lost
        self.lag = lag
        self.accepted: dict[str, float] = {}
        self.sends = 0
        self.lookups: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        params = json.loads(request.content)
        uid = params.get("uid")
        if request.url.path.endswith("CheckBalance"):
            self.balance_checks += 1
            if not self.account_works:
                return httpx.Response(200, json={"status": "F", "remarks": "Invalid credentials"})
            return httpx.Response(200, json={"BalanceAmount": "12.5", "CurrenceCode": "UGX"})
        if request.url.path.endswith("GetDeliveryStatus"):
            self.lookups.append(self.clock.now)
            when = self.accepted.get(uid)
            if when is None or self.clock.now < when + self.lag:
                return httpx.Response(200, json={"status": "F", "remarks": "Record not found"})
            record = {"message_id": "9", "uid": uid, "DLRStatus": "Sent"}
            if self.record_number is not None:
                record["PhoneNumber"] = self.record_number
            return httpx.Response(200, json=record)
        self.sends += 1
        if self.lose > 0:
            self.lose -= 1
            if self.accept_lost:
                self.accepted.setdefault(uid, self.clock.now)
            if self.time_out:
                raise httpx.ReadTimeout("no answer in time")
            raise httpx.ReadError("the answer was lost")
        self.accepted.setdefault(uid, self.clock.now)
        return httpx.Response(200, json={"message_id": 9, "status": "S", "uid": uid})


def make(gateway: Gateway, clock: Clock, **options: object) -> AsyncSender:
    options.setdefault("deadline", 60.0)
    return AsyncSender(
        api_id="A",
        api_password="p",
        sender_id="HAORUI",
        transport=httpx.MockTransport(gateway),
        retry=RetryPolicy(attempts=3),
        reconcile_settle=SETTLE,
        sleep=clock.sleep,
        clock=clock,
        **options,  # type: ignore[arg-type]  # test options
    )


async def test_a_lost_answer_of_an_accepted_message_is_found_and_not_resent() -> None:
    clock = Clock()
    gateway = Gateway(clock, lose=1, accept_lost=True, lag=2.0)
    async with make(gateway, clock, reconcile_unknown=True) as sender:
        result = await sender.send("8613912345678", "hi", uid="u-1")
    assert result.reconciled
    assert result.message_id == "9"
    assert gateway.sends == 1  # never resent
    # The first lookup waited out the settle time after the lost attempt.
    assert gateway.lookups[0] - 1000.0 >= SETTLE


async def test_a_message_lost_before_acceptance_is_sent_again_after_two_settled_lookups() -> None:
    clock = Clock()
    gateway = Gateway(clock, lose=1, accept_lost=False)
    async with make(gateway, clock, reconcile_unknown=True) as sender:
        result = await sender.send("8613912345678", "hi", uid="u-1")
    assert not result.reconciled
    assert result.attempts == 2
    assert gateway.sends == 2
    first, second = gateway.lookups
    assert first - 1000.0 >= SETTLE
    assert second - first >= SETTLE
    # Two misses count only once the account is shown to work.
    assert gateway.balance_checks == 1


async def test_misses_on_an_account_that_cannot_be_checked_leave_it_unknown() -> None:
    # Lookups with wrong credentials find nothing either: no resend on their word.
    clock = Clock()
    gateway = Gateway(clock, lose=1, accept_lost=True, lag=1e9, account_works=False)
    async with make(gateway, clock, reconcile_unknown=True) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send("8613912345678", "hi", uid="u-1")
        found = await sender.reconcile("u-1", age=SETTLE)
    assert gateway.sends == 1
    assert found.verdict == "unknown"
    assert "account could not be checked" in found.detail
    assert gateway.balance_checks >= 1


async def test_without_time_to_settle_the_outcome_stays_unknown() -> None:
    clock = Clock()
    gateway = Gateway(clock, lose=1, accept_lost=False)
    async with make(gateway, clock, reconcile_unknown=True, deadline=SETTLE) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send("8613912345678", "hi", uid="u-1")
    assert gateway.sends == 1


async def test_failing_lookups_leave_the_verdict_unknown() -> None:
    clock = Clock()

    def gateway(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("nothing answers")

    async with AsyncSender(
        api_id="A",
        api_password="p",
        transport=httpx.MockTransport(gateway),
        retry=RetryPolicy(attempts=2),
        sleep=clock.sleep,
        clock=clock,
        reconcile_settle=SETTLE,
    ) as sender:
        found = await sender.reconcile("u-1")
    assert found.verdict == "unknown"
    assert "lookup failed" in found.detail


@pytest.mark.parametrize("what", ["uid", "sms"])
async def test_a_delivery_report_the_tracker_holds_settles_it_without_a_lookup(what: str) -> None:
    clock = Clock()
    gateway = Gateway(clock, lose=0, accept_lost=False)
    tracker = DeliveryTracker("https://me.example/dlr")
    tracker.sent("u-1")
    assert tracker.record(DeliveryReport(status="Delivered", uid="u-1", message_id="77"))
    subject: Callable[[], str | SMS] = (
        (lambda: "u-1") if what == "uid" else (lambda: SMS("8613912345678", "x", uid="u-1"))
    )
    async with make(gateway, clock, tracker=tracker) as sender:
        found = await sender.reconcile(subject())
    assert (found.verdict, found.message_id, found.source) == ("accepted", "77", "report")
    assert gateway.lookups == []


async def test_an_attempt_that_timed_out_is_given_time_in_flight_before_any_lookup() -> None:
    # A gateway that answers slowly may accept late: the settle time counts from long after.
    clock = Clock()
    gateway = Gateway(clock, lose=1, accept_lost=False, time_out=True)
    async with make(gateway, clock, reconcile_unknown=True) as sender:
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send("8613912345678", "hi", uid="u-1")
        # Within the send's deadline no lookup could count: it stays unknown, not resent.
        assert gateway.sends == 1
        assert caught.value.timed_out
        found = await sender.reconcile(caught.value)
    assert found.verdict == "not_accepted"
    ended = caught.value.ended_at
    assert ended is not None
    assert gateway.lookups[0] - ended >= RECONCILE_IN_FLIGHT + SETTLE


async def test_a_record_of_another_number_under_the_uid_is_not_taken_for_it() -> None:
    clock = Clock()
    gateway = Gateway(clock, lose=1, accept_lost=True, record_number="8613900000000")
    async with make(gateway, clock, reconcile_unknown=True) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send("8613912345678", "hi", uid="u-1")
        found = await sender.reconcile(SMS("8613912345678", "hi", uid="u-1"), age=SETTLE)
    assert found.verdict == "unknown"
    assert "another number" in found.detail
    assert gateway.sends == 1
