"""The fast backend: a lean HTTP/1.1 transport for one origin, on asyncio protocols.

`FastTransport` is an `httpx.AsyncBaseTransport`, so the SDK keeps speaking httpx (requests,
responses, exceptions) while the bytes move through `asyncio.Protocol` callbacks instead of
httpcore's pool. What it leaves out is what a SendSMS exchange never needs: proxies, HTTP/2,
streaming bodies (each response is read whole before it is returned), more than one origin.

The parse of the response is httptools' (the `fast` extra) when it is installed, else h11's
(which httpx already depends on).

Errors follow httpx's classes, with one guarantee the sender's retry policy is built on:
`httpx.ConnectError` and `httpx.ConnectTimeout` are raised only while not one byte of the
request has been written (connection refused, DNS failure, TLS handshake or certificate
failure). Once writing has begun, a lost connection is `httpx.RemoteProtocolError`,
`httpx.ReadError` or `httpx.WriteError`, and a timeout is `httpx.ReadTimeout` or
`httpx.WriteTimeout`: the server may have acted on the request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, NamedTuple

import h11
import httpx

from . import _defaults as defaults
from ._exceptions import ConfigurationError
from ._tls import verifying_context

try:
    import httptools

    HAVE_HTTPTOOLS = True
except ImportError:  # pragma: no cover - depends on the installed extras
    HAVE_HTTPTOOLS = False

__all__ = ["FastTransport", "RequestTemplate"]

_Parser = Literal["auto", "httptools", "h11"]

#: h11's limit on a response head, raised from its 16 KiB default so that large header
#: blocks are read (the bodies are not subject to it).
_H11_MAX_HEAD: Final = 64 * 1024
#: RFC 9110 token (method, header name), and what a header value must not hold.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(r"[\r\n\0]|^[ \t]|[ \t]$")
_DEFAULT_PORTS: Final = {b"http": 80, b"https": 443}
_CONTENT_ENCODING: Final = b"content-encoding"
_CLOSED_NO_RESPONSE: Final = "Server disconnected without sending a response."
_CLOSED_MID_RESPONSE: Final = "Server disconnected before the response was complete."


class RequestTemplate(NamedTuple):
    """The fixed part of many requests (`FastTransport.template()`), encoded once."""

    method: bytes
    headers: list[tuple[bytes, bytes]]
    block: bytes


class FastTransport(httpx.AsyncBaseTransport):
    """An HTTP/1.1 transport for one origin, built for many small requests in flight.

    Connections are kept alive and reused, most recently used first; at most
    `max_connections` are open at once, and requests beyond that wait for one (at most the
    request's pool timeout). Idle connections are not reused after `keepalive_expiry`
    seconds, so a request is never written onto a connection the server is about to close.
    TLS certificates are always verified.

    Timeouts come from each request's `extensions["timeout"]` (as httpx sets them: connect,
    read, write and pool, in seconds, None for none); a request without them gets the SDK's
    default timeouts. The read timeout applies to each wait for data, as in httpx.

    Args:
        base_url: the origin served: scheme (http or https), host and port. A path is ignored.
        max_connections: connections open at most.
        keepalive_expiry: seconds an idle connection may be reused.
        ssl_context: the TLS settings for https (e.g. a context that trusts a private CA);
            by default `ssl.create_default_context()` over certifi's CA bundle (as httpx
            uses). It must verify certificates and host names.
        parser: "httptools", "h11", or "auto" (httptools when installed, else h11).

    Raises:
        ConfigurationError (a ValueError): base_url is not an absolute http(s) URL, an option
            is out of range, httptools was asked for and is not installed, or `ssl_context`
            does not verify.
    """

    def __init__(
        self,
        base_url: str | httpx.URL,
        *,
        max_connections: int = defaults.DEFAULT_MAX_CONCURRENCY,
        keepalive_expiry: float = defaults.DEFAULT_KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
        parser: _Parser = "auto",
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigurationError(
                f"base_url: expected an absolute http(s) URL, got {str(url)!r}"
            )
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise ConfigurationError(
                f"max_connections: expected an int >= 1, got {max_connections!r}"
            )
        if max_connections < 1:
            raise ConfigurationError(
                f"max_connections: expected an int >= 1, got {max_connections!r}"
            )
        if not keepalive_expiry >= 0:
            raise ConfigurationError(
                f"keepalive_expiry: expected seconds >= 0, got {keepalive_expiry!r}"
            )
        if parser == "auto":
            parser = "httptools" if HAVE_HTTPTOOLS else "h11"
        if parser == "httptools" and not HAVE_HTTPTOOLS:  # pragma: no cover - extras
            raise ConfigurationError(
                "parser: httptools is not installed (pip install haorui-async[fast])"
            )
        if parser not in ("httptools", "h11"):
            raise ConfigurationError(
                f"parser: expected 'auto', 'httptools' or 'h11', got {parser!r}"
            )
        self.parser: str = parser
        self._protocol: type[_Connection] = (
            _HttptoolsConnection if parser == "httptools" else _H11Connection
        )

        checked_context = verifying_context(ssl_context) if ssl_context is not None else None
        self._ssl: ssl.SSLContext | None = None
        if url.scheme == "https":
            self._ssl = checked_context or verifying_context()
        self._host = url.host
        self._port = url.port or _DEFAULT_PORTS[url.raw_scheme]
        # What `request.url` must show to be served here (httpx leaves a default port None).
        self._origin = (url.raw_scheme, url.raw_host, url.port)
        self._netloc = url.netloc
        self.origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        self.max_connections = max_connections
        self.keepalive_expiry = float(keepalive_expiry)

        self._idle: list[_Connection] = []  # a stack: the most recently used on top
        self._connections: set[_Connection] = set()  # those holding a slot
        self._sockets: set[_Connection] = set()  # those whose socket is not yet closed
        self._slots_taken = 0  # connections open or being opened
        self._waiters: collections.deque[asyncio.Future[_Connection | None]] = collections.deque()
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<FastTransport origin={self.origin!r} parser={self.parser!r} "
            f"max_connections={self.max_connections} open={len(self._connections)}>"
        )

    # -- the exchange ---------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` and return its response, body read.

        Raises:
            httpx.UnsupportedProtocol: the request is for another origin than this transport's.
            httpx.LocalProtocolError: the request cannot be written as HTTP/1.1.
            httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout: nothing was sent.
            httpx.WriteTimeout, httpx.WriteError, httpx.ReadTimeout, httpx.ReadError,
            httpx.RemoteProtocolError: the request may have reached the server.
            RuntimeError: the transport is closed.
        """
        url = request.url
        if (url.raw_scheme, url.raw_host, url.port) != self._origin:
            raise httpx.UnsupportedProtocol(
                f"this FastTransport serves {self.origin} only, not "
                f"{url.scheme}://{url.netloc.decode('ascii')}",
                request=request,
            )
        if self._closed:
            raise RuntimeError("this FastTransport is closed")
        timeouts: Any = request.extensions.get("timeout") or _DEFAULT_TIMEOUTS
        try:
            body = request.content
            chunked = False
        except httpx.RequestNotRead:
            body = await request.aread()
            chunked = _is_chunked(request.headers)

        conn = await self._acquire(request, timeouts)
        try:
            data = conn.serialize(request, body, chunked)
        except BaseException:
            self._release(conn)
            raise
        status, headers, content, encoded = await self._exchange(conn, data, request, timeouts)
        response = httpx.Response(status, headers=headers, stream=httpx.ByteStream(content))
        if not encoded:
            # The body is already whole and needs no decoding: setting it spares httpx's
            # read machinery (about 8 µs a response); `aread()` returns it as it stands.
            response._content = content
        return response

    async def _exchange(
        self, conn: _Connection, data: bytes, request: httpx.Request | None, timeouts: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """Write `data` on `conn` and wait for the whole response."""
        waiter = conn.start(request, data, timeouts.get("read"))
        try:
            if conn.write_paused:
                await conn.drain(timeouts.get("write"))
            return await waiter
        except BaseException:
            # (The other branch is a race: cancelled in the loop iteration the response came.)
            if (
                not waiter.done() or waiter.cancelled() or waiter.exception() is not None
            ):  # pragma: no branch
                # Cancelled or failed mid-exchange: the connection is in an unknown state.
                # (Where the response was whole, the connection has already moved on.)
                conn.abort()
            raise

    # -- the lean path, without httpx's models ----------------------------------------------

    def template(self, method: str, headers: Sequence[tuple[str, str]]) -> RequestTemplate:
        """The fixed part of many requests for `send_raw()`: method and headers, Host added.

        Raises:
            httpx.LocalProtocolError: a header name or value contains CR or LF, or the
                headers frame the body themselves (Content-Length, Transfer-Encoding).
        """
        if not _TOKEN.fullmatch(method):
            raise httpx.LocalProtocolError(f"not an HTTP method: {method!r}")
        raw = [(b"Host", self._netloc)]
        for name, value in headers:
            if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
                raise httpx.LocalProtocolError(f"not a valid header: {name!r}")
            if name.lower() in ("host", "content-length", "transfer-encoding"):
                raise httpx.LocalProtocolError(f"{name}: set by the transport, not the template")
            raw.append((name.encode("ascii"), value.encode("latin-1")))
        block = b"".join(b"%b: %b\r\n" % pair for pair in raw)
        return RequestTemplate(method.upper().encode("ascii"), raw, block)

    async def send_raw(
        self,
        template: RequestTemplate,
        target: bytes,
        body: bytes = b"",
        timeouts: Mapping[str, float | None] | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request without building httpx's Request and Response (about 15 µs less).

        `target` is the path and query, percent-encoded (`httpx.URL.raw_path`); the body
        goes with a Content-Length. Returns the status, the raw headers and the body, read
        whole and decoded as its Content-Encoding says. Timeouts are as in
        `extensions["timeout"]`.

        Raises:
            httpx.LocalProtocolError: `target` contains a space, CR or LF.
            Otherwise, as `handle_async_request()`.
        """
        if b" " in target or b"\r" in target or b"\n" in target or not target:
            raise httpx.LocalProtocolError(f"not a request target: {target!r}")
        if self._closed:
            raise RuntimeError("this FastTransport is closed")
        if timeouts is None:
            timeouts = _DEFAULT_TIMEOUTS
        conn = await self._acquire(None, timeouts)
        data = conn.encode(template, target, body)
        status, headers, content, encoded = await self._exchange(conn, data, None, timeouts)
        if encoded:
            # Rare (the request asks for no encoding): httpx's decoders do it.
            content = httpx.Response(status, headers=headers, content=content).content
        return status, headers, content

    # -- the pool -------------------------------------------------------------------------

    async def _acquire(self, request: httpx.Request | None, timeouts: Any) -> _Connection:
        idle = self._idle
        while True:
            if idle:
                now = asyncio.get_running_loop().time()
                while idle:
                    conn = idle.pop()
                    if now - conn.idle_since < self.keepalive_expiry and conn.usable:
                        return conn
                    self._drop(conn)
            if self._slots_taken < self.max_connections:
                self._slots_taken += 1
                break
            handed = await self._wait_for_connection(request, timeouts.get("pool"))
            if handed is None:
                break  # a slot was handed over: open a connection with it
            if handed.usable:  # pragma: no branch - lost while being handed over: a race
                return handed
            # Lost while it was being handed over: nothing was written; wait again.
            self._drop(handed)  # pragma: no cover
        try:
            return await self._connect(request, timeouts.get("connect"))
        except BaseException:
            self._give_back_slot()
            raise

    async def _wait_for_connection(
        self, request: httpx.Request | None, timeout: float | None
    ) -> _Connection | None:
        """Queue until a connection is handed over, or a slot to open one is (None)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[_Connection | None] = loop.create_future()
        self._waiters.append(waiter)
        timer = None
        if timeout is not None:
            timer = loop.call_later(timeout, _expire_waiter, waiter, request, timeout)
        try:
            return await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # Handed something in the loop iteration it was cancelled in: pass it on.
                self._hand_back(waiter.result())  # pragma: no cover - a race
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _hand_back(self, conn: _Connection | None) -> None:  # pragma: no cover - see above
        if conn is None:
            self._give_back_slot()
        else:
            self._release(conn)

    async def _connect(self, request: httpx.Request | None, timeout: float | None) -> _Connection:
        if self._closed:  # pragma: no cover - closed while a streamed body was read: a race
            raise httpx.ConnectError("the transport was closed", request=request)
        loop = asyncio.get_running_loop()
        protocol = self._protocol
        coro = loop.create_connection(
            lambda: protocol(self, loop),
            self._host,
            self._port,
            ssl=self._ssl,
            server_hostname=self._host if self._ssl is not None else None,
            ssl_handshake_timeout=timeout if self._ssl is not None else None,
        )
        try:
            if timeout is None:
                _, conn = await coro
            else:
                _, conn = await asyncio.wait_for(coro, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise httpx.ConnectTimeout(
                f"no connection to {self.origin} within {timeout}s", request=request
            ) from None
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise httpx.ConnectError(
                f"could not connect to {self.origin}: {str(exc) or type(exc).__name__}",
                request=request,
            ) from exc
        if not conn.usable:  # pragma: no cover - closed as soon as made: a race
            # Closed by the server, or by `aclose()`, before a byte was written.
            conn.abort()
            raise httpx.ConnectError(
                f"{self.origin} closed the connection before the request was written",
                request=request,
            )
        self._connections.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        """`conn` finished an exchange and may carry another: hand it on or park it."""
        if not conn.usable:
            self._drop(conn)
            return
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = conn.loop.time()
        self._idle.append(conn)

    def _drop(self, conn: _Connection) -> None:
        """Close `conn` (if it is not already) and free its slot."""
        conn.close()
        self._forget(conn)

    def _forget(self, conn: _Connection) -> None:
        if conn in self._connections:
            self._connections.discard(conn)
            self._give_back_slot()

    def _give_back_slot(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                # The slot passes to the waiter, which opens a connection with it.
                waiter.set_result(None)
                return
        self._slots_taken -= 1

    def _connection_lost(self, conn: _Connection) -> None:
        """Called by `conn` once its socket is gone."""
        self._sockets.discard(conn)
        if conn.idle_since >= 0.0:
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)
        self._forget(conn)

    # -- closing --------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail, waiting ones are not sent."""
        if self._closed:
            return
        self._closed = True
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(
                    httpx.ConnectError("the transport was closed before a connection was free")
                )
        self._idle.clear()
        for conn in list(self._sockets):
            conn.abort(httpx.ReadError("the transport was closed during the exchange"))
        # Let the transports' close callbacks run, so no socket outlives this call.
        for _ in range(_CLOSE_ROUNDS):  # pragma: no branch - closed within the rounds
            if not self._sockets:
                break
            await asyncio.sleep(0)


#: Loop iterations `aclose()` gives the sockets to close (TLS takes two or three).
_CLOSE_ROUNDS: Final = 10

_DEFAULT_TIMEOUTS: Final = {
    "connect": defaults.DEFAULT_CONNECT_TIMEOUT,
    "read": defaults.DEFAULT_READ_TIMEOUT,
    "write": defaults.DEFAULT_WRITE_TIMEOUT,
    "pool": defaults.DEFAULT_POOL_TIMEOUT,
}


def _expire_waiter(
    waiter: asyncio.Future[_Connection | None], request: httpx.Request | None, timeout: float
) -> None:
    if not waiter.done():  # pragma: no branch - else handed over as the timer fired
        waiter.set_exception(
            httpx.PoolTimeout(f"no free connection within {timeout}s", request=request)
        )


def _is_chunked(headers: httpx.Headers) -> bool:
    """Whether a request built from a stream announces a chunked body."""
    return "content-length" not in headers and "chunked" in headers.get("transfer-encoding", "")


class _Connection(asyncio.Protocol):
    """One keep-alive connection: writes a request, collects the response it answers with.

    The transport owns the pool bookkeeping; the connection owns its socket, its timers and
    the future of the exchange in progress. `idle_since` is < 0 while it is busy.
    """

    def __init__(self, pool: FastTransport, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.usable = False
        self.write_paused = False
        self.idle_since = -1.0
        self._waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]] | None
        self._waiter = None
        self._request: httpx.Request | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._received = False
        self._read_timeout: float | None = None
        self._deadline = 0.0
        # One timer per connection, re-armed lazily, instead of one per request.
        self._timer: asyncio.TimerHandle | None = None
        self._reset_response()

    def _reset_response(self) -> None:
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._encoded = False

    # -- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.usable = True
        self.pool._sockets.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiter = self._waiter
        if waiter is not None and not waiter.done() and not self._eof_completes_response():
            request = self._request
            error: httpx.TransportError
            if exc is None:
                text = _CLOSED_MID_RESPONSE if self._received else _CLOSED_NO_RESPONSE
                error = httpx.RemoteProtocolError(text, request=request)
            elif self.write_paused:  # the request was still going out
                error = httpx.WriteError(str(exc) or type(exc).__name__, request=request)
            else:
                error = httpx.ReadError(str(exc) or type(exc).__name__, request=request)
            waiter.set_exception(error)
        self._waiter = None
        if self._drain_waiter is not None and not self._drain_waiter.done():
            self._drain_waiter.set_result(None)
        self.pool._connection_lost(self)

    def eof_received(self) -> bool | None:
        self.usable = False
        return None  # let the transport close the socket; connection_lost follows

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drain_waiter = self._drain_waiter
        if drain_waiter is not None and not drain_waiter.done():  # pragma: no branch
            drain_waiter.set_result(None)

    # -- one exchange ------------------------------------------------------------------------

    def serialize(self, request: httpx.Request, body: bytes, chunked: bool) -> bytes:
        """The request's bytes on the wire, `body` framed in one chunk where `chunked`.

        Raises httpx.LocalProtocolError.
        """
        raise NotImplementedError

    def encode(self, template: RequestTemplate, target: bytes, body: bytes) -> bytes:
        """The bytes of a `send_raw()` request."""
        raise NotImplementedError

    def start(
        self, request: httpx.Request | None, data: bytes, read_timeout: float | None
    ) -> asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes, bool]]:
        """Write `data` and return the future of the response."""
        loop = self.loop
        waiter = loop.create_future()
        self._waiter = waiter
        self._request = request
        self._received = False
        self.idle_since = -1.0
        assert self.transport is not None
        self.transport.write(data)
        self._read_timeout = read_timeout
        if read_timeout is not None:
            deadline = loop.time() + read_timeout
            self._deadline = deadline
            timer = self._timer
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer = loop.call_at(deadline, self._on_timer)
        return waiter

    async def drain(self, timeout: float | None) -> None:
        """Wait until the socket took the request (flow control), at most `timeout` seconds."""
        drain_waiter: asyncio.Future[None] = self.loop.create_future()
        self._drain_waiter = drain_waiter
        timer = None
        if timeout is not None:
            timer = self.loop.call_later(timeout, self._on_write_timeout, drain_waiter, timeout)
        try:
            await drain_waiter
        finally:
            self._drain_waiter = None
            if timer is not None:
                timer.cancel()
        # Started again once the request is out, as httpx measures a read.
        if self._read_timeout is not None:
            self._deadline = self.loop.time() + self._read_timeout

    def _on_write_timeout(self, drain_waiter: asyncio.Future[None], timeout: float) -> None:
        if not drain_waiter.done():  # pragma: no branch - else drained as the timer fired
            drain_waiter.set_exception(
                httpx.WriteTimeout(f"the request was not written within {timeout}s")
            )

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done() or self._read_timeout is None:
            return
        now = self.loop.time()
        if self._drain_waiter is not None:
            # Still writing: the read has not begun.
            self._timer = self.loop.call_at(now + self._read_timeout, self._on_timer)
            return
        if now < self._deadline:
            # Data came in since the timer was set: wait the rest.
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        self.abort(
            httpx.ReadTimeout(
                f"no response data within {self._read_timeout}s", request=self._request
            )
        )

    def _received_data(self) -> None:
        self._received = True
        if self._read_timeout is not None:
            self._deadline = self.loop.time() + self._read_timeout

    def _complete(self, keep_alive: bool) -> None:
        """The response is whole: resolve the exchange, and pass the connection on."""
        waiter = self._waiter
        result = (self._status, self._headers, b"".join(self._body), self._encoded)
        self._reset_response()
        self._waiter = None
        self._request = None
        if not keep_alive:
            self.usable = False
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
            self.pool._release(self)
        else:
            self.abort()

    def _protocol_error(self, exc: Exception) -> None:
        self.abort(
            httpx.RemoteProtocolError(
                f"the server's response is not valid HTTP/1.1 ({exc})", request=self._request
            )
        )

    def _eof_completes_response(self) -> bool:
        """At EOF: complete a response whose body runs to the end of the connection."""
        raise NotImplementedError

    def _unexpected_data(self) -> None:
        # Bytes nobody asked for: the connection can no longer be trusted.
        self.abort()

    # -- closing -------------------------------------------------------------------------------

    def close(self) -> None:
        """Close gracefully (an idle connection)."""
        self.usable = False
        assert self.transport is not None
        self.transport.close()

    def abort(self, error: httpx.TransportError | None = None) -> None:
        """Close at once, dropping anything unsent; the pool forgets the connection.

        An exchange in progress fails with `error`, or is cancelled where nobody awaits it.
        """
        self.usable = False
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.cancel()
            else:
                waiter.set_exception(error)
        assert self.transport is not None
        self.transport.abort()
        self.pool._forget(self)


class _HttptoolsConnection(_Connection):
    """A connection whose responses are parsed by httptools (llhttp)."""

    def __init__(self, pool: FastTransport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(pool, loop)
        self._parser = httptools.HttpResponseParser(self)
        self._headers_done = False

    def serialize(self, request: httpx.Request, body: bytes, chunked: bool) -> bytes:
        if chunked:
            body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
        parts = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        raw = request.headers.raw
        for name, value in raw:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        head = b"".join(parts)
        # One CRLF per line and no other CR or LF: no header can smuggle in another.
        lines = len(raw) + 2
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            raise httpx.LocalProtocolError(
                "a header name or value, or the URL, contains CR or LF", request=request
            )
        return head + body if body else head

    def encode(self, template: RequestTemplate, target: bytes, body: bytes) -> bytes:
        return b"%b %b HTTP/1.1\r\n%bContent-Length: %d\r\n\r\n%b" % (
            template.method,
            target,
            template.block,
            len(body),
            body,
        )

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._unexpected_data()
            return
        self._received_data()
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._protocol_error(exc)

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        if len(name) == 16 and name.lower() == _CONTENT_ENCODING:
            self._encoded = True

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._headers_done = False
        if self._status < 200:
            # An interim answer (100 Continue): the real one follows.
            self._reset_response()
            return
        self._complete(self._parser.should_keep_alive())

    def _eof_completes_response(self) -> bool:
        if not self._headers_done or self._status < 200:
            return False
        names = {name.lower() for name, _ in self._headers}
        if b"content-length" in names or b"transfer-encoding" in names:
            return False  # framed, and cut short
        self._headers_done = False
        self._complete(False)
        return True


class _H11Connection(_Connection):
    """A connection whose requests and responses go through h11 (pure Python)."""

    def __init__(self, pool: FastTransport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(pool, loop)
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_H11_MAX_HEAD)

    def serialize(self, request: httpx.Request, body: bytes, chunked: bool) -> bytes:
        # h11 frames the body as the headers announce.
        h11_conn = self._h11
        try:
            parts = [
                h11_conn.send(
                    h11.Request(
                        method=request.method,
                        target=request.url.raw_path,
                        headers=request.headers.raw,
                    )
                )
            ]
            if body:
                parts.append(h11_conn.send(h11.Data(data=body)))
            parts.append(h11_conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as exc:
            self.usable = False
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
        return b"".join(parts)

    def encode(self, template: RequestTemplate, target: bytes, body: bytes) -> bytes:
        h11_conn = self._h11
        headers = [*template.headers, (b"Content-Length", b"%d" % len(body))]
        parts = [h11_conn.send(h11.Request(method=template.method, target=target, headers=headers))]
        if body:
            parts.append(h11_conn.send(h11.Data(data=body)))
        parts.append(h11_conn.send(h11.EndOfMessage()))
        return b"".join(parts)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            self._unexpected_data()
            return
        self._received_data()
        self._h11.receive_data(data)
        self._next_events()

    def _eof_completes_response(self) -> bool:
        if self._h11.their_state is not h11.SEND_BODY:
            return False
        self._h11.receive_data(b"")
        return self._next_events()

    def _next_events(self) -> bool:
        """Read what h11 has parsed; True once the response is whole."""
        h11_conn = self._h11
        try:
            while True:
                event = h11_conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return False
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._headers = list(event.headers.raw_items())
                    self._encoded = any(
                        name.lower() == _CONTENT_ENCODING for name, _ in self._headers
                    )
                elif isinstance(event, h11.Data):
                    self._body.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    keep_alive = (
                        h11_conn.our_state is h11.DONE
                        and h11_conn.their_state is h11.DONE
                        # Bytes beyond the response answer nothing: retire the connection.
                        and not h11_conn.trailing_data[0]
                    )
                    if keep_alive:
                        h11_conn.start_next_cycle()
                    self._complete(keep_alive)
                    return True
                elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - see EOF
                    return False
                # h11.InformationalResponse: the real response follows.
        except h11.RemoteProtocolError as exc:
            self._protocol_error(exc)
            return True
