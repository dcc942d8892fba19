from __future__ import annotations

import socket

import httpx
import pytest
import respx

from haorui_async._pool import ShardedTransport

from .conftest import accepted


def test_connections_are_split_into_small_shards() -> None:
    transport = ShardedTransport(10, shard_size=4)
    assert len(transport.shards) == 3
    with pytest.raises(ValueError, match="must be >= 1"):
        ShardedTransport(0)


async def test_each_request_goes_to_the_least_loaded_shard_and_gives_its_slot_back() -> None:
    transport = ShardedTransport(8, shard_size=4)
    with respx.mock(base_url="http://gateway.test") as mock:
        mock.post("/api/SendSMS").mock(side_effect=accepted)
        first = await transport.handle_async_request(
            httpx.Request("POST", "http://gateway.test/api/SendSMS", json={"uid": "a"})
        )
        second = await transport.handle_async_request(
            httpx.Request("POST", "http://gateway.test/api/SendSMS", json={"uid": "b"})
        )
        # Both in flight: one per shard.
        assert transport._load == [1, 1]
        assert (await first.aread()).startswith(b"{")
        await first.aclose()
        await first.aclose()  # closing twice gives the slot back once
        assert transport._load == [0, 1]
        await second.aread()
        await second.aclose()
    assert transport._load == [0, 0]
    await transport.aclose()


async def test_a_failed_request_gives_its_slot_back() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = ShardedTransport(2, shard_size=1)
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("GET", f"http://127.0.0.1:{port}/"))
    assert transport._load == [0, 0]
    await transport.aclose()
