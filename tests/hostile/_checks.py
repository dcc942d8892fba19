"""What the hostile tests do on the client's side: bounded waits, loop turns, memory peaks,
and the checks of a send given up as an unknown outcome."""

from __future__ import annotations

import asyncio
import contextlib
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Final, TypeVar

import pytest

from haorui_async import AsyncSender, OutcomeUnknown

from ._server import WAIT, ConnectionRecord, ScriptedServer

__all__ = [
    "MB",
    "PHONE",
    "TEXT",
    "MakeSender",
    "Peak",
    "dropped_by_the_client",
    "peak_memory",
    "send_with_unknown_outcome",
    "within",
    "yield_to_loop",
]

#: The `make_sender` fixture: `make_sender(server, **options)` builds an `AsyncSender` for it.
MakeSender = Callable[..., AsyncSender]

PHONE: Final = "8613912345678"
TEXT: Final = "Your code is 112233"
MB: Final = 1024 * 1024
#: Loop turns that let a client see what already reached its socket (an EOF, a reset, stray
#: bytes): a loop polls its sockets at every turn.
LOOP_TURNS: Final = 5

T = TypeVar("T")


async def within(awaitable: Awaitable[T], what: str, timeout: float = WAIT) -> T:
    """Await `awaitable`; fail the test, naming `what`, if it is still running after `timeout` s.

    A guard against a hang, not a measure of speed: `timeout` is many times what it should take.
    """
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"{what}: still running after {timeout} s") from None


async def send_with_unknown_outcome(
    sender: AsyncSender, uid: str, what: str = "a send"
) -> OutcomeUnknown:
    """Send a message as `uid`; check, within `WAIT`, that its outcome is unknown, and that the
    error names the message. Returns the error."""
    with pytest.raises(OutcomeUnknown) as caught:
        await within(sender.send(PHONE, TEXT, uid=uid), what)
    assert caught.value.uid == uid
    return caught.value


async def dropped_by_the_client(server: ScriptedServer, index: int = 0) -> ConnectionRecord:
    """The server's `index`-th connection, once the client has closed or reset it."""
    conn = await server.connection(index)
    await conn.peer_closed.wait()
    return conn


async def yield_to_loop(turns: int = LOOP_TURNS) -> None:
    """Let the loop turn a few times, so the client sees what already reached its sockets."""
    for _ in range(turns):
        await asyncio.sleep(0)


@dataclass
class Peak:
    """The most memory allocated at once inside a `peak_memory()` block, in bytes."""

    bytes: int = 0


@contextlib.contextmanager
def peak_memory() -> Iterator[Peak]:
    """Measure, with tracemalloc, the peak of what the block allocates (every thread)."""
    peak = Peak()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline, _ = tracemalloc.get_traced_memory()
        yield peak
    finally:
        peak.bytes = tracemalloc.get_traced_memory()[1] - baseline
        tracemalloc.stop()
