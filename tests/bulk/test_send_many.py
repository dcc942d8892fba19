"""`send_many()` and `send_all()`: one outcome per input, bounded memory, early stop."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from haorui_async import (
    SMS,
    AsyncSender,
    ConfigurationError,
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    RetryPolicy,
    SenderClosed,
)
from haorui_async._bulk import BulkReport, BulkSend, Outcome, _Window, send_all, send_many

from .conftest import RecordingGateway, accepted, eventually, make_sender, messages


def by_uid_prefix(uid: str, number: int) -> httpx.Response:
    """Answer by the uid's first letter: s sent, f status F, r 400, n 503, u 500."""
    code = uid[0]
    if code == "s":
        return accepted(uid, number + 1)
    if code == "f":
        return httpx.Response(200, json={"message_id": 0, "status": "F", "remarks": "no"})
    status = {"r": 400, "n": 503, "u": 500}[code]
    return httpx.Response(status)


async def test_every_input_item_gets_exactly_one_outcome_of_the_right_kind() -> None:
    gateway = RecordingGateway(by_uid_prefix)
    kinds = {"s": "sent", "f": "failed", "r": "rejected", "n": "not_sent", "u": "unknown"}
    items: list[object] = [
        SMS("8613912345678", "hi", uid=f"{letter}{n}") for n in range(20) for letter in kinds
    ]
    items.insert(7, "not a message")
    async with make_sender(gateway, max_concurrency=5) as sender:
        outcomes = [o async for o in send_many(sender, items)]  # type: ignore[arg-type]
    assert sorted(o.index for o in outcomes) == list(range(len(items)))
    for outcome in outcomes:
        if outcome.message is None:
            assert outcome.kind == "invalid"
            assert isinstance(outcome.error, InvalidMessage)
            assert outcome.index == 7
            assert outcome.uid is None
        else:
            assert outcome.kind == kinds[outcome.message.uid[0]]
            assert outcome.sent == (outcome.kind == "sent")
            assert outcome.may_have_been_sent == (outcome.kind in ("sent", "unknown"))
            assert outcome.uid == outcome.message.uid
    assert sum(gateway.accepted.values()) == 20


async def test_ordered_outcomes_come_in_input_order_despite_random_latency() -> None:
    rng = random.Random(7)

    async def slow(uid: str, number: int) -> httpx.Response:
        await asyncio.sleep(rng.random() / 200)
        return accepted(uid)

    gateway = RecordingGateway(slow)
    async with make_sender(gateway, max_concurrency=10) as sender:
        outcomes = [o async for o in send_many(sender, messages(200), ordered=True)]
    assert [o.index for o in outcomes] == list(range(200))
    assert [o.uid for o in outcomes] == [f"m{n}" for n in range(200)]
    assert all(o.sent for o in outcomes)


async def test_requests_in_flight_never_exceed_the_concurrency() -> None:
    gateway = RecordingGateway(delay=0.002)
    async with make_sender(gateway, max_concurrency=50) as sender:
        count = 0
        async for _ in send_many(sender, messages(300), concurrency=7):
            count += 1
    assert count == 300
    assert gateway.peak_in_flight == 7


async def test_concurrency_defaults_to_the_senders_max_concurrency() -> None:
    gateway = RecordingGateway(delay=0.002)
    async with make_sender(gateway, max_concurrency=4) as sender:
        report = await send_all(sender, messages(60))
    assert report.all_sent
    assert gateway.peak_in_flight == 4


async def test_a_slow_consumer_bounds_how_far_the_input_is_read() -> None:
    pulled = 0

    def lazy() -> Iterator[SMS]:
        nonlocal pulled
        for sms in messages(1000):
            pulled += 1
            yield sms

    gateway = RecordingGateway()
    async with make_sender(gateway, max_concurrency=4) as sender:
        yielded = 0
        async for _ in send_many(sender, lazy(), window=10):
            yielded += 1
            await asyncio.sleep(0)
            # Started and not yet handed over: at most the window.
            assert pulled - yielded <= 10
    assert yielded == 1000


async def test_a_slow_head_message_in_ordered_mode_holds_at_most_the_window() -> None:
    release = asyncio.Event()

    async def head_blocks(uid: str, number: int) -> httpx.Response:
        if uid == "m0":
            await release.wait()
        return accepted(uid)

    gateway = RecordingGateway(head_blocks)
    async with make_sender(gateway, max_concurrency=4) as sender:
        bulk = send_many(sender, messages(100), ordered=True, window=12)
        first = asyncio.ensure_future(anext(bulk))
        await eventually(lambda: len(gateway.starts) >= 12)
        # m0 blocks the head: 11 others finished, then nothing more was started (given time
        # to start, a 13th would have).
        await asyncio.sleep(0.05)
        assert len(gateway.starts) == 12
        assert not first.done()
        release.set()
        assert (await first).uid == "m0"
        rest = [o async for o in bulk]
    assert [o.index for o in rest] == list(range(1, 100))


async def test_an_async_iterable_input_is_read_lazily_and_completely() -> None:
    async def produce() -> AsyncIterator[SMS]:
        for sms in messages(50):
            await asyncio.sleep(0)
            yield sms

    gateway = RecordingGateway()
    async with make_sender(gateway, max_concurrency=6) as sender:
        report = await send_all(sender, produce())
    assert report.counts["sent"] == 50
    assert [o.uid for o in report.outcomes] == [f"m{n}" for n in range(50)]


async def test_an_input_that_fails_raises_after_every_started_message_is_yielded() -> None:
    def broken() -> Iterator[SMS]:
        yield from messages(30)
        raise RuntimeError("the source broke")

    gateway = RecordingGateway()
    seen: list[Outcome] = []

    async def consume(sender: AsyncSender) -> None:
        async for outcome in send_many(sender, broken()):
            seen.append(outcome)

    async with make_sender(gateway, max_concurrency=5) as sender:
        with pytest.raises(RuntimeError, match="the source broke"):
            await consume(sender)
    assert sorted(o.index for o in seen) == list(range(30))


async def test_a_message_without_any_sender_id_is_an_invalid_outcome() -> None:
    gateway = RecordingGateway()
    async with make_sender(gateway, sender_id=None) as sender:
        report = await send_all(sender, messages(3))
    assert report.counts["invalid"] == 3
    assert gateway.starts == []


async def test_an_unexpected_error_during_a_send_is_an_unknown_outcome() -> None:
    async def broken_sleep(seconds: float) -> None:
        raise RuntimeError("no sleep today")

    gateway = RecordingGateway(lambda uid, n: httpx.Response(503))
    sender = make_sender(gateway, sleep=broken_sleep, retry=RetryPolicy(attempts=3))
    async with sender:
        report = await send_all(sender, messages(2))
    assert [o.kind for o in report.outcomes] == ["unknown", "unknown"]
    assert "RuntimeError" in str(report.outcomes[0].error)


# -- early stop and cancellation --------------------------------------------------------


async def test_aclose_starts_nothing_new_and_lets_in_flight_sends_finish() -> None:
    gateway = RecordingGateway(delay=0.05)
    async with make_sender(gateway, max_concurrency=5) as sender:
        bulk = send_many(sender, messages(1000))
        first = await anext(bulk)
        await bulk.aclose()
        started = len(gateway.starts)
        await asyncio.sleep(0.1)
        assert len(gateway.starts) == started
    assert bulk.taken == started
    # Every message taken from the input is accounted for exactly once.
    indexes = sorted([first.index, *(o.index for o in bulk.unyielded)])
    assert indexes == list(range(bulk.taken))
    # Within the grace period the sends in flight finished with their real outcome.
    assert all(o.sent for o in bulk.unyielded)
    await bulk.aclose()  # a second close does nothing


async def test_sends_still_in_flight_when_the_grace_runs_out_are_unknown() -> None:
    hang = asyncio.Event()

    async def hangs(uid: str, number: int) -> httpx.Response:
        if number >= 3:
            await hang.wait()
        return accepted(uid)

    gateway = RecordingGateway(hangs)
    async with make_sender(gateway, max_concurrency=6) as sender:
        async with send_many(sender, messages(100), ordered=True, grace=0.05) as bulk:
            got = [await anext(bulk) for _ in range(3)]
            # The three answered sends have been replaced: six hang.
            await eventually(lambda: len(gateway.starts) == 9)
        # Leaving the block stopped the run.
        assert len(gateway.starts) == 9
    unknown = bulk.unyielded
    assert [o.index for o in got] + [o.index for o in unknown] == list(range(9))
    assert all(o.kind == "unknown" and o.may_have_been_sent for o in unknown)
    assert all(isinstance(o.error, OutcomeUnknown) for o in unknown)


async def cancel_the_consumer_once(bulk: BulkSend, condition: Callable[[], bool]) -> None:
    """Consume `bulk` in a task of its own (in `async with`), and cancel that task once
    `condition()` holds."""

    async def consume() -> None:
        async with bulk:
            async for _ in bulk:
                pass

    task = asyncio.create_task(consume())
    await eventually(condition)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancelling_the_consumer_records_in_flight_sends_as_unknown() -> None:
    gateway = RecordingGateway(delay=10)
    async with make_sender(gateway, max_concurrency=4) as sender:
        bulk = send_many(sender, messages(100))
        await cancel_the_consumer_once(bulk, lambda: len(gateway.starts) == 4)
        assert len(gateway.starts) == 4
        await asyncio.sleep(0.05)
        assert len(gateway.starts) == 4
    assert [o.index for o in bulk.unyielded] == [0, 1, 2, 3]
    assert {o.kind for o in bulk.unyielded} == {"unknown"}


async def test_cancelled_sends_that_waited_for_a_slot_are_not_sent_those_in_flight_unknown() -> (
    None
):
    # Five sends at once through a sender with two slots: two at the gateway, three waiting.
    gateway = RecordingGateway(delay=10)
    async with make_sender(gateway, max_concurrency=2) as sender:
        bulk = send_many(sender, messages(100), concurrency=5)
        await cancel_the_consumer_once(bulk, lambda: len(gateway.starts) == 2 and bulk.taken == 5)
    outcomes = bulk.unyielded
    assert len(gateway.starts) == 2
    assert [o.index for o in outcomes] == [0, 1, 2, 3, 4]
    # As many unknown as reached the gateway; the others provably not sent.
    assert sorted(o.kind for o in outcomes) == ["not_sent"] * 3 + ["unknown"] * 2
    assert all(isinstance(o.error, NotSent) for o in outcomes if o.kind == "not_sent")
    assert not any(o.may_have_been_sent for o in outcomes if o.kind == "not_sent")


async def test_breaking_out_of_a_plain_async_for_stops_the_run() -> None:
    gateway = RecordingGateway(delay=0.01)
    async with make_sender(gateway, max_concurrency=5) as sender:
        async for _ in send_many(sender, messages(10_000), grace=0.0):
            break
        # The dropped iterator is finalized by the event loop: nothing new starts.
        gc.collect()
        await asyncio.sleep(0.05)
        started = len(gateway.starts)
        await asyncio.sleep(0.1)
        assert len(gateway.starts) == started
    assert started <= 10


async def test_a_stop_while_the_input_is_being_read_takes_no_further_item() -> None:
    gate = asyncio.Event()
    reading = asyncio.Event()
    reached_second = False

    async def slow_source() -> AsyncIterator[SMS]:
        nonlocal reached_second
        yield SMS("8613912345678", "first", uid="a")
        reading.set()
        await gate.wait()
        reached_second = True
        yield SMS("8613912345678", "second", uid="b")

    gateway = RecordingGateway()
    async with make_sender(gateway, max_concurrency=1) as sender:
        bulk = send_many(sender, slow_source(), grace=1.0)
        assert (await anext(bulk)).uid == "a"
        await reading.wait()
        await bulk.aclose()
        gate.set()
        await asyncio.sleep(0.01)
    assert gateway.uids == ["a"]
    assert bulk.taken == 1
    assert bulk.unyielded == ()
    assert not reached_second


# -- arguments --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["8613912345678", b"x", 42, SMS("8613912345678", "x")])
async def test_a_non_iterable_or_single_message_input_raises_type_error(bad: object) -> None:
    async with make_sender(RecordingGateway()) as sender:
        with pytest.raises(TypeError, match="messages"):
            send_many(sender, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value"), [("concurrency", 0), ("window", True), ("grace", -1.0)]
)
async def test_bad_options_raise_configuration_error_before_sending(
    option: str, value: object
) -> None:
    gateway = RecordingGateway()
    async with make_sender(gateway) as sender:
        with pytest.raises(ConfigurationError, match=option):
            send_many(sender, messages(1), **{option: value})  # type: ignore[arg-type]
    assert gateway.starts == []


async def test_a_closed_sender_raises_sender_closed_at_once() -> None:
    sender = make_sender(RecordingGateway())
    await sender.aclose()
    with pytest.raises(SenderClosed):
        send_many(sender, messages(1))


async def test_a_sender_closed_during_the_run_turns_the_rest_into_not_sent() -> None:
    gateway = RecordingGateway()
    sender = make_sender(gateway, max_concurrency=1)
    async with sender:
        bulk = send_many(sender, messages(5), ordered=True)
        first = await anext(bulk)
        await sender.aclose()
        rest = [o async for o in bulk]
    assert first.sent
    # Messages started before the close went out; every later one was refused unsent.
    sent = [o for o in rest if o.sent]
    refused = [o for o in rest if not o.sent]
    assert len(gateway.starts) == 1 + len(sent)
    assert len(refused) >= 3
    assert {o.kind for o in refused} == {"not_sent"}
    assert all(isinstance(o.error, SenderClosed) for o in refused)


def test_an_outcome_needs_exactly_one_of_result_and_error() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Outcome(0, None)


async def test_send_all_reports_outcomes_in_input_order_with_counts() -> None:
    gateway = RecordingGateway(by_uid_prefix)
    batch = [SMS("8613912345678", "x", uid=u) for u in ["s1", "u1", "n1", "s2", "f1"]]
    async with make_sender(gateway, max_concurrency=3) as sender:
        report = await send_all(sender, batch)
    assert isinstance(report, BulkReport)
    assert [o.uid for o in report.outcomes] == ["s1", "u1", "n1", "s2", "f1"]
    assert report.counts == {
        "sent": 2,
        "failed": 1,
        "rejected": 0,
        "not_sent": 1,
        "unknown": 1,
        "invalid": 0,
    }
    assert not report.all_sent
    assert [o.uid for o in report.unknown] == ["u1"]
    assert [o.uid for o in report.unsent] == ["n1", "f1"]


# -- the window's slots -----------------------------------------------------------------


async def test_a_window_slot_handed_to_a_waiter_cancelled_meanwhile_passes_to_the_next() -> None:
    window = _Window(1)
    await window.acquire()
    first = asyncio.create_task(window.acquire())
    second = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)
    window.release()  # the slot goes to `first`...
    first.cancel()  # ...which is cancelled before it runs: `second` gets it
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert window.free == 0
    window.release()
    assert window.free == 1


async def test_a_cancelled_window_waiter_gives_up_its_place_in_the_queue() -> None:
    window = _Window(1)
    await window.acquire()
    waiting = [asyncio.create_task(window.acquire()) for _ in range(2)]
    await asyncio.sleep(0)
    waiting[0].cancel()
    window.release()  # drops the cancelled waiter, hands the slot to the other
    waiting[1].cancel()
    await asyncio.sleep(0)
    for task in waiting:
        with pytest.raises(asyncio.CancelledError):
            await task
    assert window.free == 1
    assert not window.waiters
    await window.acquire()
    late = asyncio.create_task(window.acquire())
    await asyncio.sleep(0)
    late.cancel()  # no release came: it leaves the queue itself
    with pytest.raises(asyncio.CancelledError):
        await late
    assert not window.waiters
