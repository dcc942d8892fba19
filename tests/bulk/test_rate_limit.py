"""The sender's rate limit and its shared 429 pause, measured where requests arrive."""

from __future__ import annotations

import asyncio
import bisect

import httpx
import pytest

from haorui_async import RetryPolicy
from haorui_async._bulk import send_all
from haorui_async._defaults import RATE_LIMIT_BURST

from .conftest import RecordingGateway, accepted, make_sender, messages

RATE = 200


def most_in_any_window(starts: list[float], width: float) -> int:
    """The largest number of request starts inside any window of `width` seconds."""
    starts = sorted(starts)
    return max(bisect.bisect_left(starts, t + width) - i for i, t in enumerate(starts))


@pytest.mark.slow
async def test_no_two_second_window_holds_more_starts_than_the_limiter_allows() -> None:
    gateway = RecordingGateway()
    async with make_sender(gateway, max_concurrency=50, rate_limit=RATE) as sender:
        report = await send_all(sender, messages(750))
    assert report.all_sent
    starts = gateway.starts
    # The sender's limiter is a leaky bucket holding a tenth of a second's worth (BURST), draining
    # at RATE per second: a window of T seconds holds at most BURST + RATE * T starts.
    burst = RATE * RATE_LIMIT_BURST
    assert most_in_any_window(starts, 2.0) <= burst + RATE * 2.0
    assert most_in_any_window(starts, 1.0) <= burst + RATE * 1.0
    # And the limit does slow the run: 750 starts need at least (750 - BURST) / RATE seconds.
    assert starts[-1] - starts[0] >= (750 - burst) / RATE * 0.95


async def test_a_429_with_retry_after_pauses_every_send_of_the_sender() -> None:
    pause = 0.3
    answered_429: list[float] = []

    def once_429(uid: str, number: int) -> httpx.Response:
        if number == 10:
            answered_429.append(asyncio.get_running_loop().time())
            return httpx.Response(429, headers={"Retry-After": str(pause)})
        return accepted(uid)

    gateway = RecordingGateway(once_429, delay=0.005)
    sender = make_sender(gateway, max_concurrency=4, retry=RetryPolicy(attempts=3))
    async with sender:
        report = await send_all(sender, messages(60))
    assert report.all_sent
    (t429,) = answered_429
    # Requests already on their way when the 429 came are not held back (at most the others
    # in flight); every request that starts after it waits out the pause.
    during = [t for t in gateway.starts if t429 < t < t429 + pause * 0.95]
    assert len(during) <= 3
    assert gateway.uids.count("m10") == 2
    assert max(gateway.accepted.values()) == 1


async def test_sends_queued_in_the_rate_limiter_also_wait_out_a_429_pause() -> None:
    pause = 0.5
    answered_429: list[float] = []

    def late_429(uid: str, number: int) -> httpx.Response:
        # After the limiter's first burst, so that other sends are queued in the limiter.
        if number == 120:
            answered_429.append(asyncio.get_running_loop().time())
            return httpx.Response(429, headers={"Retry-After": str(pause)})
        return accepted(uid)

    gateway = RecordingGateway(late_429, delay=0.005)
    sender = make_sender(gateway, max_concurrency=10, rate_limit=100, retry=RetryPolicy(attempts=3))
    async with sender:
        report = await send_all(sender, messages(160))
    assert report.all_sent
    (t429,) = answered_429
    during = [t for t in gateway.starts if t429 < t < t429 + pause * 0.95]
    assert during == []
