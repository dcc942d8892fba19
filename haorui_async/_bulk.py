"""`send_many()` and `send_all()`: many messages through one sender, each accounted for.

A fixed pool of `concurrency` worker tasks pulls messages from the input (an iterable or an
async iterable, read lazily) and sends each with `AsyncSender.send_message()`; every input
item ends as exactly one `Outcome`. Memory is bounded by the window of messages started and
not yet handed to the caller, never by the input's length.

When the caller stops early (`aclose()`, leaving `async with`, breaking out of a plain
`async for`) or is cancelled, no new message is started, and every message already taken from
the input is accounted for in `BulkSend.unyielded`:

- on a stop, sends in flight may finish within `grace` seconds; their real outcomes are kept;
- on cancellation (or when the grace runs out), sends in flight are cancelled and recorded as
  `OutcomeUnknown` where a request of theirs may already have reached the gateway (it was in
  flight, or an earlier attempt's outcome was unknown), and as `NotSent` where none can have
  (they waited for their turn at the rate limit, a slot, or a retry of what never went out).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from . import _defaults as defaults
from ._exceptions import (
    ConfigurationError,
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    SenderClosed,
    SendError,
)
from ._message import SMS
from ._outcome import KINDS, BulkReport, Outcome, OutcomeKind, kind_of
from ._sender_core import CANCELLED_AS

if TYPE_CHECKING:
    from ._sender import AsyncSender

__all__ = [
    "KINDS",
    "BulkReport",
    "BulkSend",
    "Outcome",
    "OutcomeKind",
    "kind_of",
    "send_all",
    "send_many",
]


def _check_positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{name}: expected an int >= 1, got {value!r}")
    return value


class _Window:
    """Slots for messages started and not yet yielded; a freed slot goes to the oldest waiter.

    Not `asyncio.Semaphore`: its release walks every waiter already woken (CPython 3.11), which
    costs O(waiters) per release when a consumer yields a burst of outcomes.
    """

    def __init__(self, size: int) -> None:
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self.free > 0 and not self.waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            elif waiter in self.waiters:  # (a release may have dropped it already)
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class _Run:
    """The state shared by the workers and the consumer of one `send_many()` call.

    Workers hold this object, never the `BulkSend`, so a `BulkSend` dropped by its caller is
    collected at once and its outcome generator finalized (which stops the run).
    """

    def __init__(
        self,
        sender: AsyncSender,
        messages: Iterable[object] | AsyncIterable[object],
        *,
        ordered: bool,
        concurrency: int,
        window: int,
        grace: float,
        reconcile_unknown: bool | None,
    ) -> None:
        self.sender = sender
        self.reconcile_unknown = reconcile_unknown
        self.messages = messages
        self.ordered = ordered
        self.concurrency = concurrency
        self.grace = grace
        self.window = _Window(window)
        self.pull_lock = asyncio.Lock()
        self.sync_iter: Iterator[object] | None = None
        self.async_iter: AsyncIterator[object] | None = None
        #: Outcomes delivered and not yet yielded, by input index (insertion order = completion).
        self.done: dict[int, Outcome] = {}
        self.wakeup = asyncio.Event()
        self.workers: list[asyncio.Task[None]] = []
        self.sending: set[asyncio.Task[None]] = set()
        self.live_workers = 0
        self.taken = 0
        self.next_index = 0
        self.stopping = False
        self.exhausted = False
        self.input_error: BaseException | None = None

    # -- workers --------------------------------------------------------------------------

    def start(self) -> None:
        messages = self.messages
        if isinstance(messages, AsyncIterable):
            self.async_iter = aiter(messages)
        else:
            self.sync_iter = iter(messages)
        self.live_workers = self.concurrency
        self.workers = [
            asyncio.create_task(self.work(), name=f"haorui-send_many-{n}")
            for n in range(self.concurrency)
        ]

    def halted(self) -> bool:
        """True once no new message may be started (a method: awaits change the state)."""
        return self.stopping or self.exhausted

    async def pull(self) -> object:
        """The next input item; raises StopAsyncIteration at the end."""
        if self.sync_iter is not None:
            try:
                return next(self.sync_iter)
            except StopIteration:
                raise StopAsyncIteration from None
        assert self.async_iter is not None
        # An async iterator is not safe for concurrent __anext__ calls.
        async with self.pull_lock:
            if self.exhausted or self.stopping:
                raise StopAsyncIteration
            return await anext(self.async_iter)

    async def work(self) -> None:
        try:
            while not self.halted():
                await self.window.acquire()
                # Checked again: the run may have stopped while this worker waited.
                if self.halted():
                    self.window.release()
                    return
                try:
                    item = await self.pull()
                except StopAsyncIteration:
                    self.exhausted = True
                    self.window.release()
                    return
                except Exception as exc:
                    # The input itself failed: stop starting messages, report it at the end.
                    self.input_error = exc
                    self.stopping = True
                    self.window.release()
                    return
                # No await between taking an item and starting its send: a stop cancels only
                # workers that are not sending, so every item taken gets its outcome.
                index = self.taken
                self.taken += 1
                await self.send(index, item)
        finally:
            self.live_workers -= 1
            self.wakeup.set()

    async def send(self, index: int, item: object) -> None:
        if not isinstance(item, SMS):
            error = InvalidMessage("message", item, "expected an SMS")
            self.deliver(Outcome(index, None, error=error))
            return
        task = asyncio.current_task()
        assert task is not None
        self.sending.add(task)
        try:
            result = await self.sender.send_message(item, reconcile_unknown=self.reconcile_unknown)
        except (SendError, InvalidMessage, SenderClosed) as exc:
            self.deliver(Outcome(index, item, error=exc))
        except asyncio.CancelledError as cancelled:
            self.deliver(Outcome(index, item, error=self.cancelled(item, cancelled)))
            raise
        except Exception as exc:
            # Not the SDK's own failure, from anywhere in the send: it may have gone out.
            failure = OutcomeUnknown(f"the send broke off with {type(exc).__name__}", message=item)
            self.deliver(Outcome(index, item, error=failure))
        else:
            self.deliver(Outcome(index, item, result=result))
        finally:
            self.sending.discard(task)

    def cancelled(self, item: SMS, cancelled: asyncio.CancelledError) -> SendError:
        """The outcome of a send cancelled in flight: what the SDK's send marked its
        cancellation as (`CANCELLED_AS`), or, unmarked (a `send_message` of a subclass's
        own), `OutcomeUnknown`."""
        marked = getattr(cancelled, CANCELLED_AS, None)
        if isinstance(marked, NotSent):
            return NotSent(
                f"cancelled while in flight: {marked.detail}",
                message=item,
                attempts=marked.attempts,
            )
        if isinstance(marked, OutcomeUnknown):
            detail, attempts = marked.detail, marked.attempts
        else:
            detail, attempts = "the request may have reached the gateway", 1
        return OutcomeUnknown(
            f"cancelled while in flight: {detail}", message=item, attempts=attempts
        )

    def deliver(self, outcome: Outcome) -> None:
        self.done[outcome.index] = outcome
        self.wakeup.set()

    # -- the consumer's side --------------------------------------------------------------

    def take(self) -> Outcome | None:
        done = self.done
        if not done:
            return None
        if self.ordered:
            outcome = done.pop(self.next_index, None)
            if outcome is not None:
                self.next_index += 1
            return outcome
        return done.pop(next(iter(done)))

    async def outcomes(self) -> AsyncGenerator[Outcome, None]:
        grace = self.grace
        self.start()
        try:
            while True:
                outcome = self.take()
                if outcome is not None:
                    self.window.release()
                    yield outcome
                    continue
                if self.live_workers == 0:
                    break
                self.wakeup.clear()
                await self.wakeup.wait()
        except asyncio.CancelledError:
            grace = 0.0
            raise
        finally:
            await self.stop(grace)
        if self.input_error is not None:
            raise self.input_error

    async def stop(self, grace: float) -> None:
        """Start nothing new; let sends in flight finish within `grace`, cancel the rest."""
        self.stopping = True
        for task in self.workers:
            if task not in self.sending:
                task.cancel()
        try:
            if grace > 0 and self.sending:
                await asyncio.wait(set(self.sending), timeout=grace)
        finally:
            for task in self.workers:
                task.cancel()
            await asyncio.wait(self.workers)

    def unyielded(self) -> tuple[Outcome, ...]:
        return tuple(sorted(self.done.values(), key=lambda o: o.index))


class BulkSend(AsyncIterator[Outcome]):
    """The outcomes of `send_many()`, as they come; also an async context manager.

    Iterate it with `async for`. Use it in `async with` (or call `aclose()`) to stop early
    with every started message accounted for in `unyielded`.
    """

    def __init__(self, run: _Run) -> None:
        self._run = run
        self._outcomes = run.outcomes()
        self._closing_grace: float | None = None

    def __aiter__(self) -> BulkSend:
        return self

    async def __anext__(self) -> Outcome:
        return await self._outcomes.__anext__()

    async def aclose(self, grace: float | None = None) -> None:
        """Stop: start no new message, wait up to `grace` seconds (default: the one given
        to `send_many`) for sends in flight, cancel the rest (recorded as `OutcomeUnknown`).

        Outcomes not yielded by then are in `unyielded`. Calling it again does nothing.
        """
        if grace is not None:
            self._run.grace = grace
        await self._outcomes.aclose()

    async def __aenter__(self) -> BulkSend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        cancelled = exc_type is not None and issubclass(exc_type, asyncio.CancelledError)
        await self.aclose(0.0 if cancelled else None)

    @property
    def taken(self) -> int:
        """How many items were taken from the input; items from this index on were not."""
        return self._run.taken

    @property
    def unyielded(self) -> tuple[Outcome, ...]:
        """Outcomes of items taken from the input but not yielded (after a stop), by index."""
        return self._run.unyielded()


def send_many(
    sender: AsyncSender,
    messages: Iterable[SMS] | AsyncIterable[SMS],
    *,
    ordered: bool = False,
    concurrency: int | None = None,
    window: int | None = None,
    grace: float = defaults.DEFAULT_GRACE,
    reconcile_unknown: bool | None = None,
) -> BulkSend:
    """Send every message of `messages` through `sender`, yielding one `Outcome` per item.

    `messages` is read lazily, one item at a time, so it may be a generator of any length.
    Outcomes come as sends complete, or in input order with `ordered=True`. One failing
    message never stops the others; an item that is not an `SMS` becomes an "invalid" outcome.

    Args:
        sender: the `AsyncSender` to send through (its rate limit, retries and 429 pause
            apply to every message).
        messages: an iterable or async iterable of `SMS`.
        ordered: yield outcomes in input order (a slow message then holds back the others,
            up to `window`).
        concurrency: sends in flight at most; default: the sender's `max_concurrency`.
        window: messages started and not yet yielded at most (what memory is bounded by);
            default: twice `concurrency`. A consumer that does not keep up slows the sends.
        grace: seconds that sends in flight may take to finish after an early stop.
        reconcile_unknown: reconcile each attempt that ends in an unknown outcome
            (`AsyncSender.reconcile()`) before giving it an outcome: found accepted, it is
            "sent" (its `SendResult` marked `reconciled`); provably not accepted, sent again;
            else "unknown". Default: the sender's option of that name. A message being
            reconciled keeps its worker for up to twice `reconcile_settle`.

    Raises:
        TypeError: `messages` is not an iterable, or is a single `str`, `bytes` or `SMS`.
        ConfigurationError: `concurrency` or `window` is not an int >= 1, or `grace` < 0.

    Iterating raises whatever the input raised, after every message taken before it has
    been yielded; and `SenderClosed` at once if the sender is closed.
    """
    if isinstance(messages, (str, bytes, SMS)) or not isinstance(
        messages, (Iterable, AsyncIterable)
    ):
        raise TypeError(
            "messages: expected an iterable or async iterable of SMS, "
            f"got {type(messages).__name__}"
        )
    if sender.closed:
        raise SenderClosed("this AsyncSender is closed; create a new one")
    size = _check_positive_int(
        "concurrency", sender.max_concurrency if concurrency is None else concurrency
    )
    limit = _check_positive_int(
        "window", defaults.WINDOW_FACTOR * size if window is None else window
    )
    if not grace >= 0:
        raise ConfigurationError(f"grace: expected seconds >= 0, got {grace!r}")
    run = _Run(
        sender,
        messages,
        ordered=ordered,
        concurrency=min(size, limit),
        window=limit,
        grace=float(grace),
        reconcile_unknown=reconcile_unknown,
    )
    return BulkSend(run)


async def send_all(
    sender: AsyncSender,
    messages: Iterable[SMS] | AsyncIterable[SMS],
    *,
    concurrency: int | None = None,
) -> BulkReport:
    """Send every message and gather all outcomes, in input order, with counts per kind.

    Holds every outcome in memory: for millions of messages, iterate `send_many()` instead.
    Raises as `send_many()` does.
    """
    outcomes: list[Outcome] = []
    async with send_many(sender, messages, concurrency=concurrency) as bulk:
        async for outcome in bulk:
            outcomes.append(outcome)
    return BulkReport.from_outcomes(outcomes)
