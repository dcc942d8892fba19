"""One keep-alive HTTP/1.1 connection, as an `asyncio.Protocol`: one exchange at a time.

A connection moves through `State`:

```
IDLE --exchange()--> BUSY --answer whole--> HELD --release()--> IDLE
  |                   |                       `---discard()---> CLOSED
  `--EOF, expiry------+--error, timeout, deadline, cancel----> CLOSED
```

`HELD` keeps the connection out of the pool until the caller has read the answer: an answer
that is not the one asked for (a stray, another message's uid) retires the connection instead
of handing it, with whatever is still in flight on it, to the next message.

Errors are httpx's classes, with the guarantee the retry policy rests on: once `exchange()`
has begun, a failure is never `ConnectError` or `ConnectTimeout` (the request may have reached
the server); before it, nothing was written.

Over TLS the transport is plain TCP and the connection carries its own `TLSWire` (see
`_tls_wire.py` for why: asyncio's TLS layer holds 256 KiB per connection): `start_tls()`
begins the handshake, `data_received` decrypts, `exchange()` encrypts, a graceful close sends
close_notify. The handshake's outcome is a future the pool awaits within the connect timeout.

On asyncio's own loops a connection is a `BufferedConnection`: the loop reads into the
pool's one buffer (`Pool.read_buffer`) and `buffer_updated` copies out what came. With a
plain `Protocol`, asyncio's selector loop allocates 256 KiB for every read and shrinks it to
what came: with glibc, often an mmap, an mremap and a munmap per answer, more CPU than the
rest of the exchange's system calls together (`strace -c` of the benchmark's fast client).
uvloop reads into a buffer of its own, and hands a plain `Protocol` its data for less.
"""

from __future__ import annotations

import asyncio
import enum
import ssl
from typing import TYPE_CHECKING, Any, Final

import httpx

from ._tls_wire import TLSWire
from ._wire import AnswerReader, AnswerTooLarge, MalformedAnswer, RawAnswer

if TYPE_CHECKING:
    from ._pool import Pool

__all__ = ["BufferedConnection", "Connection", "State"]

_CLOSED_NO_ANSWER: Final = "Server disconnected without sending a response."
_CLOSED_MID_ANSWER: Final = "Server disconnected before the response was complete."


class State(enum.Enum):
    IDLE = "idle"
    BUSY = "busy"
    HELD = "held"
    CLOSED = "closed"


class Connection(asyncio.Protocol):
    """One connection of a `Pool`. The pool hands it out; it owns its socket and timer."""

    def __init__(self, pool: Pool, reader: AnswerReader) -> None:
        self.pool = pool
        self.loop = pool.loop
        self._now = pool.now
        self.reader = reader
        self.state = State.IDLE
        self.idle_since = 0.0
        self.keep_alive = True
        self._transport: Any = None  # asyncio's or uvloop's transport: duck-typed
        self._waiter: asyncio.Future[RawAnswer] | None = None
        self._received = False
        self._writing = False
        self._read_timeout: float | None = None
        self._write_timeout: float | None = None
        self._read_by = 0.0
        self._write_by = 0.0
        self._deadline: float | None = None
        self._tls: TLSWire | None = None
        self._handshake: asyncio.Future[None] | None = None  # pending while shaking hands

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called by the event loop, and again by the pool once the connection is made (uvloop
        # may not have called it yet by then): only the first call counts. The pool counts
        # the connection as open once it is ready for a request (connected, TLS done).
        if self._transport is None:
            self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_handshake(
            exc or ConnectionResetError("the server closed the connection in the TLS handshake")
        )
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            try:
                answer = self.reader.eof() if exc is None else None
            except MalformedAnswer:
                answer = None  # cut short: framed, and the connection ended first
            if answer is not None:
                self._settle(answer)
            else:
                waiter.set_exception(self._lost_error(exc))
        self._close_state()
        self.pool.lost(self)

    def eof_received(self) -> bool | None:
        self.keep_alive = False
        return None  # let the transport close the socket; connection_lost follows

    def data_received(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls_received(data)
        else:
            self._plain_received(data)

    def _plain_received(self, data: bytes) -> None:
        if self.state is not State.BUSY:
            # Bytes nobody asked for: the connection can no longer be trusted.
            self.keep_alive = False
            if self.state is State.IDLE:
                self.abort()
            return
        self._received = True
        try:
            answer = self.reader.feed(data)
        except AnswerTooLarge as too_large:
            self.abort(httpx.RemoteProtocolError(f"the answer is too large: {too_large}"))
            return
        except MalformedAnswer as malformed:
            # (Its own name: compiled, one name is one type.)
            self.abort(httpx.RemoteProtocolError(f"the answer is not valid HTTP/1.1 ({malformed})"))
            return
        if answer is not None:
            self._settle(answer)
        elif self._read_timeout is not None:
            # The read timeout counts from the last data received.
            self._read_by = self._now() + self._read_timeout

    def _tls_received(self, data: bytes) -> None:
        tls = self._tls
        assert tls is not None
        try:
            data = tls.receive(data)
        except ssl.SSLError as exc:
            self._send(tls.outgoing())  # the alert saying why, where there is one
            if self._end_handshake(exc):
                self.abort()  # the pool's connect raises ConnectError naming `exc`
            else:
                self.abort(self._lost_error(exc))
            return
        self._send(tls.outgoing())
        if tls.handshaken:
            self._end_handshake(None)
        if data:
            self._plain_received(data)
        if tls.peer_closed and self.state is not State.CLOSED:
            # close_notify: no more bytes will come. An exchange in flight ends when the
            # socket does (`connection_lost` gives the reader its EOF); any other state
            # leaves the pool at once, so no request is written onto it meanwhile.
            self.keep_alive = False
            if self.state is State.BUSY:
                self._shut()
            else:
                self.pool.discard(self)

    def _send(self, data: bytes) -> None:
        if data and not self._transport.is_closing():
            self._transport.write(data)

    def pause_writing(self) -> None:
        self._writing = True
        if self.state is State.BUSY:
            # The write timeout may end the exchange before the read timeout would.
            self.pool.watch(self, self._bound())

    def resume_writing(self) -> None:
        self._writing = False
        if self._read_timeout is not None:
            # The read is timed from when the request is out, as httpx does.
            self._read_by = self._now() + self._read_timeout

    # -- one exchange ----------------------------------------------------------------------

    def exchange(
        self,
        data: bytes,
        method: bytes,
        timeouts: dict[str, float | None],
        deadline: float | None,
    ) -> asyncio.Future[RawAnswer]:
        """Write one request; the future of its answer. The connection is BUSY until then."""
        waiter: asyncio.Future[RawAnswer] = self.pool.new_future()
        self._waiter = waiter
        self.state = State.BUSY
        self._received = False
        self.reader.start(method)
        self._read_timeout = timeouts.get("read")
        self._write_timeout = timeouts.get("write")
        self._deadline = deadline
        if self._tls is not None:
            try:
                data = self._tls.encrypt(data)
            except ssl.SSLError as exc:
                self.abort(httpx.WriteError(f"TLS: {exc}"))
                return waiter
        self._transport.write(data)
        now = self._now()
        if self._read_timeout is not None:
            self._read_by = now + self._read_timeout
        if self._write_timeout is not None:
            self._write_by = now + self._write_timeout
        self.pool.watch(self, self._bound())
        return waiter

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> asyncio.Future[None]:
        """Begin the TLS handshake on the connected socket; the future of its completion.

        It fails with the `ssl.SSLError` that ended the handshake (a certificate the context
        does not trust names the verification failure), or with a `ConnectionError` if the
        socket closed first. The caller bounds the wait and aborts the connection on failure.
        """
        tls = self._tls = TLSWire(context, server_hostname)
        self._handshake = handshake = self.loop.create_future()
        self._send(tls.start())
        return handshake

    def _end_handshake(self, exc: Exception | None) -> bool:
        """End a handshake in progress: done (`exc` None) or failed with `exc`; whether
        there was one."""
        handshake, self._handshake = self._handshake, None
        if handshake is None:
            return False
        if not handshake.done():
            if exc is None:
                handshake.set_result(None)
            else:
                handshake.set_exception(exc)
        return True

    def _bound(self) -> float | None:
        """When this exchange ends unless its answer comes first: the deadline, or the write
        or read timeout (the one that applies now), whichever is earlier."""
        when = self._deadline
        if self._writing:
            if self._write_timeout is not None and (when is None or self._write_by < when):
                when = self._write_by
        elif self._read_timeout is not None and (when is None or self._read_by < when):
            when = self._read_by
        return when

    def check(self, now: float) -> float | None:
        """The pool's watchdog asks: end the exchange if a bound passed; else its bound
        (None: nothing left to watch). A read timeout counts from the last data received."""
        if self.state is not State.BUSY:
            return None
        if self._deadline is not None and now >= self._deadline:
            self.abort(httpx.ReadTimeout("the send's deadline passed during the exchange"))
            return None
        if self._writing:
            if self._write_timeout is not None and now >= self._write_by:
                self.abort(
                    httpx.WriteTimeout(f"the request was not written within {self._write_timeout}s")
                )
                return None
        elif self._read_timeout is not None and now >= self._read_by:
            self.abort(httpx.ReadTimeout(f"no answer data within {self._read_timeout}s"))
            return None
        return self._bound()

    def _settle(self, answer: RawAnswer) -> None:
        waiter = self._waiter
        self._waiter = None
        self.pool.unwatch(self)
        if not answer.keep_alive:
            self.keep_alive = False
        self.state = State.HELD
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)
        else:  # pragma: no cover - nobody waits (cancelled as the answer came)
            self.abort()

    def _lost_error(self, exc: Exception | None) -> httpx.TransportError:
        if exc is None:
            return httpx.RemoteProtocolError(
                _CLOSED_MID_ANSWER if self._received else _CLOSED_NO_ANSWER
            )
        text = str(exc) or type(exc).__name__
        if self._writing:  # the request was still going out
            return httpx.WriteError(text)
        return httpx.ReadError(text)

    # -- leaving -------------------------------------------------------------------------

    def release(self) -> None:
        """The answer was the one asked for: back to the pool for the next request."""
        self.pool.release(self)

    def discard(self) -> None:
        """Retire the connection (what came on it was not the answer asked for)."""
        self.pool.discard(self)

    def _close_state(self) -> None:
        self.state = State.CLOSED
        self.keep_alive = False
        self.pool.unwatch(self)

    def close(self) -> None:
        """Close gracefully (an idle connection, or one not to be reused)."""
        if self.state is not State.CLOSED:
            self._close_state()
            self._shut()

    def _shut(self) -> None:
        """Close the socket once what is written went out; over TLS, say close_notify first."""
        if self._tls is not None:
            self._end_handshake(ConnectionAbortedError("closed during the TLS handshake"))
            self._send(self._tls.close_notify())
        self._transport.close()

    def abort(self, error: httpx.TransportError | None = None) -> None:
        """Close at once, dropping anything unsent; an exchange in progress fails with
        `error` (or is cancelled, where nobody is left to tell)."""
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.cancel()
            else:
                waiter.set_exception(error)
        self._end_handshake(ConnectionAbortedError("aborted during the TLS handshake"))
        if self.state is not State.CLOSED:
            self._close_state()
            if self._transport is not None:  # None: the connect failed before there was one
                self._transport.abort()
            self.pool.lost(self)


class BufferedConnection(Connection, asyncio.BufferedProtocol):
    """A `Connection` that asyncio's own loops read into the pool's buffer (see the module's
    docstring)."""

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.pool.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        # Copied out at once: the buffer is the pool's, and the next read overwrites it.
        self.data_received(bytes(self.pool.read_buffer[:nbytes]))
