"""`send_job`, the arq job of one message, run in process as arq runs it (one call per
delivery, `Retry` deferring the next) against a real redis-server and the fake gateway:
sent at most once whatever the deliveries, reconciled when it may have gone out, and never
sent without its rate limiter (its Redis unreachable: not sent, tried again later)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import pytest
import redis.asyncio
from arq.worker import Retry

from haorui_async import AsyncSender, RetryPolicy
from haorui_async.redis import RedisRateLimiter
from haorui_async.redis import _queue as queue
from haorui_async.redis._ledger import ATTEMPTING, DONE, Ledger
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, FakeGateway, LoseAnswer

from ._server import RedisServer

pytestmark = pytest.mark.integration

CAMPAIGN = "spring"
#: takeover 15 s: a job may take 4 s, a send 2 s.
OPTIONS = queue.WorkerOptions(concurrency=4, takeover=15.0, max_tries=5, retry_delay=0.05)
SETTLE = 0.2
PHONE = "8613912345678"


def fields(uid: str) -> dict[str, Any]:
    return {"phonenumber": PHONE, "textmessage": f"code {uid}", "uid": uid, "sender_id": "HAORUI"}


def make_sender(gateway: FakeGateway, **options: Any) -> AsyncSender:
    options.setdefault("retry", RetryPolicy(attempts=2, backoff_base=0.01))
    return AsyncSender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        transport=gateway.transport,
        deadline=OPTIONS.send_deadline,
        reconcile_settle=SETTLE,
        **options,
    )


class Deliveries:
    """The deliveries of jobs to one worker's context, as arq makes them."""

    def __init__(self, redis_client: redis.asyncio.Redis, sender: AsyncSender) -> None:
        self.ctx: dict[str, Any] = {
            "redis": redis_client,
            queue._SENDER: sender,
            queue._LEDGERS: {},
            queue._OPTIONS: OPTIONS,
        }
        self.ledger = Ledger(redis_client, CAMPAIGN)

    async def once(self, uid: str, row: int = 1, *, job_try: int = 1) -> str:
        """One delivery of the job of `uid`: its outcome's kind, or `Retry` raised."""
        self.ctx["job_try"] = job_try
        return await queue.send_job(self.ctx, CAMPAIGN, row, row + 1, fields(uid))

    async def until_done(self, uid: str, row: int = 1, *, first_try: int = 1) -> tuple[str, int]:
        """Deliver the job again each time it asks (after the delay it asks for), as arq
        would, up to the last try; the outcome's kind and the tries it took."""
        for job_try in range(first_try, OPTIONS.max_tries + 1):
            try:
                return await self.once(uid, row, job_try=job_try), job_try
            except Retry as retry:
                await asyncio.sleep((retry.defer_score or 0) / 1000)
        raise AssertionError(f"{uid}: no outcome after {OPTIONS.max_tries} tries")


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
async def deliveries(
    redis_client: redis.asyncio.Redis, gateway: FakeGateway
) -> AsyncIterator[Deliveries]:
    async with make_sender(gateway, sender_id="HAORUI") as sender:
        yield Deliveries(redis_client, sender)


async def write_entry(ledger: Ledger, uid: str, **entry: Any) -> None:
    """Write an entry as a worker would have, `age` seconds ago by the server's clock."""
    now = await ledger.now()
    age = entry.pop("age", 0.0)
    text = json.dumps(
        {"state": ATTEMPTING, "row": 1, "line": 2, "attempted_at": now - age, **entry}
    )
    await cast("Awaitable[int]", ledger.redis.hset(ledger.entries_key, uid, text))


async def test_a_job_sends_once_and_a_second_delivery_sends_nothing(
    deliveries: Deliveries, gateway: FakeGateway
) -> None:
    assert await deliveries.once("u-1") == "sent"
    assert await deliveries.once("u-1", job_try=2) == "sent"
    assert gateway.count_for_uid("u-1") == 1
    entry = await deliveries.ledger.entry("u-1")
    assert entry is not None
    assert entry.state == DONE
    assert entry.kind == "sent"
    assert entry.record is not None
    assert entry.record["uid"] == "u-1"
    assert entry.record["kind"] == "sent"
    assert entry.record["message_id"] == str(gateway.messages[0].message_id)


async def test_a_lost_answer_is_reconciled_by_a_lookup_not_sent_again(
    deliveries: Deliveries, gateway: FakeGateway
) -> None:
    gateway.inject(LoseAnswer())
    with pytest.raises(Retry) as retry:
        await deliveries.once("u-1")
    # The next delivery comes once a record has had time to appear.
    assert retry.value.defer_score == SETTLE * 1000
    entry = await deliveries.ledger.entry("u-1")
    assert entry is not None
    assert entry.state == ATTEMPTING
    assert entry.ended_at is not None
    kind, _tries = await deliveries.until_done("u-1", first_try=2)
    assert kind == "sent"
    assert gateway.count_for_uid("u-1") == 1
    done = await deliveries.ledger.entry("u-1")
    assert done is not None
    assert done.record is not None
    assert done.record["reconciled"] is True
    assert "lookup" in done.record["detail"]


async def test_a_dead_workers_attempt_that_reached_the_gateway_is_found_not_resent(
    deliveries: Deliveries, gateway: FakeGateway
) -> None:
    # The worker sent it, then was killed before it could record the answer.
    async with make_sender(gateway, sender_id="HAORUI") as other:
        await other.send(PHONE, "code u-1", uid="u-1")
    await write_entry(deliveries.ledger, "u-1", age=OPTIONS.send_deadline + 1)
    kind, _ = await deliveries.until_done("u-1", first_try=2)
    assert kind == "sent"
    assert gateway.count_for_uid("u-1") == 1


async def test_a_dead_workers_attempt_that_never_went_out_is_sent_after_two_misses(
    deliveries: Deliveries, gateway: FakeGateway
) -> None:
    await write_entry(deliveries.ledger, "u-1", age=OPTIONS.send_deadline + 1)
    # The first look finds nothing: it is noted, and looked for again a settle later.
    with pytest.raises(Retry):
        await deliveries.once("u-1", job_try=2)
    entry = await deliveries.ledger.entry("u-1")
    assert entry is not None
    assert entry.missed_at is not None
    assert gateway.accepted == 0
    kind, _ = await deliveries.until_done("u-1", first_try=3)
    assert kind == "sent"
    assert gateway.count_for_uid("u-1") == 1
    assert gateway.model.lookups >= 2


async def test_a_recent_attempt_is_not_looked_up_before_its_send_could_have_ended(
    deliveries: Deliveries, gateway: FakeGateway
) -> None:
    await write_entry(deliveries.ledger, "u-1", age=0.0)
    with pytest.raises(Retry) as retry:
        await deliveries.once("u-1", job_try=2)
    # Its send may run for its deadline, then a record gets the settle to appear.
    wait = (retry.value.defer_score or 0) / 1000
    assert OPTIONS.send_deadline < wait <= OPTIONS.send_deadline + SETTLE + 0.01
    assert gateway.model.lookups == 0
    assert gateway.received == 0


async def test_a_lost_answer_on_the_last_try_is_recorded_unknown(
    deliveries: Deliveries, gateway: FakeGateway
) -> None:
    gateway.inject(LoseAnswer())
    assert await deliveries.once("u-1", job_try=OPTIONS.max_tries) == "unknown"
    entry = await deliveries.ledger.entry("u-1")
    assert entry is not None
    assert entry.state == DONE
    assert entry.kind == "unknown"
    assert entry.record is not None
    assert entry.record["may_have_been_sent"] is True


async def test_fields_that_are_not_a_message_are_recorded_invalid(
    deliveries: Deliveries, gateway: FakeGateway
) -> None:
    deliveries.ctx["job_try"] = 1
    bad = {**fields("u-1"), "phonenumber": "not a number"}
    assert await queue.send_job(deliveries.ctx, CAMPAIGN, 7, 8, bad) == "invalid"
    assert await queue.send_job(deliveries.ctx, CAMPAIGN, 9, 10, {"nonsense": 1}) == "invalid"
    invalid = await deliveries.ledger.invalid()
    assert sorted(invalid) == [7, 9]
    assert {record["kind"] for record in invalid.values()} == {"invalid"}
    assert gateway.received == 0


async def test_a_limiter_whose_redis_is_unreachable_sends_nothing_and_retries_later(
    redis_client: redis.asyncio.Redis, own_redis_server: RedisServer, gateway: FakeGateway
) -> None:
    """The limiter on a Redis of its own, killed between two jobs: the job is not sent,
    its attempt is forgotten, and it is tried again later; once the Redis is back the next
    try sends it. (The worker's limiter and ledger share one Redis: the ledger is kept on
    another here, so that the job gets as far as its send.)"""
    limiter_client = redis.asyncio.Redis.from_url(own_redis_server.url)
    try:
        limiter = RedisRateLimiter(limiter_client, 100.0, key="acct")
        async with make_sender(gateway, sender_id="HAORUI", rate_limit=limiter) as sender:
            deliveries = Deliveries(redis_client, sender)
            assert await deliveries.once("u-1") == "sent"  # the limiter works

            own_redis_server.kill()
            with pytest.raises(Retry) as retry:
                await deliveries.once("u-2", row=2)
            assert retry.value.defer_score == OPTIONS.retry_delay * 1000
            assert gateway.count_for_uid("u-2") == 0
            assert gateway.received == 1
            # Provably not sent: its attempt is forgotten, the next try sends it as new.
            assert await deliveries.ledger.entry("u-2") is None

            own_redis_server.start()
            assert await deliveries.once("u-2", row=2, job_try=2) == "sent"
            assert gateway.count_for_uid("u-2") == 1
    finally:
        await limiter_client.aclose()


async def test_a_limiter_down_on_the_last_try_ends_not_sent(
    redis_client: redis.asyncio.Redis, own_redis_server: RedisServer, gateway: FakeGateway
) -> None:
    limiter_client = redis.asyncio.Redis.from_url(own_redis_server.url)
    try:
        limiter = RedisRateLimiter(limiter_client, 100.0, key="acct")
        async with make_sender(gateway, sender_id="HAORUI", rate_limit=limiter) as sender:
            deliveries = Deliveries(redis_client, sender)
            own_redis_server.kill()
            assert await deliveries.once("u-1", job_try=OPTIONS.max_tries) == "not_sent"
            entry = await deliveries.ledger.entry("u-1")
            assert entry is not None
            assert entry.state == DONE
            assert entry.kind == "not_sent"
            assert entry.record is not None
            assert entry.record["may_have_been_sent"] is False
            assert gateway.received == 0
    finally:
        await limiter_client.aclose()


def test_the_options_leave_arqs_lock_and_a_margin_around_each_send() -> None:
    options = queue.WorkerOptions(takeover=15.0)
    # arq cuts a job at its timeout plus ARQ_CUT_EXTRA, and its lock lasts that plus
    # ARQ_LOCK_EXTRA: the takeover, to the second.
    assert options.job_timeout + queue.ARQ_CUT_EXTRA + queue.ARQ_LOCK_EXTRA == 15.0
    # A send ends early enough in its job for the ledger's bookkeeping after it.
    assert 0 < options.send_deadline <= options.job_timeout - queue.JOB_MARGIN
    assert queue.job_id("spring", 7) == "haorui_async:spring:7"
