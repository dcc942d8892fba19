"""What a rate limiter offers the sender (`Admission`): the protocols a limiter of the caller's
meets, `haorui_async.redis.RedisRateLimiter` among them.

A module of their own: `_admission` is compiled in the compiled build (mypyc), where a class
cannot be a runtime-checkable protocol, and these are checked with `isinstance`.
"""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

__all__ = ["Limiter", "PausingLimiter", "TimedLimiter", "Waits"]


@runtime_checkable
class Limiter(Protocol):
    """What a rate limiter must offer: `acquire()` returns when one request may start."""

    async def acquire(self) -> None: ...


@runtime_checkable
class TimedLimiter(Protocol):
    """A limiter that can be asked for a turn within a time: True once it has come, False
    at once (reserving nothing) if it would come later."""

    async def acquire_within(self, seconds: float | None) -> bool: ...


@runtime_checkable
class PausingLimiter(Protocol):
    """A limiter that holds every turn for a while: the gateway's pause, for every process."""

    async def pause(self, seconds: float) -> None: ...


class Waits(Protocol):
    """Where the time an attempt waits at admission is told (`_telemetry.SendTrace`)."""

    def waited(self, reason: Literal["rate_limit", "pause"], seconds: float) -> None: ...
