"""The default backend: requests as `httpx.Request`s, through the SDK's pool or the caller's.

Three ways in, one `exchange()`:
- the sender's own `PoolTransport` (the default): the deadline goes to the pool, which ends
  the exchange at it, knowing whether a byte was written;
- a transport or client of the caller's: the deadline is a wall-clock bound around the call,
  and httpcore's trace tells whether the request had started going out when it passed;
- while a mocking library has patched httpx or httpcore (respx, pytest-httpx), the sender's
  own pool steps aside for a plain httpx client, so the mock intercepts the request.

Answers are read raw (never decoded) and within `MAX_ANSWER_BODY`.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final

import httpx

from .. import _defaults as defaults
from .._tls import verifying_context
from . import Answer, Request, intercepted
from ._transport import DEADLINE_EXTENSION, PoolTransport

__all__ = ["HttpxBackend", "read_capped", "request_headers"]

#: Distinct (method, body length) pairs whose headers a backend keeps (a SendSMS body is at
#: most a few kilobytes: a sender's messages fit).
_HEADS_KEPT: Final = 4096


class _Deadlines:
    """One timer for the deadlines of every exchange through a caller's transport.

    An `asyncio.timeout_at` per send would create and cancel a timer handle per send; sends of
    one sender mostly end in the order they started, so a single timer, armed at the earliest
    deadline watched, is re-armed only when that deadline passes. A task past its deadline is
    cancelled, and `expired()` tells that cancellation from any other.
    """

    __slots__ = ("_expired", "_timer", "_watched", "_when")

    def __init__(self) -> None:
        self._watched: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._when = math.inf

    def watch(self, task: asyncio.Task[Any], deadline: float) -> None:
        self._watched[task] = deadline
        if deadline < self._when:
            self._arm(deadline)

    def unwatch(self, task: asyncio.Task[Any]) -> None:
        self._watched.pop(task, None)
        # A cancellation the transport swallowed is undone too.
        self.expired(task)

    def expired(self, task: asyncio.Task[Any]) -> bool:
        """Whether `task` was cancelled by its deadline (then that cancellation is undone)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        if sys.version_info >= (3, 11):
            task.uncancel()
        return True

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._when = when
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer, self._when = None, math.inf
        now = asyncio.get_running_loop().time()
        for task, deadline in list(self._watched.items()):
            if deadline <= now:
                del self._watched[task]
                self._expired.add(task)
                task.cancel()
        if self._watched:
            self._arm(min(self._watched.values()))


class _SendSMSRequest(httpx.Request):
    """httpx's request, its repr without the query: a GET's carries the password, and the
    request is a local of every frame its exchange awaits in (httpx's too), which a
    traceback printed with its locals shows (Sentry's default)."""

    @classmethod
    def build(
        cls,
        method: str,
        url: httpx.URL,
        headers: httpx.Headers,
        body: bytes,
        extensions: dict[str, Any],
    ) -> _SendSMSRequest:
        """What `httpx.Request(method, url, headers=..., content=body)` makes, `headers`
        being the ones it would end up with (`request_headers()`): the request copies them."""
        request = cls(
            method, url, headers=headers, stream=httpx.ByteStream(body), extensions=extensions
        )
        request.read()  # `content` is read, as httpx's own way leaves it
        return request

    def __repr__(self) -> str:
        url = self.url
        query = "?<query>" if url.query else ""
        return (
            f"<Request({self.method!r}, '{url.scheme}://{url.netloc.decode()}{url.path}{query}')>"
        )


def request_headers(
    host: bytes, fixed: list[tuple[bytes, bytes]], method: str, length: int
) -> httpx.Headers:
    """The headers httpx gives a request of `method` with the `fixed` ones and a body of
    `length` bytes: the Host first, then `fixed`, then the Content-Length where a body needs
    one (a POST without a body: `Content-Length: 0`, after the Host)."""
    if length:
        return httpx.Headers([(b"Host", host), *fixed, (b"Content-Length", b"%d" % length)])
    if method == "POST":  # (httpx's rule names PUT and PATCH too: the SDK sends neither)
        return httpx.Headers([(b"Host", host), (b"Content-Length", b"0"), *fixed])
    return httpx.Headers([(b"Host", host), *fixed])


class _Progress:
    """httpcore's trace callback: did the request start going out?"""

    __slots__ = ("traced", "written")

    def __init__(self) -> None:
        self.traced = False
        self.written = False

    async def __call__(self, name: str, info: Mapping[str, Any]) -> None:
        self.traced = True
        if name.endswith("send_request_headers.started"):
            self.written = True


async def read_capped(response: httpx.Response, cap: int = defaults.MAX_ANSWER_BODY) -> bytes:
    """The raw body of `response`, refused past `cap` bytes (the rest is never read).

    Raises httpx.RemoteProtocolError past the cap; closes the response in every case.
    """
    try:
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise httpx.RemoteProtocolError(
                f"the answer announces {length} bytes; the cap is {cap}"
            )
        try:
            body = response.content  # read already (a MockTransport's answer)
        except httpx.ResponseNotRead:
            pass
        else:
            if len(body) > cap:
                raise httpx.RemoteProtocolError(f"the answer's body is past {cap} bytes")
            return body
        chunks = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > cap:
                raise httpx.RemoteProtocolError(f"the answer's body is past {cap} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await response.aclose()


class HttpxBackend:
    """`backend="httpx"`: see the module's docstring.

    Args:
        base_url: the gateway's origin (and path prefix).
        headers: the fixed headers of every request.
        timeout: connect, read, write and pool timeouts of one request.
        max_connections: the pool's size (the sender's own pool only).
        ssl_context: TLS settings of the sender's own pool.
        transport, client: the caller's, instead of the sender's own pool.
    """

    name = "httpx"

    def __init__(
        self,
        base_url: str,
        *,
        headers: list[tuple[str, str]],
        timeout: httpx.Timeout,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._origin = httpx.URL(base_url)
        self._last_target = b""
        self._last_url = self._origin
        self._header_pairs = headers
        self._fixed = httpx.Headers(headers).raw  # (names and values as bytes, as httpx has them)
        # Each request's headers, by method and body length (httpx works them out anew for
        # each request: about 10 µs a message, most of this backend's own cost past the pool).
        self._heads: dict[tuple[str, int], httpx.Headers] = {}
        self._timeout = timeout
        self._timeouts: dict[str, float] = {
            k: float(v) for k, v in timeout.as_dict().items() if v is not None
        }
        self._longest = max(self._timeouts.values())
        self._max_connections = max_connections
        self._ssl_context = ssl_context
        self._owns_client = client is None
        self._send: Callable[[httpx.Request], Any]
        self._pool: PoolTransport | None = None
        if client is not None:
            self.client = client
            self._send = self._send_by_client
        else:
            if transport is None:
                transport = self._pool = PoolTransport(
                    self._origin,
                    max_connections=max_connections,
                    keepalive_expiry=defaults.DEFAULT_KEEPALIVE_EXPIRY,
                    ssl_context=ssl_context,
                )
            self.client = httpx.AsyncClient(transport=transport, timeout=timeout)
            # The client's own layer (auth, redirects, cookies, event hooks, its request log
            # with the URL) does nothing for a SendSMS call: the request goes to the transport
            # (the sender's own pool: to `PoolTransport.exchange`).
            self._send = transport.handle_async_request
        self._stand_in: HttpxBackend | None = None
        self._deadlines = _Deadlines()

    def url(self, target: bytes) -> httpx.URL:
        """The URL of `target` on the gateway (a POST's is the same for every message, and
        building an `httpx.URL` costs tens of microseconds: it is kept)."""
        if target == self._last_target:
            return self._last_url
        url = httpx.URL(self._origin, raw_path=target)
        if b"?" not in target:
            self._last_target, self._last_url = target, url
        return url

    def head(self, method: str, length: int) -> httpx.Headers:
        """The headers of a request of `method` with a body of `length` bytes (kept: the
        requests of a sender differ in their length at most)."""
        key = (method, length)
        headers = self._heads.get(key)
        if headers is None:
            if len(self._heads) >= _HEADS_KEPT:
                self._heads.clear()
            headers = request_headers(self._origin.netloc, self._fixed, method, length)
            self._heads[key] = headers
        return headers

    async def _send_by_client(self, request: httpx.Request) -> httpx.Response:
        return await self.client.send(request, stream=True)

    def _request(
        self, request: Request, timeouts: dict[str, Any], deadline: float
    ) -> _SendSMSRequest:
        return _SendSMSRequest.build(
            request.method,
            self.url(request.target),
            self.head(request.method, len(request.body)),
            request.body,
            {"timeout": timeouts, DEADLINE_EXTENSION: deadline},
        )

    async def exchange(self, request: Request, deadline: float) -> Answer:
        # (No local of this frame holds the body: it carries the password.)
        if self._pool is not None:
            if intercepted():
                return await self._mocked().exchange(request, deadline)
            # The pool ends the exchange at the deadline itself, and its answer comes back as
            # it is: an httpx.Response of it would be read and dropped.
            return await self._pool.exchange(self._request(request, self._timeouts, deadline))
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining >= self._longest:
            timeouts: dict[str, Any] = self._timeouts
        else:
            timeouts = {k: max(0.0, min(v, remaining)) for k, v in self._timeouts.items()}
        http_request = self._request(request, timeouts, deadline)
        progress = _Progress()
        http_request.extensions["trace"] = progress
        task = asyncio.current_task()
        assert task is not None
        self._deadlines.watch(task, deadline)
        try:
            response = await self._send(http_request)
            body = await read_capped(response)
        except asyncio.CancelledError:
            if not self._deadlines.expired(task):
                raise
            if progress.traced and not progress.written:
                raise httpx.PoolTimeout("the send's deadline passed before the request") from None
            raise httpx.ReadTimeout("the send's deadline passed during the exchange") from None
        finally:
            self._deadlines.unwatch(task)
        return Answer(response.status_code, response.headers.raw, body)

    def _mocked(self) -> HttpxBackend:
        """A stand-in on httpx's own pool, which the active mock intercepts."""
        if self._stand_in is None:
            transport = httpx.AsyncHTTPTransport(
                verify=verifying_context(self._ssl_context),
                limits=httpx.Limits(max_connections=self._max_connections),
            )
            self._stand_in = HttpxBackend(
                str(self._origin),
                headers=self._header_pairs,  # (as given: `multi_items()` lowercases names)
                timeout=self._timeout,
                max_connections=self._max_connections,
                client=httpx.AsyncClient(transport=transport, timeout=self._timeout),
            )
            self._stand_in._owns_client = True
        return self._stand_in

    async def aclose(self) -> None:
        if self._stand_in is not None:
            await self._stand_in.aclose()
        if self._owns_client:
            await self.client.aclose()
