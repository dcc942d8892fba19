"""FakeGateway: the SDK against the in-process gateway, every fault mapped to its SDK error."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from haorui_async import (
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    RetryPolicy,
    SubmissionFailed,
)
from haorui_async.testing import (
    DropConnection,
    FakeGateway,
    FaultRates,
    Hang,
    MalformedBody,
    RefuseConnection,
    RespondWith,
)

from .conftest import make_sender

PHONE = "+86 139 1234 5678"


async def test_a_sent_message_is_recorded_with_its_uid(fake_gateway: FakeGateway) -> None:
    async with make_sender(transport=fake_gateway.transport) as sender:
        result = await sender.send(PHONE, "Your code is 112233", uid="order-1")
    assert result.uid == "order-1"
    assert result.message_id == str(fake_gateway.messages[0].message_id)
    assert fake_gateway.count_for_uid("order-1") == 1
    assert fake_gateway.uids == {"order-1": 1}
    assert fake_gateway.messages[0].phonenumber == "8613912345678"
    assert fake_gateway.accepted == 1


async def test_get_sends_are_recorded_too(fake_gateway: FakeGateway) -> None:
    async with make_sender(transport=fake_gateway.transport, method="GET") as sender:
        await sender.send(PHONE, "hi", uid="g-1")
    assert fake_gateway.messages[0].method == "GET"


async def test_unknown_credentials_raise_submission_failed() -> None:
    gateway = FakeGateway(accounts={"OTHER": "secret"})
    async with make_sender(transport=gateway.transport) as sender:
        with pytest.raises(SubmissionFailed) as caught:
            await sender.send(PHONE, "hi")
    assert caught.value.remarks == "Invalid API credentials"
    assert gateway.stats()["failed"] == 1


async def test_a_429_then_success_is_retried_once(fake_gateway: FakeGateway) -> None:
    fake_gateway.inject(RespondWith(429, retry_after=0))
    async with make_sender(transport=fake_gateway.transport) as sender:
        result = await sender.send(PHONE, "hi", uid="r-1")
    assert result.attempts == 2
    assert fake_gateway.received == 2
    assert fake_gateway.count_for_uid("r-1") == 1


async def test_503_every_time_gives_not_sent_after_every_attempt(
    fake_gateway: FakeGateway,
) -> None:
    fake_gateway.inject(RespondWith(503), times=4)
    async with make_sender(transport=fake_gateway.transport) as sender:
        with pytest.raises(NotSent) as caught:
            await sender.send(PHONE, "hi")
    assert caught.value.attempts == 4
    assert fake_gateway.received == 4
    assert fake_gateway.accepted == 0
    assert fake_gateway.stats()["faults"] == {"503": 4}


async def test_a_500_is_an_unknown_outcome_after_one_request(fake_gateway: FakeGateway) -> None:
    fake_gateway.inject(RespondWith(500, accepted=True))
    async with make_sender(transport=fake_gateway.transport) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send(PHONE, "hi", uid="x")
    assert fake_gateway.received == 1
    assert fake_gateway.count_for_uid("x") == 1


async def test_a_hang_raises_read_timeout_at_the_clients_timeout(
    fake_gateway: FakeGateway,
) -> None:
    fake_gateway.inject(Hang(accepted=True))
    async with make_sender(transport=fake_gateway.transport, timeout=0.05) as sender:
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, "hi", uid="h")
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert fake_gateway.count_for_uid("h") == 1


async def test_a_hang_that_did_not_accept_records_nothing(fake_gateway: FakeGateway) -> None:
    fake_gateway.inject(Hang(seconds=0.01))
    async with make_sender(transport=fake_gateway.transport) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send(PHONE, "hi", uid="h")
    assert fake_gateway.count_for_uid("h") == 0


async def test_a_dropped_connection_is_an_unknown_outcome_after_one_request(
    fake_gateway: FakeGateway,
) -> None:
    fake_gateway.inject(DropConnection())
    async with make_sender(transport=fake_gateway.transport) as sender:
        with pytest.raises(OutcomeUnknown) as caught:
            await sender.send(PHONE, "hi")
    assert isinstance(caught.value.__cause__, httpx.RemoteProtocolError)
    assert fake_gateway.received == 1


async def test_retrying_an_accepted_drop_sends_a_duplicate(fake_gateway: FakeGateway) -> None:
    fake_gateway.inject(DropConnection(accepted=True))
    retry = RetryPolicy(attempts=2, retry_ambiguous=True)
    async with make_sender(transport=fake_gateway.transport, retry=retry) as sender:
        await sender.send(PHONE, "hi", uid="dup")
    assert fake_gateway.count_for_uid("dup") == 2
    assert fake_gateway.model.duplicates == 1


async def test_a_refused_connection_is_retried_and_never_received(
    fake_gateway: FakeGateway,
) -> None:
    fake_gateway.inject(RefuseConnection(), RefuseConnection())
    async with make_sender(transport=fake_gateway.transport) as sender:
        result = await sender.send(PHONE, "hi")
    assert result.attempts == 3
    assert fake_gateway.received == 1


async def test_a_malformed_body_is_an_unknown_outcome(fake_gateway: FakeGateway) -> None:
    fake_gateway.inject(MalformedBody())
    async with make_sender(transport=fake_gateway.transport) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send(PHONE, "hi")
    assert fake_gateway.accepted == 0


async def test_invalid_input_never_reaches_the_gateway(fake_gateway: FakeGateway) -> None:
    async with make_sender(transport=fake_gateway.transport) as sender:
        with pytest.raises(InvalidMessage):
            await sender.send("12", "hi")
    assert fake_gateway.received == 0


async def test_random_faults_use_the_rates() -> None:
    gateway = FakeGateway(rates=FaultRates(rate_503=1.0), seed=1)
    async with make_sender(transport=gateway.transport, retry=RetryPolicy(attempts=1)) as sender:
        with pytest.raises(NotSent):
            await sender.send(PHONE, "hi")
    assert gateway.stats()["faults"] == {"503": 1}


async def test_reset_forgets_everything(fake_gateway: FakeGateway) -> None:
    fake_gateway.inject(Hang())
    async with make_sender(transport=fake_gateway.transport) as sender:
        fake_gateway.reset()
        await sender.send(PHONE, "hi")
    fake_gateway.reset()
    assert fake_gateway.stats()["received"] == 0
    assert fake_gateway.messages == []
    assert "accepted=0" in repr(fake_gateway)


async def test_without_a_read_timeout_a_hang_does_not_end_by_itself() -> None:
    gateway = FakeGateway()
    gateway.inject(Hang())
    request = httpx.Request("POST", "https://api.haorui.com/api/SendSMS", content=b"{}")
    async with httpx.AsyncClient(transport=gateway.transport, timeout=None) as client:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.send(request), 0.05)
