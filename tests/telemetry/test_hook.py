"""`AsyncSender(on_outcome=...)`: one `SendRecord` per send, without OpenTelemetry."""

from __future__ import annotations

import logging
from collections.abc import Callable

import attrs
import pytest

from haorui_async import (
    AsyncSender,
    ConfigurationError,
    NotSent,
    OutcomeUnknown,
    SendRecord,
    SubmissionFailed,
    Telemetry,
)
from haorui_async.testing import FakeGateway, LoseAnswer, RespondWith

from .._kit import API_ID, ATTEMPTS, PASSWORD, make_test_sender
from .conftest import PHONE, FakeSleep


async def test_a_sent_message_gives_one_record(make_sender: Callable[..., AsyncSender]) -> None:
    records: list[SendRecord] = []
    async with make_sender(on_outcome=records.append, telemetry=False) as sender:
        await sender.send(PHONE, "Your code is 112233", uid="u-1")
    (record,) = records
    assert record.duration > 0
    assert attrs.evolve(record, duration=0.0) == SendRecord(
        uid="u-1",
        kind="sent",
        attempts=1,
        may_have_been_sent=True,
        parts=1,
        encoding="T",
        backend="httpx",
        method="POST",
        duration=0.0,
        rate_limit_wait=0.0,
        pause_wait=0.0,
        error=None,
        status_code=200,
        reconciled=False,
        phonenumber=None,
    )


async def test_a_record_is_frozen(make_sender: Callable[..., AsyncSender]) -> None:
    records: list[SendRecord] = []
    async with make_sender(on_outcome=records.append) as sender:
        await sender.send(PHONE, "hi")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        records[0].uid = "other"  # type: ignore[misc]  # what is tested


async def test_a_failed_send_gives_one_record_after_its_last_attempt(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender], fake_sleep: FakeSleep
) -> None:
    records: list[SendRecord] = []
    gateway.inject(*[RespondWith(503)] * ATTEMPTS)
    async with make_sender(on_outcome=records.append) as sender:
        with pytest.raises(NotSent):
            await sender.send(PHONE, "hi", uid="u-2")
    (record,) = records
    assert (record.uid, record.kind, record.error) == ("u-2", "not_sent", "NotSent")
    assert (record.attempts, record.may_have_been_sent, record.status_code) == (
        ATTEMPTS,
        False,
        503,
    )
    assert len(fake_sleep.calls) == ATTEMPTS - 1


async def test_an_unknown_outcome_may_have_been_sent(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender]
) -> None:
    records: list[SendRecord] = []
    gateway.inject(RespondWith(504))
    async with make_sender(on_outcome=records.append) as sender:
        with pytest.raises(OutcomeUnknown):
            await sender.send(PHONE, "hi")
    (record,) = records
    assert (record.kind, record.error, record.may_have_been_sent) == (
        "unknown",
        "OutcomeUnknown",
        True,
    )


async def test_the_phone_number_is_in_a_record_only_when_asked_for(
    make_sender: Callable[..., AsyncSender],
) -> None:
    records: list[SendRecord] = []
    async with make_sender(on_outcome=records.append) as sender:
        await sender.send(PHONE, "hi")
    async with make_sender(on_outcome=records.append, telemetry_phonenumber=True) as sender:
        await sender.send("+86 139-1234-5678", "hi")
    assert [r.phonenumber for r in records] == [None, PHONE]
    assert PHONE not in repr(records[0])


async def test_a_record_never_holds_the_text(make_sender: Callable[..., AsyncSender]) -> None:
    records: list[SendRecord] = []
    async with make_sender(on_outcome=records.append, telemetry_phonenumber=True) as sender:
        await sender.send(PHONE, "a secret one-time code 918273")
    assert "918273" not in repr(records)


async def test_a_raising_hook_is_logged_and_the_send_stands(
    gateway: FakeGateway,
    make_sender: Callable[..., AsyncSender],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(record: SendRecord) -> None:
        raise RuntimeError(f"the hook broke on {record.uid}")

    async with make_sender(on_outcome=broken) as sender:
        with caplog.at_level(logging.ERROR, logger="haorui_async"):
            result = await sender.send(PHONE, "hi", uid="u-ok")
            gateway.inject(RespondWith(500))
            # The send's own error comes out, never the hook's.
            with pytest.raises(OutcomeUnknown):
                await sender.send(PHONE, "hi", uid="u-bad")
    assert result.ok
    errors = [r for r in caplog.records if r.name == "haorui_async"]
    assert [r.levelno for r in errors] == [logging.ERROR, logging.ERROR]
    assert all("on_outcome raised" in r.getMessage() for r in errors)
    assert [str(r.exc_info[1]) for r in errors if r.exc_info] == [
        "the hook broke on u-ok",
        "the hook broke on u-bad",
    ]


async def test_status_f_is_a_failed_record(make_sender: Callable[..., AsyncSender]) -> None:
    records: list[SendRecord] = []
    async with make_sender(api_password="wrong", on_outcome=records.append) as sender:
        with pytest.raises(SubmissionFailed):
            await sender.send(PHONE, "hi")
    assert [(r.kind, r.error, r.status_code) for r in records] == [
        ("failed", "SubmissionFailed", 200)
    ]


def test_an_async_hook_is_refused_naming_the_option() -> None:
    async def hook(record: SendRecord) -> None:
        return None

    class AsyncCallable:
        async def __call__(self, record: SendRecord) -> None:
            return None

    for refused in (hook, AsyncCallable(), "print"):
        with pytest.raises(ConfigurationError, match="on_outcome"):
            AsyncSender(api_id="A", api_password="p", on_outcome=refused)  # type: ignore[arg-type]  # what is tested


def test_a_telemetry_option_of_another_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="telemetry: expected None"):
        AsyncSender(api_id="A", api_password="p", telemetry="on")  # type: ignore[arg-type]  # what is tested
    with pytest.raises(ConfigurationError, match="telemetry_phonenumber"):
        AsyncSender(api_id="A", api_password="p", telemetry_phonenumber=1)  # type: ignore[arg-type]  # what is tested


async def test_nothing_watching_means_no_observer() -> None:
    # The zero-cost rule: a send then checks an attribute for None, nothing more.
    async with AsyncSender(api_id="A", api_password="p", telemetry=False) as sender:
        assert sender.telemetry is None
        assert sender._observer is None
    async with AsyncSender(api_id="A", api_password="p", on_outcome=print) as sender:
        assert sender._observer is not None


def test_a_telemetry_with_something_else_than_a_provider_is_refused_naming_it() -> None:
    with pytest.raises(ConfigurationError, match="tracer_provider: expected a TracerProvider"):
        Telemetry(tracer_provider="jaeger")  # type: ignore[arg-type]  # what is tested
    with pytest.raises(ConfigurationError, match="meter_provider: expected a MeterProvider"):
        Telemetry(meter_provider=42)  # type: ignore[arg-type]  # what is tested


async def test_a_record_holds_the_waits_for_the_rate_limit_and_a_pause(
    gateway: FakeGateway, make_sender: Callable[..., AsyncSender]
) -> None:
    pytest.importorskip("aiolimiter")
    records: list[SendRecord] = []
    gateway.inject(RespondWith(429, retry_after=30))
    # The sleep never sleeps: the pause the gateway asked for is still ahead when the retry
    # comes to admission, and is waited out there.
    async with make_sender(on_outcome=records.append, rate_limit=1000) as sender:
        await sender.send(PHONE, "hi")
    (record,) = records
    assert record.attempts == 2
    assert 29 < record.pause_wait <= 30
    assert 0 <= record.rate_limit_wait < 1


async def test_a_record_says_reconciliation_found_the_message() -> None:
    gateway = FakeGateway(accounts={API_ID: PASSWORD}, lookup_lag=0.01)
    gateway.inject(LoseAnswer())
    records: list[SendRecord] = []
    async with make_test_sender(
        transport=gateway.transport,
        reconcile_unknown=True,
        reconcile_settle=0.02,
        on_outcome=records.append,
    ) as sender:
        await sender.send(PHONE, "hi", uid="lost")
    assert [(r.uid, r.kind, r.reconciled, r.status_code) for r in records] == [
        ("lost", "sent", True, None)
    ]
