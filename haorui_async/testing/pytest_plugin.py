"""pytest fixtures for testing code that sends SMS through haorui-async.

Opt in from a `conftest.py`:

    pytest_plugins = ["haorui_async.testing.pytest_plugin"]

Fixtures:
    fake_gateway: a fresh `FakeGateway` (in process, no sockets).
    emulator: the loopback emulator running for one test (needs uvicorn); its `base_url`
        goes to `AsyncSender(base_url=...)`. Parametrise it with
        `@pytest.mark.emulator_config(rate_503=0.5, seed=1)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

try:
    # Works in pytest-asyncio's strict mode too, not only in its auto mode.
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # pragma: no cover - depends on the install
    async_fixture = pytest.fixture  # type: ignore[assignment]  # the same decorator protocol

from ._fake import FakeGateway
from ._server import Emulator, serve

__all__ = ["emulator", "fake_gateway"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator_config(**options): EmulatorConfig options of the emulator fixture"
    )


@pytest.fixture
def fake_gateway() -> FakeGateway:
    """A fresh in-process `FakeGateway` accepting the demo account."""
    return FakeGateway()


@async_fixture
async def emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    """The loopback emulator, started for this test and stopped after it."""
    marker = request.node.get_closest_marker("emulator_config")
    options = dict(marker.kwargs) if marker is not None else {}
    async with serve(**options) as running:
        yield running
