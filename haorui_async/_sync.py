"""`Sender`: the synchronous facade, for Django or Flask views, scripts and notebooks.

One `AsyncSender` runs on an event loop in a background thread that the `Sender` owns; each
call hands a coroutine to that loop (`asyncio.run_coroutine_threadsafe`) and waits for its
result, so any number of threads (WSGI workers) may call it at once, all sharing one pool of
connections and one rate limit. The outcomes and the errors are `AsyncSender`'s.

Called from a thread that runs an event loop (inside `async def`, or from the facade's own
loop), a method would wait for a loop that cannot run: it raises `RuntimeError` at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, Final, TypeVar

from ._exceptions import OutcomeUnknown, SenderClosed
from ._lookup import Balance, DeliveryStatus
from ._message import SMS
from ._outcome import Outcome
from ._protocol import SendResult
from ._reconcile import Reconciliation
from ._sender_core import CANCELLED_AS, still_unknown

__all__ = ["Sender"]

_T = TypeVar("_T")

#: Seconds `close()` waits for the loop's thread to end.
CLOSE_TIMEOUT: Final = 30.0
#: What a call that `close()` ended says (as `SenderClosed`, or within `OutcomeUnknown`).
CLOSED_WHILE_WAITING: Final = "this Sender was closed while the call was waiting"
INSIDE_A_LOOP: Final = (
    "Sender is the synchronous facade and this thread runs an event loop: waiting here would "
    "block that loop for good. In async code use AsyncSender (await sender.send(...))."
)


class Sender:
    """Sends SMS from synchronous code; the same options, outcomes and errors as `AsyncSender`.

        with Sender(api_id="API43404236", sender_id="HAORUI") as sender:
            result = sender.send("+86 139 1234 5678", "Your code is 112233")

    Safe to share between threads. `close()` (or leaving `with`) closes the connections and
    ends the background thread.

    Args:
        **options: `AsyncSender`'s keyword arguments (`api_id`, `rate_limit`, ...). A coroutine
            function given as `sleep` runs on the facade's loop.

    Raises:
        ConfigurationError: as `AsyncSender` does.
    """

    def __init__(self, **options: Any) -> None:
        from ._sender import AsyncSender

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="haorui-async Sender", daemon=True
        )
        # Held by `close()` throughout, and by a call while it hands its coroutine over: no
        # call is handed to a loop that is stopping. Re-entrant: `close()` makes a call.
        self._lock = threading.RLock()
        #: Set once `close()` has stopped the loop: what ran on it has unwound.
        self._stopped = threading.Event()
        self._closed = False
        #: Runs stopped from the loop's own thread, still stopping (strong references).
        self._closing: set[asyncio.Task[None]] = set()
        self._thread.start()
        try:
            self._sender: AsyncSender = self._call(_build(AsyncSender, options))
        except BaseException:
            self._stop_loop()
            raise

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Sender {self._sender!r} {state}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _call(self, coroutine: Coroutine[Any, Any, _T], *, sending: bool = False) -> _T:
        """Run `coroutine` on the facade's loop and wait for it; `sending`: it is a send (which
        `close()` may end with `OutcomeUnknown`, see `_send`)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            coroutine.close()
            raise RuntimeError(INSIDE_A_LOOP)
        with self._lock:
            if self._closed:
                coroutine.close()
                raise SenderClosed("this Sender is closed; create a new one")
            future = asyncio.run_coroutine_threadsafe(
                _send(self, coroutine) if sending else coroutine, self._loop
            )
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            if not self._closed:  # pragma: no cover - only `close()` cancels a call
                raise
            # Still waiting (for its turn, or between attempts) when `close()` ended it.
            raise SenderClosed(CLOSED_WHILE_WAITING) from None
        except BaseException:
            # Ctrl-C while waiting, say: the call stops too, as a cancelled coroutine would.
            future.cancel()
            raise

    # -- sending ----------------------------------------------------------------------------

    def send(self, phonenumber: str | int, textmessage: str, **fields: Any) -> SendResult:
        """Send one SMS; as `AsyncSender.send()` (the same fields, the same errors)."""
        return self._call(self._sender.send(phonenumber, textmessage, **fields), sending=True)

    def send_message(self, sms: SMS, **options: Any) -> SendResult:
        """Send a prepared `SMS`; as `AsyncSender.send_message()`."""
        return self._call(self._sender.send_message(sms, **options), sending=True)

    def send_many(self, messages: Iterable[SMS], **options: Any) -> Iterator[Outcome]:
        """Send many messages; an iterator of one `Outcome` per input, as they complete.

        The same options as `AsyncSender.send_many()`. `messages` is read on the facade's
        loop thread, lazily. Leaving the loop early (`break`, or closing the iterator) stops
        the run as `BulkSend.aclose()` does. Ended by `close()`, it yields the outcomes of
        the messages it had taken and not yielded (`OutcomeUnknown` where a request may be at
        the gateway), then raises `SenderClosed`.

        Raises as `AsyncSender.send_many()` does, at once.
        """
        bulk = self._call(_start(self._sender, messages, options))
        return self._outcomes(bulk)

    def _outcomes(self, bulk: Any) -> Iterator[Outcome]:
        try:
            while True:
                try:
                    outcome = self._call(_next(bulk))
                except StopAsyncIteration:
                    return
                except SenderClosed:
                    if not self._closed:  # pragma: no cover - only `close()` ends a run
                        raise
                    # `close()` stopped the run: the messages it had taken and not yielded
                    # come first (a send it cancelled as what its cancellation amounts to:
                    # `OutcomeUnknown` where a request of it may be at the gateway).
                    self._stopped.wait(CLOSE_TIMEOUT)
                    yield from bulk.unyielded
                    raise
                yield outcome
        finally:
            self._stop_bulk(bulk)

    def _stop_bulk(self, bulk: Any) -> None:
        if self._closed or self._loop.is_closed():
            return
        if threading.current_thread() is self._thread:
            # Collected on the loop's own thread: it cannot wait for itself.
            task = self._loop.create_task(bulk.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return
        asyncio.run_coroutine_threadsafe(bulk.aclose(), self._loop).result()

    # -- lookups ----------------------------------------------------------------------------

    def get_delivery_status(
        self, *, uid: str | None = None, message_id: str | None = None
    ) -> DeliveryStatus | None:
        """As `AsyncSender.get_delivery_status()`."""
        return self._call(self._sender.get_delivery_status(uid=uid, message_id=message_id))

    def check_balance(self) -> Balance:
        """As `AsyncSender.check_balance()`."""
        return self._call(self._sender.check_balance())

    def reconcile(self, what: Any, *, age: float | None = None) -> Reconciliation:
        """As `AsyncSender.reconcile()`."""
        return self._call(self._sender.reconcile(what, age=age))

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections and end the background thread; calling it again does nothing."""
        with self._lock:
            if self._closed:
                return
            try:
                self._call(self._sender.aclose())
            finally:
                self._closed = True
                self._stop_loop()

    def _stop_loop(self) -> None:
        if threading.current_thread() is not self._thread:
            # What still runs on the loop (a call another thread waits for: its turn at the
            # rate limit, a pause between attempts) is cancelled and unwinds there, its
            # finally blocks run, before the loop stops. Left on a stopped loop, it would hold
            # its caller for good (and a compiled coroutine runs no finally when dropped).
            settled = asyncio.run_coroutine_threadsafe(_cancel_the_rest(), self._loop)
            with contextlib.suppress(Exception):
                settled.result(CLOSE_TIMEOUT)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CLOSE_TIMEOUT)
        if not self._thread.is_alive():
            self._loop.close()
        self._stopped.set()

    def __enter__(self) -> Sender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


async def _build(cls: Any, options: dict[str, Any]) -> Any:
    # Built on the loop it will run on.
    return cls(**options)


async def _send(facade: Sender, sending: Coroutine[Any, Any, _T]) -> _T:
    """A send on the facade's loop. Ended by `close()` where a request of it may have reached
    the gateway (in flight, or its answer lost and the message waiting for the next attempt
    or a lookup), it is `OutcomeUnknown`, not the `SenderClosed` of a call that sent nothing."""
    try:
        return await sending
    except asyncio.CancelledError as cancelled:
        marked = getattr(cancelled, CANCELLED_AS, None)
        if not facade.closed or not isinstance(marked, OutcomeUnknown):
            raise
        closed = SenderClosed(CLOSED_WHILE_WAITING)
        raise still_unknown(marked, closed, marked.attempts) from closed


async def _start(sender: Any, messages: Iterable[SMS], options: dict[str, Any]) -> Any:
    return sender.send_many(messages, **options)


async def _next(bulk: Any) -> Outcome:
    outcome: Outcome = await bulk.__anext__()
    return outcome


async def _cancel_the_rest() -> None:
    """Cancel every other task of the running loop and wait until each has unwound."""
    current = asyncio.current_task()
    rest = [task for task in asyncio.all_tasks() if task is not current]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
