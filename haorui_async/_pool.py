"""The default backend: httpx's own transport, sharded into several small connection pools.

httpcore's pool walks every one of its connections on each request and each response close,
polling every idle socket (`has_expired()`): the CPU cost of one request grows with the size of
the pool, and throughput falls as concurrency grows (see the benchmark docs). Several small
pools behind one transport keep that walk short. Each shard is a plain
`httpx.AsyncHTTPTransport`, so TLS, proxies, error mapping and respx interception are httpx's.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx

from . import _defaults as defaults
from ._tls import verifying_context

__all__ = ["ShardedTransport"]


class _CountedStream(httpx.AsyncByteStream):
    """A response body that gives its request's slot back to the shard when it is closed."""

    __slots__ = ("_load", "_open", "_shard", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, load: list[int], shard: int) -> None:
        self._stream = stream
        self._load = load
        self._shard = shard
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._load[self._shard] -= 1
        await self._stream.aclose()


class ShardedTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncBaseTransport` spreading requests over several small httpx pools.

    Each request goes to the shard with the fewest requests in flight.

    Args:
        max_connections: connections in all, split into shards of at most `shard_size`.
        shard_size: connections per shard.
        keepalive_expiry: seconds an idle connection is kept.
        ssl_context: the TLS context of every connection (certificates are always verified;
            pass a context to trust another CA).
    """

    def __init__(
        self,
        max_connections: int = defaults.DEFAULT_MAX_CONCURRENCY,
        *,
        shard_size: int = defaults.DEFAULT_SHARD_SIZE,
        keepalive_expiry: float = defaults.DEFAULT_KEEPALIVE_EXPIRY,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1 or shard_size < 1:
            raise ValueError("max_connections and shard_size must be >= 1")
        count = -(-max_connections // shard_size)
        size = -(-max_connections // count)
        limits = httpx.Limits(
            max_connections=size, max_keepalive_connections=size, keepalive_expiry=keepalive_expiry
        )
        # One TLS context for every shard: loading the CA bundle takes tens of milliseconds.
        context = verifying_context(ssl_context)
        self.shards = [
            httpx.AsyncHTTPTransport(limits=limits, verify=context) for _ in range(count)
        ]
        self._load = [0] * count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        load = self._load
        shard = load.index(min(load))
        load[shard] += 1
        try:
            response = await self.shards[shard].handle_async_request(request)
        except BaseException:
            load[shard] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CountedStream(response.stream, load, shard)
        return response

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()
