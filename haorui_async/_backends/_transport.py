"""`PoolTransport`: the SDK's connection pool behind httpx's transport interface.

The default backend is an `httpx.AsyncClient` over this transport rather than httpcore's pool:
it costs a fraction of httpcore's CPU per request, survives cancellation at any await, and
bounds what it reads (docs/backends.md). Responses come back with their body read (within the
caps) and not decoded; closing the response hands the connection back to the pool.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any, Final, Literal

import httpx

from .. import _defaults as defaults
from .._exceptions import ConfigurationError
from .._tls import verifying_context
from ._pool import Answer, Pool
from ._wire import (
    FRAMING,
    AnswerReader,
    H11Reader,
    PlainReader,
    Wire,
    check_method,
    encode_request,
    header_block,
)

__all__ = ["DEADLINE_EXTENSION", "PoolTransport", "reader_factory"]

#: The request extension that carries a send's deadline (event-loop time) to the pool.
DEADLINE_EXTENSION: Final = "haorui_async.deadline"

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_DEFAULT_TIMEOUTS: Final = {
    "connect": defaults.DEFAULT_CONNECT_TIMEOUT,
    "read": defaults.DEFAULT_READ_TIMEOUT,
    "write": defaults.DEFAULT_WRITE_TIMEOUT,
    "pool": defaults.DEFAULT_POOL_TIMEOUT,
}

Parser = Literal["auto", "httptools", "plain", "h11"]


def reader_factory(parser: Parser) -> tuple[str, type[AnswerReader]]:
    """The answer reader for `parser` ("auto": httptools when installed, else plain)."""
    if parser == "plain":
        return "plain", PlainReader
    if parser == "h11":
        return "h11", H11Reader
    if parser not in ("auto", "httptools"):
        raise ConfigurationError(
            f"parser: expected 'auto', 'httptools', 'plain' or 'h11', got {parser!r}"
        )
    try:
        import httptools  # noqa: F401
    except ImportError:
        if parser == "httptools":
            raise ConfigurationError(
                "parser: httptools is not installed (pip install 'haorui-async[fast]')"
            ) from None
        return "plain", PlainReader
    from ._wire import HttptoolsReader

    return "httptools", HttptoolsReader


def make_pool(
    base_url: str | httpx.URL,
    *,
    max_connections: int,
    keepalive_expiry: float,
    ssl_context: ssl.SSLContext | None,
    parser: Parser,
) -> tuple[Pool, httpx.URL, str]:
    """A `Pool` for the origin of `base_url`, the URL, and the parser's name."""
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(f"base_url: expected an absolute http(s) URL, got {str(url)!r}")
    if isinstance(max_connections, bool) or not isinstance(max_connections, int):
        raise ConfigurationError(f"max_connections: expected an int >= 1, got {max_connections!r}")
    if max_connections < 1:
        raise ConfigurationError(f"max_connections: expected an int >= 1, got {max_connections!r}")
    if not keepalive_expiry >= 0:
        raise ConfigurationError(
            f"keepalive_expiry: expected seconds >= 0, got {keepalive_expiry!r}"
        )
    name, reader = reader_factory(parser)
    checked = verifying_context(ssl_context) if ssl_context is not None else None
    context = (checked or verifying_context()) if url.scheme == "https" else None
    pool = Pool(
        url.host,
        url.port or _DEFAULT_PORTS[url.scheme],
        ssl_context=context,
        max_connections=max_connections,
        keepalive_expiry=float(keepalive_expiry),
        reader=reader,
    )
    return pool, url, name


class _HeldStream(httpx.AsyncByteStream):
    """A body already read; closing it gives its connection back to the pool."""

    __slots__ = ("_answer",)

    def __init__(self, answer: Answer) -> None:
        self._answer = answer

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._answer.body:
            yield self._answer.body

    async def aclose(self) -> None:
        self._answer.finish(keep=True)


class PoolTransport(httpx.AsyncBaseTransport):
    """An HTTP/1.1 transport for one origin, on the SDK's own connection pool.

    Connections are kept alive and reused, most recently used first; at most
    `max_connections` are open at once, and requests beyond that wait for one (at most the
    pool timeout). Timeouts come from each request's `extensions["timeout"]` as httpx sets
    them; the read timeout applies to each wait for data. A request body is sent whole with a
    Content-Length. TLS certificates are always verified.

    Args:
        base_url: the origin served: scheme (http or https), host and port. A path is ignored.
        max_connections: connections open at most.
        keepalive_expiry: seconds an idle connection may be reused.
        ssl_context: the TLS settings for https (e.g. to trust a private CA); it must verify.
        parser: "plain" (the default: pure Python), "httptools", "auto" (httptools when
            installed, else plain), or "h11" (ten times plain's CPU per answer).

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
        parser: Parser = "plain",
    ) -> None:
        self.pool, url, self.parser = make_pool(
            base_url,
            max_connections=max_connections,
            keepalive_expiry=keepalive_expiry,
            ssl_context=ssl_context,
            parser=parser,
        )
        self._origin = (url.raw_scheme, url.raw_host, url.port)
        self._netloc = url.netloc
        self.origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        self.max_connections = max_connections
        self.keepalive_expiry = float(keepalive_expiry)
        # The header lines of the last request: a sender's requests all carry the same
        # headers (but the framing ones), and checking each one costs more than the rest of
        # the request's bytes.
        self._last_headers: list[tuple[bytes, bytes]] | None = None
        self._last_block = b""

    def __repr__(self) -> str:
        return (
            f"<PoolTransport origin={self.origin!r} parser={self.parser!r} "
            f"max_connections={self.max_connections} open={self.pool.connections}>"
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request`; its response comes back with the body read.

        Raises: as `exchange()`.
        """
        answer = await self.exchange(request)
        return httpx.Response(
            answer.status,
            headers=answer.headers,
            stream=_HeldStream(answer),
            extensions={"http_version": b"HTTP/1.1"},
            request=request,
        )

    async def exchange(self, request: httpx.Request) -> Answer:
        """Send `request`; its answer comes back as the pool's `Answer`, the body read (the
        default backend's way: no `httpx.Response` per message), to be `finish()`ed.

        Raises:
            httpx.UnsupportedProtocol: the request is for another origin than this one.
            httpx.LocalProtocolError: the request cannot be written as HTTP/1.1.
            httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout: nothing was sent.
            httpx.WriteTimeout, httpx.WriteError, httpx.ReadTimeout, httpx.ReadError,
            httpx.RemoteProtocolError: the request may have reached the server.
        """
        self._check_origin(request)
        try:
            wire = self._wire(request, request.content)
        except httpx.RequestNotRead:  # a streamed body (a caller's request): read it first
            wire = self._wire(request, await request.aread())
        timeouts: Any = request.extensions.get("timeout") or _DEFAULT_TIMEOUTS
        deadline = request.extensions.get(DEADLINE_EXTENSION)
        try:
            method = request.method.encode("ascii")  # checked by `_wire`
            exchange = self.pool.exchange(wire, method, timeouts, deadline)
            del wire  # the pool holds it until it is written
            answer = await exchange
        except httpx.TransportError as exc:
            exc.request = request
            raise
        return answer

    def _check_origin(self, request: httpx.Request) -> None:
        url = request.url
        if (url.raw_scheme, url.raw_host, url.port) != self._origin:
            raise httpx.UnsupportedProtocol(
                f"this PoolTransport serves {self.origin} only, not "
                f"{url.scheme}://{url.netloc.decode('ascii')}",
                request=request,
            )

    def _wire(self, request: httpx.Request, body: bytes) -> Wire:
        """The bytes of `request`: built here, in a plain function, so that no frame of the
        exchange holds them, the URL or the body (they carry the password)."""
        url = request.url
        try:
            method = request.method.encode("ascii")
            check_method(method)
            # (Host and Content-Length left out: the writer sets them, and the length changes
            # from message to message.)
            headers = [h for h in request.headers.raw if h[0].lower() not in FRAMING]
            if headers == self._last_headers:
                block = self._last_block
            else:
                block = header_block(self._netloc, headers)
                self._last_headers, self._last_block = headers, block
            return Wire(encode_request(method, url.raw_path, block, body))
        except ValueError as exc:  # (UnicodeEncodeError too)
            raise httpx.LocalProtocolError(str(exc), request=request) from None

    async def aclose(self) -> None:
        """Close every connection; requests in flight fail, waiting ones are not sent."""
        await self.pool.aclose()
