"""`telemetry=None` (auto): on only where a real provider is installed, decided when the sender
is built; `import haorui_async` never imports OpenTelemetry.

The global providers can be set once per process: what depends on them runs in a fresh
interpreter of its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from haorui_async import AsyncSender, Telemetry
from haorui_async._otel import is_real
from haorui_async._telemetry import resolve_telemetry

from ._otel_kit import InMemoryOtel

ROOT = Path(__file__).resolve().parents[2]
#: This environment (coverage's subprocess measurement included), without any OpenTelemetry
#: configuration of its own.
ENV = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}


def run(code: str) -> str:
    """Run `code` in a fresh interpreter, where OpenTelemetry's globals are untouched."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**ENV, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_api_defaults_are_not_real_providers() -> None:
    proxy_tracers = trace.ProxyTracerProvider()
    default_meters = metrics.get_meter_provider()
    assert not is_real(proxy_tracers, default_meters)
    assert not is_real(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())


def test_an_sdk_provider_of_either_kind_is_real() -> None:
    meters = MeterProvider(shutdown_on_exit=False)
    assert is_real(TracerProvider(shutdown_on_exit=False), metrics.NoOpMeterProvider())
    assert is_real(trace.ProxyTracerProvider(), meters)
    meters.shutdown()


def test_false_is_off_and_true_or_a_telemetry_is_on() -> None:
    otel = InMemoryOtel()
    assert resolve_telemetry(False) is None
    assert resolve_telemetry(True) == Telemetry()
    assert resolve_telemetry(otel.telemetry) is otel.telemetry
    otel.shutdown()


def test_auto_without_an_sdk_is_off_and_imports_nothing() -> None:
    out = run(
        """
        import sys
        from haorui_async import AsyncSender
        sender = AsyncSender(api_id="A", api_password="p")
        print(sender.telemetry, sender._observer, "opentelemetry" in sys.modules)
        import opentelemetry.trace, opentelemetry.metrics  # the API's defaults: proxies
        sender = AsyncSender(api_id="A", api_password="p")
        print(sender.telemetry, sender._observer)
        """
    )
    assert out.splitlines() == ["None None False", "None None"]


def test_auto_with_an_sdk_provider_installed_is_on_and_sends_spans() -> None:
    out = run(
        """
        import asyncio
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from haorui_async import AsyncSender
        from haorui_async.testing import FakeGateway, DEMO_API_ID, DEMO_API_PASSWORD

        before = AsyncSender(api_id="A", api_password="p")
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)

        async def main():
            gateway = FakeGateway()
            async with AsyncSender(
                api_id=DEMO_API_ID, api_password=DEMO_API_PASSWORD, sender_id="HAORUI",
                transport=gateway.transport,
            ) as sender:
                print(sender.telemetry)
                await sender.send("8613912345678", "hi")

        asyncio.run(main())
        # Decided when built: the sender built before the provider stays off.
        print(before.telemetry, [span.name for span in exporter.get_finished_spans()])
        """
    )
    assert out.splitlines() == [
        "Telemetry(tracer_provider=None, meter_provider=None)",
        "None ['haorui.send']",
    ]


def test_without_the_api_auto_is_off_and_on_is_refused_naming_the_extra() -> None:
    out = run(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if opentelemetry-api were not installed
        from haorui_async import AsyncSender, ConfigurationError
        print(AsyncSender(api_id="A", api_password="p").telemetry)
        try:
            AsyncSender(api_id="A", api_password="p", telemetry=True)
        except ConfigurationError as exc:
            print(exc)
        """
    )
    assert out.splitlines() == [
        "None",
        "telemetry: needs opentelemetry-api: pip install 'haorui-async[otel]'",
    ]


async def test_true_reports_to_the_global_providers() -> None:
    async with AsyncSender(api_id="A", api_password="p", telemetry=True) as sender:
        assert sender.telemetry == Telemetry()
        assert sender._observer is not None
