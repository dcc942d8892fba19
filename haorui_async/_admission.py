"""`Admission`: when a request may go out. The rate limit, a pause the gateway asked for, a slot.

Every wait ends at the deadline, with `Late` (a send makes it `NotSent`): nothing was sent.
A cancelled wait leaves nothing taken. A limiter is anything with `async acquire()` (the
`Limiter` protocol): the local one is aiolimiter's leaky bucket; a limiter shared by many
processes plugs in here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from . import _defaults as defaults
from ._backends._pool import timeout_at
from ._exceptions import ConfigurationError, SendError

__all__ = ["Admission", "Late", "Limiter", "local_limiter"]

logger = logging.getLogger(defaults.LOGGER_NAME)


class Late(Exception):
    """The deadline passed before the request could go out; nothing was sent.

    The caller says what this means for it (`NotSent` for a message).
    """


@runtime_checkable
class Limiter(Protocol):
    """What a rate limiter must offer: `acquire()` returns when one request may start."""

    async def acquire(self) -> None: ...


def local_limiter(rate: float) -> Limiter:
    """aiolimiter's leaky bucket at `rate` requests per second, for this process.

    The bucket holds a tenth of a second's worth (at least one request), so bursts stay
    small: a window of T seconds sees at most `rate * (T + RATE_LIMIT_BURST)` starts.
    """
    try:
        from aiolimiter import AsyncLimiter
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigurationError(
            "rate_limit: needs aiolimiter: pip install 'haorui-async[ratelimit]'"
        ) from None
    burst = max(1.0, rate * defaults.RATE_LIMIT_BURST)
    limiter: Limiter = AsyncLimiter(burst, burst / rate)
    return limiter


class Admission:
    """The gate every attempt passes before its request goes out; one per sender.

    Args:
        max_concurrency: requests in flight at most (the slots).
        limiter: requests per second at most, or None.
        sleep: how the pause the gateway asked for is waited out (tests inject a fake).
    """

    def __init__(
        self,
        max_concurrency: int,
        limiter: Limiter | None,
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.max_concurrency = max_concurrency
        self.limiter = limiter
        self._sleep = sleep
        self._slots = asyncio.Semaphore(max_concurrency)
        #: Until when (event-loop time) the gateway asked every send to wait (a 429).
        self.paused_until = 0.0

    async def enter(self, deadline: float) -> None:
        """Wait for the rate limit, a pause, and a slot, all before `deadline` (loop time);
        the caller then holds a slot until `leave()`.

        Raises:
            Late: the deadline passed first; nothing was sent.
        """
        loop = asyncio.get_running_loop()
        if self.limiter is not None:
            try:
                async with timeout_at(deadline):
                    await self.limiter.acquire()
            except TimeoutError:
                raise Late("the deadline passed while waiting for the rate limit") from None
        if self.paused_until > loop.time():
            await self._wait_out_pause(deadline)
        if deadline <= loop.time():
            raise Late("the deadline passed before the request was sent")
        slots = self._slots
        if not slots.locked():
            await slots.acquire()
            return
        try:
            async with timeout_at(deadline):
                await slots.acquire()
        except TimeoutError:
            raise Late(f"no free slot among {self.max_concurrency} before the deadline") from None
        if self.paused_until > loop.time():
            # A 429 arrived while this send waited for its slot.
            try:
                await self._wait_out_pause(deadline)
            except BaseException:
                slots.release()
                raise

    def leave(self) -> None:
        """Give the slot back."""
        self._slots.release()

    def note(self, failure: SendError, retry_after_cap: float) -> None:
        """A 429 with `Retry-After` (within the cap) pauses every send of this sender."""
        if (
            failure.status_code == 429
            and failure.retry_after is not None
            and failure.retry_after <= retry_after_cap
        ):
            now = asyncio.get_running_loop().time()
            self.paused_until = max(self.paused_until, now + failure.retry_after)

    async def _wait_out_pause(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        pause = self.paused_until - loop.time()
        if pause >= deadline - loop.time():
            raise Late(f"the gateway asked to pause {pause:.1f}s, past this send's deadline")
        logger.debug("waiting %.3fs: the gateway asked to pause", pause)
        await self._sleep(pause)
