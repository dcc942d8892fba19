"""`backend="fast"`: the SDK's pool driven directly, answers read by httptools.

Per message it builds no `httpx.Request` or `httpx.Response`: the request's bytes are the
fixed header block and the message's target and body (`_wire.encode_request`), the answer the
pool's `RawAnswer`. Imported only when `backend="fast"` is asked for.
"""

from __future__ import annotations

import ssl
from collections.abc import Coroutine
from typing import Any

import httpx

from .. import _defaults as defaults
from .. import _exceptions
from .._native import caused_by
from . import Answer, Request, intercepted
from ._httpx import HttpxBackend
from ._transport import Parser, make_pool
from ._wire import Wire, encode_request, header_block

__all__ = ["FastBackend"]


class FastBackend:
    """The lean backend: see the module's docstring. Its arguments are `HttpxBackend`'s own
    pool's, and `parser`: "auto" (httptools when installed, else plain), "httptools",
    "plain" or "h11"."""

    name = "fast"

    def __init__(
        self,
        base_url: str,
        *,
        headers: list[tuple[str, str]],
        timeout: httpx.Timeout,
        max_connections: int,
        ssl_context: ssl.SSLContext | None = None,
        parser: Parser = "auto",
    ) -> None:
        self._pool, url, self.parser = make_pool(
            base_url,
            max_connections=max_connections,
            keepalive_expiry=defaults.DEFAULT_KEEPALIVE_EXPIRY,
            ssl_context=ssl_context,
            parser=parser,
        )
        try:
            self._block = header_block(
                url.netloc, [(k.encode("ascii"), v.encode("latin-1")) for k, v in headers]
            )
        except ValueError as exc:
            raise caused_by(_exceptions.ConfigurationError(f"headers: {exc}"), None)
        self._methods = {"POST": b"POST", "GET": b"GET"}
        self._timeouts: dict[str, float | None] = dict(timeout.as_dict())
        # Built when first needed (a mocked test, or `client`): it loads a CA bundle of its own.
        self._stand_in_options = {
            "headers": headers,
            "timeout": timeout,
            "max_connections": max_connections,
            "ssl_context": ssl_context,
        }
        self._base_url = base_url
        self._stand_in: HttpxBackend | None = None

    @property
    def stand_in(self) -> HttpxBackend:
        """The default backend this one steps aside for while httpx is mocked."""
        if self._stand_in is None:
            self._stand_in = HttpxBackend(self._base_url, **self._stand_in_options)  # type: ignore[arg-type]  # typed above
        return self._stand_in

    @property
    def client(self) -> httpx.AsyncClient:
        return self.stand_in.client

    def exchange(self, request: Request, deadline: float) -> Coroutine[Any, Any, Answer]:
        # A plain function handing over the pool's coroutine: no coroutine of its own per
        # request, so one object less for each request in flight.
        if intercepted():
            return self.stand_in.exchange(request, deadline)
        method = self._methods[request.method]
        # No local holds the request's bytes, only the Wire (whose repr hides them), and
        # only until the pool has written them.
        return self._pool.exchange(
            Wire(encode_request(method, request.target, self._block, request.body)),
            method,
            self._timeouts,
            deadline,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._stand_in is not None:
            await self._stand_in.aclose()
