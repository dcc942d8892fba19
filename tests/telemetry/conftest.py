"""Fixtures of the telemetry tests: an OpenTelemetry SDK of their own, senders on a FakeGateway.

The SDK's global providers can be set once per process, so nothing here sets them: each test
gets its own `TracerProvider` (spans to an `InMemorySpanExporter`) and `MeterProvider` (an
`InMemoryMetricReader`), handed to the sender as `Telemetry(tracer_provider=...,
meter_provider=...)`. Where opentelemetry-sdk is not installed, the modules that need it are
not collected; the hook's tests (`test_hook.py`) run without it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from haorui_async import AsyncSender, RetryPolicy
from haorui_async.testing import FakeGateway

from .._kit import API_ID, ATTEMPTS, PASSWORD, make_test_sender

if TYPE_CHECKING:
    from ._otel_kit import InMemoryOtel

PHONE = "8613912345678"

if importlib.util.find_spec("opentelemetry") is None or (
    importlib.util.find_spec("opentelemetry.sdk") is None
):
    collect_ignore = [
        "test_benchmark.py",
        "test_spans.py",
        "test_metrics.py",
        "test_auto.py",
        "test_secrets_telemetry.py",
    ]


class FakeSleep:
    """An injectable sleep that keeps the waits it was asked for, and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def gateway() -> FakeGateway:
    """The in-process gateway, knowing the test account."""
    return FakeGateway(accounts={API_ID: PASSWORD})


@pytest.fixture
def make_sender(gateway: FakeGateway, fake_sleep: FakeSleep) -> Callable[..., AsyncSender]:
    """Senders on the test account and the gateway, a sleep that never sleeps, 3 attempts."""

    def make(**options: Any) -> AsyncSender:
        options.setdefault("transport", gateway.transport)
        options.setdefault("sleep", fake_sleep)
        options.setdefault("retry", RetryPolicy(attempts=ATTEMPTS, backoff_base=0.1))
        return make_test_sender(**options)

    return make


@pytest.fixture
def otel() -> Iterator[InMemoryOtel]:
    """An SDK of the test's own: `otel.telemetry` for the sender, `otel.spans()`,
    `otel.points(name)`."""
    from ._otel_kit import InMemoryOtel

    kit = InMemoryOtel()
    try:
        yield kit
    finally:
        kit.shutdown()
