"""Fixtures of the testing-kit tests: the kit's own pytest plugin, and a loopback receiver."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Final

import httpx
import pytest
import uvicorn

from haorui_async import AsyncSender, RetryPolicy
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, DEMO_SENDER_ID
from haorui_async.testing._listener import listening_socket
from haorui_async.testing.pytest_plugin import (  # noqa: F401  (fixtures, and the marker)
    emulator,
    fake_gateway,
    pytest_configure,
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def no_sleep(seconds: float) -> None:
    """Back-off without waiting: retries are tested for their count, not their timing."""


#: Loading the CA bundle takes tens of milliseconds per context; loopback tests speak plain
#: HTTP, so one context serves every transport they build.
_TLS: Final = ssl.create_default_context()


def make_sender(
    base_url: str = "https://api.haorui.com", *, default_transport: bool = False, **options: Any
) -> AsyncSender:
    """An `AsyncSender` for the demo account that never sleeps between attempts.

    Unless `default_transport`, it sends through a plain httpx transport that shares one TLS
    context, so building a sender is cheap.
    """
    options.setdefault("retry", RetryPolicy(attempts=4))
    if not default_transport:
        options.setdefault("transport", httpx.AsyncHTTPTransport(verify=_TLS))
    return AsyncSender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        sender_id=DEMO_SENDER_ID,
        base_url=base_url,
        sleep=no_sleep,
        **options,
    )


async def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until `condition()` holds (checked every 10 ms); fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        await asyncio.sleep(0.01)


class ReportRecorder:
    """A tiny ASGI app that records every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.reports: list[dict[str, Any]] = []
        self.arrived = asyncio.Event()
        self.url = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        self.reports.append(json.loads(body))
        self.arrived.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def report_recorder() -> AsyncIterator[ReportRecorder]:
    """A `ReportRecorder` served by uvicorn on a free loopback port."""
    recorder = ReportRecorder()
    # The emulator's own listening socket: one made by `socket.socket()` would leave Nagle's
    # algorithm on under asyncio, and each report would wait ~40 ms for a delayed ACK.
    sock = listening_socket(socket.AF_INET, "127.0.0.1", 0)
    recorder.url = f"http://127.0.0.1:{sock.getsockname()[1]}/dlr"
    config = uvicorn.Config(recorder, lifespan="off", log_config=None, access_log=False)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup(sockets=[sock])
    try:
        yield recorder
    finally:
        with contextlib.suppress(Exception):
            await server.shutdown(sockets=[sock])
        sock.close()
