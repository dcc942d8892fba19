"""An OpenTelemetry SDK per test: spans in memory, metrics read on demand (needs the SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from haorui_async import Telemetry


@attrs.frozen
class Point:
    """One data point of a metric: its attributes; a counter's value, or a histogram's count
    and sum."""

    attributes: dict[str, Any]
    value: float | None = None
    count: int | None = None
    total: float | None = None


class InMemoryOtel:
    """A tracer provider exporting to memory and a meter provider read on demand."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader], shutdown_on_exit=False)
        self.telemetry = Telemetry(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self) -> list[ReadableSpan]:
        """The spans ended so far, in the order they ended."""
        return list(self.exporter.get_finished_spans())

    def send_spans(self) -> list[ReadableSpan]:
        """The spans of sends."""
        return [span for span in self.spans() if span.name == "haorui.send"]

    def metrics(self) -> dict[str, list[Point]]:
        """Every metric collected now: name -> its data points."""
        found: dict[str, list[Point]] = {}
        data = self.reader.get_metrics_data()
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(_points(metric.data.data_points))
        return found

    def points(self, name: str) -> list[Point]:
        """The data points of the metric `name` (none where it recorded nothing)."""
        return self.metrics().get(name, [])

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def _points(data_points: Any) -> Iterator[Point]:
    for point in data_points:
        attributes = dict(point.attributes or {})
        if isinstance(point, HistogramDataPoint):
            yield Point(attributes, count=point.count, total=point.sum)
        elif isinstance(point, NumberDataPoint):
            yield Point(attributes, value=point.value)
