"""`RedisRateLimiter` on a real redis-server: the rate held across limiters (processes), turns
reserved once, the longest wait, the shared pause, and Redis down or slow."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import cast

import httpx
import pytest
import redis.asyncio

from haorui_async import NotSent, RetryPolicy
from haorui_async._exceptions import ConfigurationError
from haorui_async.redis import RedisRateLimiter

from .._kit import CountingHandler, make_test_sender
from ._campaign import most_in_any_window
from ._server import RedisServer, free_port

pytestmark = pytest.mark.integration


def accept(request: httpx.Request) -> httpx.Response:
    uid = json.loads(request.content)["uid"]
    return httpx.Response(200, json={"message_id": 1, "status": "S", "remarks": "", "uid": uid})


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[redis.asyncio.Redis]]:
    """Four clients of the same server: four processes' worth of limiters."""
    made = [redis.asyncio.Redis.from_url(redis_server.url) for _ in range(4)]
    await made[0].flushdb()
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


async def until_set(client: redis.asyncio.Redis, key: str, field: str) -> None:
    """Return once the hash `key` has `field` (set by another task or process)."""
    for _ in range(2000):
        # redis-py types its commands for the sync and the async client at once.
        if await cast("Awaitable[bytes | None]", client.hget(key, field)) is not None:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{key} {field} never set")


async def test_turns_reserved_by_many_limiters_keep_the_rate_in_every_window(
    clients: list[redis.asyncio.Redis],
) -> None:
    rate, burst = 200.0, 20.0
    limiters = [RedisRateLimiter(client, rate, burst=burst, key="acct") for client in clients]
    turns = await asyncio.gather(*(limiters[n % 4].reserve() for n in range(1000)))
    starts = [turn.start for turn in turns if turn is not None]
    assert len(starts) == 1000
    # GCRA: at most rate * T + burst turns in any window of T seconds, whoever asked.
    assert most_in_any_window(starts, 1.0) <= rate * 1.0 + burst
    assert most_in_any_window(starts, 0.25) <= rate * 0.25 + burst
    # ... and no slower than that: once the turns are taken faster than the rate, they
    # follow each other at the rate exactly.
    assert most_in_any_window(starts, 1.0) >= rate * 1.0 - 1
    assert max(starts) - min(starts) >= (1000 - burst) / rate - 1e-3


async def test_each_turn_is_waited_for_once_then_taken(redis_client: redis.asyncio.Redis) -> None:
    limiter = RedisRateLimiter(redis_client, 50.0, burst=1, key="acct")
    first = await limiter.reserve()
    second = await limiter.reserve()
    assert first is not None
    assert second is not None
    assert first.wait == pytest.approx(0.0, abs=0.005)
    assert second.start - first.start == pytest.approx(0.02, abs=1e-5)
    # acquire() sleeps out its reserved wait, once: the turn after it starts later still.
    loop = asyncio.get_running_loop()
    before = loop.time()
    await limiter.acquire()
    assert loop.time() - before >= 0.02


async def test_a_turn_past_the_longest_wait_reserves_nothing(
    redis_client: redis.asyncio.Redis,
) -> None:
    limiter = RedisRateLimiter(redis_client, 10.0, burst=1, key="acct")
    turns = [await limiter.reserve() for _ in range(20)]
    assert turns[-1] is not None
    assert turns[-1].wait > 1.5
    assert await limiter.reserve(1.0) is None
    assert await limiter.acquire_within(1.0) is False
    after = await limiter.reserve()
    # The refused calls took nothing: the next turn follows the last one reserved.
    assert after is not None
    assert after.start - turns[-1].start == pytest.approx(0.1, abs=1e-5)


async def test_a_pause_holds_the_turns_of_every_limiter_on_the_key(
    clients: list[redis.asyncio.Redis],
) -> None:
    one = RedisRateLimiter(clients[0], 100.0, key="acct")
    other = RedisRateLimiter(clients[1], 100.0, key="acct")
    elsewhere = RedisRateLimiter(clients[2], 100.0, key="another account")
    await one.pause(2.0)
    turn = await other.reserve()
    assert turn is not None
    assert turn.wait >= 1.9
    free = await elsewhere.reserve()
    assert free is not None
    assert free.wait < 0.5


@pytest.mark.parametrize(
    ("rate", "burst"), [(0, None), (-1, None), (True, None), (10, 0.5), (10, False)]
)
def test_a_rate_or_burst_out_of_range_is_refused(
    redis_client: redis.asyncio.Redis, rate: float, burst: float | None
) -> None:
    with pytest.raises(ConfigurationError, match="rate|burst"):
        RedisRateLimiter(redis_client, rate, burst=burst)


async def test_redis_down_makes_the_send_not_sent_and_nothing_goes_out() -> None:
    client = redis.asyncio.Redis(host="127.0.0.1", port=free_port())
    handler = CountingHandler(accept)
    sender = make_test_sender(
        transport=httpx.MockTransport(handler),
        rate_limit=RedisRateLimiter(client, 100.0),
        retry=RetryPolicy(attempts=2, backoff_base=0.0),
    )
    async with sender:
        with pytest.raises(NotSent, match="rate limiter failed") as caught:
            await sender.send("8613912345678", "hello")
    await client.aclose()
    assert caught.value.may_have_been_sent is False
    assert handler.calls == 0


async def test_a_redis_that_never_answers_ends_at_the_deadline_as_not_sent() -> None:
    connected = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        connected.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = redis.asyncio.Redis(host="127.0.0.1", port=port)
    handler = CountingHandler(accept)
    sender = make_test_sender(
        transport=httpx.MockTransport(handler),
        rate_limit=RedisRateLimiter(client, 100.0),
        deadline=0.5,
    )
    try:
        async with sender:
            with pytest.raises(NotSent, match="deadline") as caught:
                await sender.send("8613912345678", "hello")
        assert connected.is_set()
        assert caught.value.may_have_been_sent is False
        assert handler.calls == 0
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
        await client.aclose()


async def test_a_429_seen_by_one_process_pauses_the_others(
    clients: list[redis.asyncio.Redis],
) -> None:
    loop = asyncio.get_running_loop()
    throttled_at: list[float] = []
    arrivals: list[float] = []

    def throttle_once(request: httpx.Request) -> httpx.Response:
        if not throttled_at:
            throttled_at.append(loop.time())
            return httpx.Response(429, headers={"Retry-After": "1"})
        return accept(request)

    def record(request: httpx.Request) -> httpx.Response:
        arrivals.append(loop.time())
        return accept(request)

    one = make_test_sender(
        transport=httpx.MockTransport(throttle_once),
        rate_limit=RedisRateLimiter(clients[0], 100.0, key="acct"),
    )
    other = make_test_sender(
        transport=httpx.MockTransport(record),
        rate_limit=RedisRateLimiter(clients[1], 100.0, key="acct"),
    )
    async with one, other:
        first = asyncio.create_task(one.send("8613912345678", "throttled"))
        # The pause reaches Redis from a task of its own: wait until it is there.
        await until_set(clients[2], "acct", "paused_until")
        await other.send("8613912345678", "paused too")
        result = await first
    assert result.attempts == 2
    assert arrivals[0] - throttled_at[0] >= 0.95
