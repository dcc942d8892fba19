"""A pool of keep-alive connections to one origin; every hand-over happens here.

`Pool.exchange()` is the whole life of one request: take an idle connection (the most
recently used first), or a slot to open one, or wait for either; write; wait for the answer.
The caller then `finish()`es the `Answer`: its connection goes back to the pool (the answer
was the one asked for) or is retired.

Cancellation may land at any await: waiting for a connection (a connection or slot handed
over in that same loop iteration is passed on), connecting or the TLS handshake (the socket is
closed, the slot given back), the exchange (the connection is aborted: its state is unknown).
No path leaves a slot taken or starts a request after its task was cancelled.

TLS is the connection's own (`Connection.start_tls`, over a plain TCP transport), not
asyncio's `ssl=`: asyncio's TLS layer keeps a 256 KiB buffer per connection (`_tls_wire.py`).
A connection being opened holds the slot `_connect` took; it counts as open (`_open`, its slot
then freed by `lost()`) only once it is ready for a request.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import math
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, TypeVar

import httpx

from .._native import caused_by
from ._connection import BufferedConnection, Connection, State
from ._wire import AnswerReader, Wire

__all__ = ["Answer", "Pool", "clock_of", "future_factory", "hand_over", "timeout_at"]

T = TypeVar("T")

#: Loop iterations `aclose()` gives the sockets to close (TLS takes two or three).
_CLOSE_ROUNDS: Final = 10
#: The size of the buffer the event loop reads every connection's data into (asyncio's own
#: reads are up to 256 KiB; an answer to SendSMS is a few hundred bytes).
READ_BUFFER_SIZE: Final = 64 * 1024
#: The bound of a TLS handshake when neither a connect timeout nor a deadline bounds it:
#: asyncio's own default (`ssl_handshake_timeout`), which applied before TLS moved here.
_HANDSHAKE_TIMEOUT: Final = 60.0
#: What `Pool.exchange` holds in place of a request once written.
_SENT: Final = Wire(b"")

Timeouts = dict[str, float | None]


if sys.version_info >= (3, 11):
    timeout_at = asyncio.timeout_at
else:  # pragma: no cover - Python 3.10
    import contextlib

    @contextlib.asynccontextmanager
    async def timeout_at(when: float | None):  # type: ignore[no-untyped-def]
        # asyncio.wait_for would run the connect in a task of its own, and return its result
        # even when the caller was cancelled meanwhile; a timer that cancels this task, told
        # apart from any other cancellation by a flag, does neither.
        if when is None:
            yield
            return
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = loop.call_at(when, expire)
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise caused_by(TimeoutError(), None)
            raise
        finally:
            handle.cancel()


def clock_of(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """`loop.time`, or `time.monotonic` itself where that is all `loop.time` does (asyncio's
    own loops): the same clock, without a Python call around it on every read. A `time`
    replaced on the loop or its class (a test's virtual clock) is kept."""
    if getattr(loop.time, "__func__", None) is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time


def future_factory(loop: asyncio.AbstractEventLoop) -> Callable[[], asyncio.Future[Any]]:
    """`loop.create_future`, or the `asyncio.Future` class bound to `loop` where that is all
    `loop.create_future` does (asyncio's own loops): no Python call around it per request.
    A `create_future` replaced on the loop or its class is kept."""
    if getattr(loop.create_future, "__func__", None) is asyncio.BaseEventLoop.create_future:
        return functools.partial(asyncio.Future, loop=loop)
    return loop.create_future


def hand_over(waiters: collections.deque[asyncio.Future[T]], value: T) -> bool:
    """Give `value` to the first of `waiters` still waiting (those gone are dropped);
    False if none is."""
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(value)
            return True
    return False


def _earliest(now: float, timeout: float | None, deadline: float | None) -> float | None:
    when = None if timeout is None else now + timeout
    if deadline is not None and (when is None or deadline < when):
        when = deadline
    return when


class _Held(Protocol):
    def release(self) -> None: ...
    def discard(self) -> None: ...


class Answer:
    """The gateway's answer: status, raw headers and body, and the connection it came on
    (held out of the pool until `finish()`)."""

    __slots__ = ("_held", "body", "headers", "status")

    def __init__(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        held: _Held | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self._held = held

    def finish(self, keep: bool) -> None:
        """Give the connection back for the next request (`keep`), or retire it: what came
        on it was not the answer asked for, and more may still be on its way."""
        held = self._held
        if held is not None:
            self._held = None
            if keep:
                held.release()
            else:
                held.discard()


class Pool:
    """Up to `max_connections` connections to `host:port`, over TLS where `ssl_context`.

    Args:
        reader: makes the answer reader of each new connection (h11 or httptools).
        keepalive_expiry: an idle connection older than this is closed, never reused, so a
            request is not written onto a connection the server is about to close.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        keepalive_expiry: float,
        reader: Callable[[], AnswerReader],
    ) -> None:
        self.host = host
        self.port = port
        self.origin = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        self._ssl = ssl_context
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self._reader = reader
        # Shared by the pool's connections: a read is copied out before the loop goes on.
        self.read_buffer = memoryview(bytearray(READ_BUFFER_SIZE))
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set by `_bind()` with the loop: its clock (`clock_of`), its `create_future`
        # (`future_factory`) and the class of its connections.
        self.now: Callable[[], float] = time.monotonic
        self.new_future: Callable[[], asyncio.Future[Any]] = self._no_loop
        self._connection: type[Connection] = Connection
        self._idle: list[Connection] = []  # a stack: the most recently used on top
        self._open: set[Connection] = set()  # each holds a slot
        self._slots = 0  # connections open or being opened
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
        # One timer for every exchange in flight (`watch`), not one per exchange: a timer
        # handle made and cancelled per request costs more than the rest of the pool's work.
        self._watched: set[Connection] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_at = math.inf
        self.closed = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.now = clock_of(loop)
        self.new_future = future_factory(loop)
        # asyncio's own loops read into the pool's buffer; uvloop hands data over for less.
        self._connection = (
            BufferedConnection if isinstance(loop, asyncio.BaseEventLoop) else Connection
        )

    def _no_loop(self) -> asyncio.Future[Any]:  # pragma: no cover - a connection needs a loop
        raise RuntimeError("the pool has no event loop yet")

    @property
    def connections(self) -> int:
        """Connections open or being opened."""
        return self._slots

    # -- one request -----------------------------------------------------------------------

    async def exchange(
        self, wire: Wire, method: bytes, timeouts: Timeouts, deadline: float | None
    ) -> Answer:
        """Send `wire` and wait for its whole answer; the connection stays HELD (out of the
        pool) until the answer's `finish()`.

        Raises:
            httpx.PoolTimeout, httpx.ConnectTimeout, httpx.ConnectError: nothing was written
                (also when the deadline passed first).
            httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError,
            httpx.RemoteProtocolError: the request may have reached the server.
        """
        conn = None if self.closed else self._take_idle()
        if conn is None:
            conn = await self._acquire(timeouts, deadline)
        try:
            waiter = conn.exchange(wire.data, method, timeouts, deadline)
            # The request is out: the wait for its answer holds no reference to its bytes
            # (nor one more object per request in flight for the garbage collector to walk).
            # Rebound, not deleted: compiled (mypyc), a coroutine's local cannot be deleted.
            wire = _SENT
            answer = await waiter
        except BaseException:
            conn.abort()
            raise
        return Answer(answer.status, answer.headers, answer.body, conn)

    def release(self, conn: Connection) -> None:
        """`conn`'s answer was read: hand it to a waiter, or park it, or close it."""
        if conn.state is not State.HELD:
            return
        if not conn.keep_alive or self.closed:
            self.discard(conn)
            return
        conn.state = State.IDLE
        if self._waiters and hand_over(self._waiters, conn):
            return
        conn.idle_since = self.now()
        self._idle.append(conn)

    def discard(self, conn: Connection) -> None:
        """Close `conn` and free its slot."""
        conn.close()
        self.lost(conn)

    # -- the slots ---------------------------------------------------------------------------

    async def _acquire(self, timeouts: Timeouts, deadline: float | None) -> Connection:
        if self.closed:
            raise httpx.ConnectError("the transport is closed")
        if self._loop is None:
            self._bind(asyncio.get_running_loop())
        while True:
            conn = self._take_idle()
            if conn is not None:
                return conn
            if self._slots < self.max_connections:
                self._slots += 1
                break
            handed = await self._wait(timeouts.get("pool"), deadline)
            if handed is None:
                break  # handed a slot: open a connection with it
            if handed.state is State.IDLE:
                handed.state = State.BUSY
                return handed
            self.discard(handed)  # closed while it was handed over; nothing was written
        return await self._connect(timeouts.get("connect"), deadline)

    def _take_idle(self) -> Connection | None:
        """The most recently used idle connection, BUSY now; those too old to trust are
        closed on the way. None if there is none."""
        idle = self._idle
        if idle:
            now = self.now()
            while idle:
                conn = idle.pop()
                if conn.state is State.IDLE and now - conn.idle_since < self.keepalive_expiry:
                    conn.state = State.BUSY
                    return conn
                self.discard(conn)
        return None

    async def _wait(self, timeout: float | None, deadline: float | None) -> Connection | None:
        """Queue until a connection is handed over, or a slot to open one (None)."""
        loop = self.loop
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        when = _earliest(loop.time(), timeout, deadline)
        timer = None if when is None else loop.call_at(when, _expire, waiter, timeout)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed something in the loop iteration it was cancelled in: pass it on.
                handed = waiter.result()
                if handed is None:
                    self._free_slot()
                else:
                    handed.state = State.HELD
                    self.release(handed)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def _connect(self, timeout: float | None, deadline: float | None) -> Connection:
        """Open a connection with the slot the caller holds; the slot is freed on failure."""
        loop = self.loop
        when = _earliest(loop.time(), timeout, deadline)
        made: list[Connection] = []

        def protocol() -> Connection:
            conn = self._connection(self, self._reader())
            made.append(conn)
            return conn

        try:
            async with timeout_at(when):
                transport, conn = await loop.create_connection(protocol, self.host, self.port)
                # uvloop may return before it has called `connection_made`.
                conn.connection_made(transport)
                if self._ssl is not None and conn.state is State.IDLE:
                    handshake = conn.start_tls(self._ssl, self.host)
                    if when is None:
                        async with timeout_at(loop.time() + _HANDSHAKE_TIMEOUT):
                            await handshake
                    else:
                        await handshake
            if conn.state is not State.IDLE or self.closed:
                # Closed by the server, or the pool by `aclose()`, before a byte was written.
                raise httpx.ConnectError(f"{self.origin} closed the connection before the request")
        except BaseException as exc:
            for made_conn in made:
                # Its socket is closed (if asyncio has not); it was not open, so the slot is
                # freed here, once.
                made_conn.abort()
            self._free_slot()
            if isinstance(exc, TimeoutError):
                raise caused_by(
                    httpx.ConnectTimeout(f"no connection to {self.origin} in time"), None
                )
            if isinstance(exc, OSError):  # refused, unreachable, DNS, TLS (ssl.SSLError)
                raise caused_by(
                    httpx.ConnectError(
                        f"could not connect to {self.origin}: {str(exc) or type(exc).__name__}"
                    ),
                    exc,
                )
            raise
        self._open.add(conn)
        conn.state = State.BUSY
        return conn

    def _free_slot(self) -> None:
        if not hand_over(self._waiters, None):  # the slot passes to a waiter, or is freed
            self._slots -= 1

    # -- what connections report ---------------------------------------------------------------

    def lost(self, conn: Connection) -> None:
        """`conn` is closed or closing: forget it and free its slot (once)."""
        if conn in self._open:
            self._open.discard(conn)
            if conn in self._idle:
                self._idle.remove(conn)
            self._free_slot()

    # -- the exchanges' timer --------------------------------------------------------------

    def watch(self, conn: Connection, when: float | None) -> None:
        """End `conn`'s exchange at `when` (event-loop time) unless its answer comes first.

        Exchanges mostly end in the order they began, long before their bounds: the one
        timer stays armed at the earliest bound and is moved only for an earlier one.
        """
        if when is None:
            return
        self._watched.add(conn)
        if when < self._watchdog_at:
            if self._watchdog is not None:
                self._watchdog.cancel()
            self._watchdog_at = when
            self._watchdog = self.loop.call_at(when, self._on_watchdog)

    def unwatch(self, conn: Connection) -> None:
        self._watched.discard(conn)

    def _on_watchdog(self) -> None:
        self._watchdog, self._watchdog_at = None, math.inf
        now = self.now()
        earliest = math.inf
        for conn in list(self._watched):
            when = conn.check(now)  # ends the exchange if a bound passed
            if when is None:
                self._watched.discard(conn)
            elif when < earliest:
                earliest = when
        if earliest < math.inf:
            self._watchdog_at = earliest
            self._watchdog = self.loop.call_at(earliest, self._on_watchdog)

    # -- closing -------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail, waiting ones are not sent."""
        if self.closed:
            return
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog, self._watchdog_at = None, math.inf
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(httpx.ConnectError("the transport was closed"))
        self._idle.clear()
        for conn in list(self._open):
            conn.abort(httpx.ReadError("the transport was closed during the exchange"))
        for _ in range(_CLOSE_ROUNDS):  # pragma: no branch - closed within the rounds
            if not self._open:
                break
            await asyncio.sleep(0)


def _expire(waiter: asyncio.Future[Connection | None], timeout: float | None) -> None:
    if not waiter.done():
        waiter.set_exception(
            httpx.PoolTimeout(
                f"no free connection within the pool timeout ({timeout}s) or the deadline"
            )
        )
