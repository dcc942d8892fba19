"""Fixtures of the hostile-gateway tests: scripted servers, TLS, senders, the event loops.

Every test runs on each backend ("httpx", "fast") and on each event loop (asyncio, uvloop: the
hook imported from `tests/_loops.py` is found here by pytest-asyncio).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import pytest
import trustme

from haorui_async import AsyncSender

from .._kit import make_test_sender
from .._loops import pytest_asyncio_loop_factories as pytest_asyncio_loop_factories
from ._checks import MakeSender
from ._server import Behaviour, ScriptedServer, Serve

#: The timeouts of one request, unless a test sets its own: far above what loopback needs.
TIMEOUT = 5.0
#: The deadline of one send, unless a test sets its own.
DEADLINE = 10.0

Backend = Literal["httpx", "fast"]
BACKENDS: list[Backend] = ["httpx", "fast"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    name: Backend = request.param
    return name


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """The scripted server's TLS: a certificate for 127.0.0.1 from the test CA."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="session")
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts the test CA (and nothing else)."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def serve(server_tls: ssl.SSLContext) -> Iterator[Serve]:
    """Start scripted servers: `serve(behaviour, tls=False)`; all stopped after the test.

    The test fails if a behaviour raised (a bug in the test, not in the SDK).
    """
    servers: list[ScriptedServer] = []

    def start(behaviour: Behaviour, *, tls: bool = False) -> ScriptedServer:
        server = ScriptedServer(behaviour, tls=server_tls if tls else None)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
    for server in servers:
        assert not server.errors, "a scripted behaviour raised:\n" + "\n".join(server.errors)


@pytest.fixture
async def make_sender(
    backend: Backend, client_tls: ssl.SSLContext, serve: Serve
) -> AsyncIterator[MakeSender]:
    """Build `AsyncSender`s on this test's backend: `make_sender(server, **options)`.

    Closed after the test, before the servers stop (this fixture depends on `serve`).
    """
    senders: list[AsyncSender] = []

    def make(server: ScriptedServer, **options: Any) -> AsyncSender:
        options.setdefault("timeout", TIMEOUT)
        options.setdefault("deadline", DEADLINE)
        options.setdefault("max_concurrency", 1)
        sender = make_test_sender(
            base_url=server.url,
            backend=backend,
            ssl_context=client_tls if server.tls is not None else None,
            **options,
        )
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.aclose()
