"""Fixtures of the backend conformance suite: the backends, and the real servers they face.

Every test runs once on asyncio's own event loop and once on uvloop: the hook imported from
`tests/_loops.py` is found here by pytest-asyncio.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from haorui_async import AsyncSender
from haorui_async._backends._transport import PoolTransport

from .._kit import make_test_sender
from .._loops import pytest_asyncio_loop_factories as pytest_asyncio_loop_factories
from ._servers import Gateway, hypercorn_in_thread, uvicorn_in_thread

#: The timeouts of the senders under test, unless a test sets its own.
TIMEOUT = 5.0

MakeSender = Callable[..., AsyncSender]

BACKENDS = ["httpx", "fast", "pool-transport-httptools"]

SERVERS = ["uvicorn-h11", "uvicorn-httptools", "hypercorn"]


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    return Gateway()


@pytest.fixture(scope="session")
def uvicorn_h11(gateway: Gateway) -> Iterator[str]:
    with uvicorn_in_thread(gateway, "h11") as url:
        yield url


@pytest.fixture(scope="session")
def uvicorn_httptools(gateway: Gateway) -> Iterator[str]:
    with uvicorn_in_thread(gateway, "httptools") as url:
        yield url


@pytest.fixture(scope="session")
def hypercorn(gateway: Gateway) -> Iterator[str]:
    with hypercorn_in_thread(gateway) as url:
        yield url


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> str:
    """The base URL of each real server in turn."""
    url: str = request.getfixturevalue(request.param.replace("-", "_"))
    return url


@pytest.fixture
def tag() -> str:
    """A path segment of this test's own, so the gateway's records are this test's alone."""
    return uuid.uuid4().hex


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def tls_server(
    gateway: Gateway, ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """uvicorn over TLS, its certificate for 127.0.0.1 issued by the test CA (trusted nowhere)."""
    folder: Path = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    chain = folder / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    with uvicorn_in_thread(gateway, "h11", ssl_certfile=str(chain)) as url:
        yield url


@pytest.fixture
def trusting_context(ca: trustme.CA) -> ssl.SSLContext:
    """A verifying client context that trusts the test CA."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[MakeSender]:
    """A factory of `AsyncSender`s on each backend in turn, closed after the test.

    `make(base_url, ssl_context=None, **options)`: "httpx" is the default backend (the SDK's
    pool behind httpx, h11); "fast" is `backend="fast"` (the pool driven directly,
    httptools); "pool-transport-httptools" is a `PoolTransport` reading with httptools given
    as `transport=`, so the path of a caller's own transport (a wall-clock deadline, the
    body read within the cap) is exercised too.
    """
    name: str = request.param
    senders: list[AsyncSender] = []

    def make(
        base_url: str, *, ssl_context: ssl.SSLContext | None = None, **options: Any
    ) -> AsyncSender:
        options.setdefault("timeout", TIMEOUT)
        options.setdefault("max_concurrency", 10)
        transport: httpx.AsyncBaseTransport | None = None
        if name == "pool-transport-httptools":
            transport = PoolTransport(
                base_url,
                max_connections=options["max_concurrency"],
                ssl_context=ssl_context,
                parser="httptools",
            )
        else:
            options["ssl_context"] = ssl_context
            if name == "fast":
                options["backend"] = "fast"
        sender = make_test_sender(base_url=base_url, transport=transport, **options)
        senders.append(sender)
        return sender

    yield make
    for sender in senders:
        await sender.aclose()
