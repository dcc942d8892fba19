"""The SDK's lookups and the lost answer, against FakeGateway and the loopback emulator."""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest

from haorui_async import OutcomeUnknown
from haorui_async._lookup import LookupFailed
from haorui_async.testing import (
    Emulator,
    FakeGateway,
    FaultRates,
    LoseAnswer,
    RespondWith,
    serve,
)

from .conftest import ReportRecorder, make_sender

PHONE = "8613912345678"


class Clock:
    """A clock that moves only when told: the lag is tested without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- FakeGateway ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_the_fake_finds_a_sent_message_by_uid_and_by_message_id(method: str) -> None:
    gateway = FakeGateway()
    async with make_sender(transport=gateway.transport, method=method) as sender:
        result = await sender.send(PHONE, "hello", uid="f-1")
        by_uid = await sender.get_delivery_status(uid="f-1")
        by_id = await sender.get_delivery_status(message_id=result.message_id)
        missing = await sender.get_delivery_status(uid="never-sent")
    assert by_uid is not None
    assert by_id is not None
    assert by_uid.message_id == by_id.message_id == result.message_id
    assert by_uid.uid == "f-1"
    assert by_uid.status == "Delivered"
    assert by_uid.phonenumber == PHONE
    assert missing is None


async def test_the_fake_finds_nothing_before_the_lag_and_the_message_after_it() -> None:
    clock = Clock()
    gateway = FakeGateway(lookup_lag=30.0, clock=clock)
    async with make_sender(transport=gateway.transport) as sender:
        await sender.send(PHONE, "hello", uid="lag")
        assert await sender.get_delivery_status(uid="lag") is None
        clock.now = 30.0
        found = await sender.get_delivery_status(uid="lag")
    assert found is not None
    assert found.uid == "lag"


async def test_a_lost_answer_is_an_unknown_outcome_of_an_accepted_message() -> None:
    gateway = FakeGateway()
    gateway.inject(LoseAnswer())
    async with make_sender(transport=gateway.transport) as sender:
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, "hello", uid="lost")
        found = await sender.get_delivery_status(uid="lost")
    assert caught.value.may_have_been_sent
    assert isinstance(caught.value.__cause__, httpx.ReadError)
    assert gateway.received == 1
    assert gateway.accepted == 1
    assert gateway.count_for_uid("lost") == 1
    assert found is not None
    assert found.message_id == str(gateway.messages[0].message_id)
    assert gateway.stats()["faults"] == {"lose_answer": 1}


async def test_reconciling_a_lost_answer_finds_it_accepted_and_sends_nothing_more() -> None:
    gateway = FakeGateway()
    gateway.inject(LoseAnswer())
    async with make_sender(transport=gateway.transport) as sender:
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, "hello", uid="rec")
        verdict = await sender.reconcile(caught.value)
    assert verdict.verdict == "accepted"
    assert verdict.message_id == str(gateway.messages[0].message_id)
    stats = gateway.stats()
    assert (stats["accepted"], stats["duplicates"], stats["distinct_uids"]) == (1, 0, 1)


async def test_random_lost_answers_follow_their_rate() -> None:
    gateway = FakeGateway(rates=FaultRates(rate_lose_answer=1.0))
    async with make_sender(transport=gateway.transport) as sender:
        for i in range(3):
            with pytest.raises(OutcomeUnknown):
                await sender.send(PHONE, "hello", uid=f"r{i}")
        # Lookups take no fault: each lost answer is found.
        found = [await sender.get_delivery_status(uid=f"r{i}") for i in range(3)]
    assert all(status is not None for status in found)
    assert gateway.stats()["faults"] == {"lose_answer": 3}
    assert gateway.accepted == 3


async def test_a_scripted_fault_waits_for_the_next_send_not_for_a_lookup() -> None:
    gateway = FakeGateway()
    async with make_sender(transport=gateway.transport) as sender:
        gateway.inject(RespondWith(503))
        assert await sender.get_delivery_status(uid="nothing") is None
        assert gateway.faults.pending == 1
        result = await sender.send(PHONE, "hello", uid="after")
    assert result.attempts == 2
    stats = gateway.stats()
    assert (stats["received"], stats["requests"], stats["lookups"]) == (2, 1, 1)


async def test_with_lookup_faults_a_lookup_takes_its_turn_in_the_plan() -> None:
    gateway = FakeGateway(lookup_faults=True)
    gateway.inject(RespondWith(503), times=4)
    async with make_sender(transport=gateway.transport) as sender:
        with pytest.raises(LookupFailed):
            await sender.check_balance()
    assert gateway.stats()["faults"] == {"503": 4}
    assert gateway.stats()["balance_checks"] == 0


async def test_the_fake_answers_the_balance_as_a_decimal() -> None:
    gateway = FakeGateway(balance=250.75, currency="KES")
    async with make_sender(transport=gateway.transport) as sender:
        balance = await sender.check_balance()
    assert balance.amount == decimal.Decimal("250.75")
    assert balance.currency == "KES"
    assert gateway.stats()["balance_checks"] == 1
    assert gateway.received == 0


async def test_the_default_balance_is_1000_ugx(fake_gateway: FakeGateway) -> None:
    async with make_sender(transport=fake_gateway.transport) as sender:
        balance = await sender.check_balance()
    assert (balance.amount, balance.currency) == (decimal.Decimal(1000), "UGX")


async def test_a_wrong_password_finds_nothing_as_the_family_answers_it() -> None:
    # SendSMS's refusal carries no DLRStatus, so the SDK's strict rule reads it "not found".
    gateway = FakeGateway(accounts={"OTHER": "secret"})
    async with make_sender(transport=gateway.transport) as sender:
        assert await sender.get_delivery_status(uid="x") is None
        with pytest.raises(LookupFailed, match="BalanceAmount"):
            await sender.check_balance()
    assert gateway.stats()["failed"] == 0


# -- the emulator --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_the_emulator_finds_a_sent_message(emulator: Emulator, method: str) -> None:
    async with make_sender(emulator.base_url, method=method) as sender:
        result = await sender.send(PHONE, "hello", uid="e-1")
        found = await sender.get_delivery_status(uid="e-1")
        by_id = await sender.get_delivery_status(message_id=result.message_id)
        missing = await sender.get_delivery_status(uid="never-sent")
    assert found is not None
    assert by_id is not None
    assert found.message_id == by_id.message_id == result.message_id
    assert found.sent_at is not None
    assert missing is None
    async with httpx.AsyncClient(base_url=emulator.base_url) as client:
        stats = (await client.get("/_emulator/stats")).json()
        uids = (await client.get("/_emulator/uids")).json()
    assert (stats["received"], stats["requests"], stats["lookups"]) == (1, 1, 3)
    assert uids == {"record": "messages", "uids": {"e-1": 1}}


@pytest.mark.integration
async def test_the_emulator_finds_nothing_before_the_lag_and_the_message_after_it() -> None:
    clock = Clock()
    async with serve(lookup_lag=2.0, clock=clock) as emulator:
        sender = make_sender(emulator.base_url)
        async with sender:
            await sender.send(PHONE, "hello", uid="lag")
            assert await sender.get_delivery_status(uid="lag") is None
            clock.now = 2.0
            found = await sender.get_delivery_status(uid="lag")
    assert found is not None
    assert found.uid == "lag"


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["httpx", "fast"])
async def test_the_emulator_loses_the_answer_of_an_accepted_message(backend: str) -> None:
    async with serve() as emulator:
        emulator.faults.inject(LoseAnswer())
        async with make_sender(
            emulator.base_url, backend=backend, default_transport=True
        ) as sender:
            with pytest.raises(OutcomeUnknown) as caught:
                await sender.send(PHONE, "hello", uid="lost")
            found = await sender.get_delivery_status(uid="lost")
            # Only that connection was reset: the next send is answered.
            after = await sender.send(PHONE, "hello", uid="next")
        assert caught.value.status_code is None
        assert caught.value.may_have_been_sent
        assert emulator.received == 2
        assert emulator.count_for_uid("lost") == 1
        assert found is not None
        assert found.message_id == str(emulator.messages[0].message_id)
        assert after.status == "S"
        assert emulator.stats()["faults"] == {"lose_answer": 1}


@pytest.mark.integration
async def test_the_reset_of_a_lost_answer_reaches_the_client_as_a_read_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve(rate_lose_answer=1.0) as emulator:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ReadError):
                await client.get(emulator.base_url + "/api/SendSMS")
        assert emulator.model.requests == 1
    # A deliberate fault, not an error of the app: uvicorn has nothing to log.
    assert [r.getMessage() for r in caplog.records if r.name.startswith("uvicorn")] == []


@pytest.mark.integration
@pytest.mark.emulator_config(dlr_delay=0.0, dlr_statuses="Delivered:1,Failed:1", seed=5)
async def test_a_lost_answer_is_reported_and_looked_up_with_the_same_status(
    emulator: Emulator, report_recorder: ReportRecorder
) -> None:
    emulator.faults.inject(LoseAnswer())
    async with make_sender(emulator.base_url) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send(PHONE, "hello", uid="dlr", callback_url=report_recorder.url)
        await asyncio.wait_for(report_recorder.arrived.wait(), 5)
        found = await sender.get_delivery_status(uid="dlr")
    (report,) = report_recorder.reports
    assert found is not None
    assert report["uid"] == "dlr"
    assert found.status == report["DLRStatus"]
    assert found.message_id == report["message_id"]


@pytest.mark.integration
@pytest.mark.emulator_config(rate_503=1.0)
async def test_the_emulators_lookups_take_no_fault_by_default(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url) as sender:
        balance = await sender.check_balance()
        assert await sender.get_delivery_status(uid="x") is None
    assert balance.amount == decimal.Decimal(1000)
    assert emulator.stats()["faults"] == {}
    assert emulator.received == 0


@pytest.mark.integration
@pytest.mark.emulator_config(rate_503=1.0, lookup_faults=True)
async def test_with_lookup_faults_the_emulators_lookups_fail_too(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url) as sender:
        with pytest.raises(LookupFailed) as caught:
            await sender.check_balance()
    assert caught.value.status_code == 503
    assert emulator.stats()["faults"] == {"503": 4}


@pytest.mark.integration
@pytest.mark.emulator_config(balance=99.5, currency="USD")
async def test_the_emulator_answers_the_configured_balance(emulator: Emulator) -> None:
    async with make_sender(emulator.base_url) as sender:
        balance = await sender.check_balance()
    assert (balance.amount, balance.currency) == (decimal.Decimal("99.5"), "USD")
    assert emulator.stats()["balance_checks"] == 1


@pytest.mark.integration
@pytest.mark.emulator_config(rate_hang=1.0, hang_seconds=0.01, faults_accept=True)
async def test_an_accepted_hang_that_ends_answers_without_accepting_twice(
    emulator: Emulator,
) -> None:
    async with make_sender(emulator.base_url, timeout=5.0) as sender:
        result = await sender.send(PHONE, "hello", uid="once")
    assert result.message_id == str(emulator.messages[0].message_id)
    stats = emulator.stats()
    assert (stats["accepted"], stats["duplicates"]) == (1, 0)


async def test_a_lost_answer_outside_a_running_server_ends_the_exchange_unanswered() -> None:
    emulator = Emulator()
    emulator.faults.inject(LoseAnswer())
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/api/SendSMS", "method": "POST", "headers": []}
    await emulator(scope | {"query_string": b"", "client": ("127.0.0.1", 1)}, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start"]
    # Handled before the answer was lost (and refused: the body carries no parameter).
    assert emulator.model.failed == 1
