"""`RedisRateLimiter`: one account's rate limit held in Redis, for every process that shares it.

GCRA (the generic cell rate algorithm) in one Lua script, timed by the Redis server's own
clock (`TIME`), so the hosts need no synchronised clocks. Each call *reserves* the caller's
turn and tells it how long to wait: every caller sleeps once, nobody polls. The script also
holds the gateway's pause: a 429 with `Retry-After` seen by one process moves every later
turn, in every process, past the pause.

In any window of T seconds at most `rate * T + burst` turns start.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any, Final

import attrs

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["DEFAULT_KEY", "RedisRateLimiter", "Turn"]

#: The key of the limit's state when none is given: one per account is the rule, so give
#: each account's limiter a key of its own.
DEFAULT_KEY: Final = "haorui_async:rate"
#: Burst, in seconds' worth of the rate (at least one request): as the local limiter's.
DEFAULT_BURST_SECONDS: Final = 0.1

# KEYS[1]: the state, a hash of `tat` (the theoretical arrival time of the next turn) and
# `paused_until`, both in microseconds of the server's clock.
# ARGV: the interval between turns, the tolerance (burst - 1 intervals), the longest wait the
# caller accepts (-1: any), all in microseconds. Returns the wait and the turn's start on the
# server's clock, in microseconds; a wait of -1: nothing reserved (the turn would come after
# the longest wait).
_RESERVE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local longest = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tat', 'paused_until')
local tat = tonumber(state[1]) or now
local paused = tonumber(state[2]) or 0
local start = math.max(now, tat - tolerance, paused)
local wait = start - now
if longest >= 0 and wait > longest then
  return {-1, start}
end
tat = math.max(tat, start) + interval
redis.call('HSET', KEYS[1], 'tat', tat)
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, paused) - now) / 1000) + 1000)
return {wait, start}
"""

# ARGV[1]: the pause in microseconds from now. Returns the pause's end, from now.
_PAUSE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = now + tonumber(ARGV[1])
local current = tonumber(redis.call('HGET', KEYS[1], 'paused_until')) or 0
if current < paused then
  redis.call('HSET', KEYS[1], 'paused_until', paused)
else
  paused = current
end
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat')) or now
redis.call('PEXPIRE', KEYS[1], math.ceil((math.max(tat, paused) - now) / 1000) + 1000)
return paused - now
"""


@attrs.frozen
class Turn:
    """A turn reserved: `wait` seconds from now, at `start` on the Redis server's clock."""

    wait: float
    start: float


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class RedisRateLimiter:
    """`rate` requests per second at most, across every process that uses the same `key`.

    Give it to `AsyncSender(rate_limit=...)` in each process (or to the `worker` command with
    `--rate-limit`). Redis down or slow makes the send `NotSent`: never an unlimited send.

    Args:
        redis: a `redis.asyncio.Redis` client (the `[redis]` extra).
        rate: requests per second for the whole account.
        key: the Redis key of the limit's state; one key per account.
        burst: requests that may start at once after a quiet spell; default a tenth of a
            second's worth, at least 1.

    Raises:
        ConfigurationError: `rate` or `burst` out of range.
    """

    def __init__(
        self,
        redis: Redis,
        rate: float,
        *,
        key: str | None = None,
        burst: float | None = None,
    ) -> None:
        if not _number(rate) or not rate > 0:
            raise ConfigurationError(f"rate: expected requests per second > 0, got {rate!r}")
        if burst is None:
            burst = max(1.0, rate * DEFAULT_BURST_SECONDS)
        if not _number(burst) or not burst >= 1:
            raise ConfigurationError(f"burst: expected a number >= 1, got {burst!r}")
        self.redis = redis
        self.rate = float(rate)
        self.burst = float(burst)
        self.key = key or DEFAULT_KEY
        self._interval = 1_000_000 / self.rate
        self._tolerance = (self.burst - 1) * self._interval
        self._reserve: Any = redis.register_script(_RESERVE)
        self._pause: Any = redis.register_script(_PAUSE)

    def __repr__(self) -> str:
        return f"<RedisRateLimiter rate={self.rate:g}/s burst={self.burst:g} key={self.key!r}>"

    async def acquire(self) -> None:
        """Wait for this process's next turn (the `Limiter` protocol)."""
        await self.acquire_within(None)

    async def acquire_within(self, seconds: float | None) -> bool:
        """Wait for the next turn if it comes within `seconds` (None: whenever): True once
        it has come; False at once, reserving nothing, if it would come later."""
        turn = await self.reserve(seconds)
        if turn is None:
            return False
        if turn.wait > 0:
            await asyncio.sleep(turn.wait)
        return True

    async def reserve(self, seconds: float | None = None) -> Turn | None:
        """Reserve the next turn, if it comes within `seconds` (None: whenever), without
        waiting for it; None (nothing reserved) if it would come later."""
        longest = -1 if seconds is None else max(0, math.floor(seconds * 1_000_000))
        args = [self._interval, self._tolerance, longest]
        wait, start = (int(n) for n in await self._reserve(keys=[self.key], args=args))
        if wait < 0:
            return None
        return Turn(wait / 1_000_000, start / 1_000_000)

    async def pause(self, seconds: float) -> None:
        """Hold every turn, in every process sharing the key, for `seconds` from now (a 429
        with `Retry-After` calls this)."""
        await self._pause(keys=[self.key], args=[max(0, math.ceil(seconds * 1_000_000))])
