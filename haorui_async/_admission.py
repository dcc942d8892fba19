"""`Admission`: when a request may go out. The rate limit, a pause the gateway asked for, a slot.

Every wait ends at the deadline, with `Late` (a send makes it `NotSent`): nothing was sent.
A cancelled wait leaves nothing taken. A limiter is anything with `async acquire()` (the
`Limiter` protocol, in `_limiters`): the local one is aiolimiter's leaky bucket; a limiter
shared by many processes (`haorui_async.redis.RedisRateLimiter`) plugs in here. A limiter
may also offer `acquire_within(seconds) -> bool` (it then never reserves a turn past the
deadline) and `pause(seconds)` (a 429's pause, shared with the other processes). A limiter
that fails (its server down) makes the send `NotSent`: never an unlimited send.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from . import _defaults as defaults
from ._backends._pool import hand_over, timeout_at
from ._exceptions import ConfigurationError, SendError
from ._limiters import Limiter, PausingLimiter, TimedLimiter, Waits
from ._native import caused_by

__all__ = [
    "Admission",
    "Late",
    "Limiter",
    "PausingLimiter",
    "TimedLimiter",
    "Waits",
    "local_limiter",
]

logger = logging.getLogger(defaults.LOGGER_NAME)


class Late(Exception):
    """The deadline passed before the request could go out; nothing was sent.

    The caller says what this means for it (`NotSent` for a message).
    """


def local_limiter(rate: float) -> Limiter:
    """aiolimiter's leaky bucket at `rate` requests per second, for this process.

    The bucket holds a tenth of a second's worth (at least one request), so bursts stay
    small: a window of T seconds sees at most `rate * (T + RATE_LIMIT_BURST)` starts.
    """
    try:
        from aiolimiter import AsyncLimiter
    except ImportError:  # pragma: no cover - depends on the install
        raise caused_by(
            ConfigurationError(
                "rate_limit: needs aiolimiter: pip install 'haorui-async[ratelimit]'"
            ),
            None,
        )
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
        # What more it offers, looked up once (`object`: a caller's limiter may offer more
        # than its declared type says).
        offered: object = limiter
        self._timed = offered if isinstance(offered, TimedLimiter) else None
        self._pausing = offered if isinstance(offered, PausingLimiter) else None
        #: Pauses being handed to a shared limiter (strong references to their tasks).
        self._pausing_tasks: set[asyncio.Task[None]] = set()
        self._sleep = sleep
        # The slots: free ones counted, waiters served first come, first served; a slot given
        # back goes to the first waiter still waiting (`leave`). Not an asyncio.Semaphore:
        # most sends find a slot free, and take it here without a coroutine (`enter_now`).
        self._free = max_concurrency
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        #: Until when (event-loop time) the gateway asked every send to wait (a 429).
        self.paused_until = 0.0

    def enter_now(self, deadline: float, now: float) -> bool:
        """Take a slot at once if nothing would make this attempt wait (no rate limit, no
        pause, a slot free, `deadline` ahead); False (nothing taken) if `enter()` must.
        `now` is the event loop's time."""
        if self.limiter is None and self._free and deadline > now >= self.paused_until:
            self._free -= 1
            return True
        return False

    async def enter(self, deadline: float, waits: Waits | None = None) -> None:
        """Wait for the rate limit, a pause, and a slot, all before `deadline` (loop time);
        the caller then holds a slot until `leave()`. `waits` is told how long the rate limit
        and a pause held it.

        Raises:
            Late: the deadline passed first; nothing was sent.
        """
        loop = asyncio.get_running_loop()
        if self.limiter is not None:
            if waits is None:
                await self._take_turn(loop, deadline)
            else:
                started = loop.time()
                try:
                    await self._take_turn(loop, deadline)
                finally:
                    waits.waited("rate_limit", loop.time() - started)
        if self.paused_until > loop.time():
            await self._wait_out_pause(deadline, waits)
        if deadline <= loop.time():
            raise Late("the deadline passed before the request was sent")
        if self._free:
            self._free -= 1
            return
        await self._wait_for_slot(loop, deadline)
        if self.paused_until > loop.time():
            # A 429 arrived while this send waited for its slot.
            try:
                await self._wait_out_pause(deadline, waits)
            except BaseException:
                self.leave()
                raise

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with timeout_at(deadline):
                await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed a slot in the loop iteration it stopped waiting in: pass it on.
                self.leave()
            elif waiter in self._waiters:  # (a `leave()` since may have dropped it)
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise caused_by(
                    Late(f"no free slot among {self.max_concurrency} before the deadline"), None
                )
            raise

    async def _take_turn(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        assert self.limiter is not None
        try:
            async with timeout_at(deadline):
                if self._timed is not None:
                    came = await self._timed.acquire_within(deadline - loop.time())
                else:
                    came = True
                    await self.limiter.acquire()
        except TimeoutError:
            raise caused_by(Late("the deadline passed while waiting for the rate limit"), None)
        except Exception as exc:
            # Never send past a limiter that cannot say whose turn it is.
            raise caused_by(Late(f"the rate limiter failed ({type(exc).__name__}: {exc})"), None)
        if not came:
            raise Late("the rate limit's next turn comes after the deadline")

    def leave(self) -> None:
        """Give the slot back: to the first waiter still waiting, or to the free ones."""
        waiters = self._waiters
        if not (waiters and hand_over(waiters, None)):
            self._free += 1

    def note(self, failure: SendError, retry_after_cap: float) -> None:
        """A 429 with `Retry-After` (within the cap) pauses every send of this sender."""
        if (
            failure.status_code == 429
            and failure.retry_after is not None
            and failure.retry_after <= retry_after_cap
        ):
            loop = asyncio.get_running_loop()
            self.paused_until = max(self.paused_until, loop.time() + failure.retry_after)
            if self._pausing is not None:
                task = loop.create_task(self._share_pause(self._pausing, failure.retry_after))
                self._pausing_tasks.add(task)
                task.add_done_callback(self._pausing_tasks.discard)

    @staticmethod
    async def _share_pause(limiter: PausingLimiter, seconds: float) -> None:
        try:
            await limiter.pause(seconds)
        except Exception as exc:
            # This process still pauses; the others learn of it from their own 429s.
            logger.warning("could not share the gateway's pause: %s: %s", type(exc).__name__, exc)

    async def _wait_out_pause(self, deadline: float, waits: Waits | None) -> None:
        loop = asyncio.get_running_loop()
        pause = self.paused_until - loop.time()
        if pause >= deadline - loop.time():
            raise Late(f"the gateway asked to pause {pause:.1f}s, past this send's deadline")
        logger.debug("waiting %.3fs: the gateway asked to pause", pause)
        await self._sleep(pause)
        if waits is not None:
            # The pause the sleep was asked for: the sender's own account of its waits, as
            # for the back-off (an injected sleep may wait less, or nothing).
            waits.waited("pause", pause)
