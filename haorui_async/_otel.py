"""The OpenTelemetry instrumentation of sends: one span per send, and the metrics.

Imported only where a sender's telemetry is on (`_telemetry.resolve_telemetry`): this module
imports opentelemetry-api (the `[otel]` extra), never the SDK. What it reports, by name
(docs/observability.md has the table):

- a span `haorui.send` per send (kind CLIENT: it is the call to the gateway, retries
  included; no other span stands for it), a child of the caller's current span, current
  while the send runs; an event `haorui.retry` per retry and `haorui.reconcile` per
  reconciliation; status ERROR with `error.type` where the send failed;
- `haorui.sends` (counter, by outcome), `haorui.send.duration`, `haorui.send.wait.duration`
  (the rate limit, a 429's pause), and per request the HTTP semantic conventions'
  `http.client.request.duration` and `http.client.active_requests`.

Attributes hold no text, no password and no URL (a GET's URL carries the password); the phone
number is a span attribute only where asked for, and never a metric attribute (one series per
recipient).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from contextvars import Token
from typing import TYPE_CHECKING, Final

import httpx
from opentelemetry import context, metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._exceptions import HaoruiError
from ._outcome import kind_of
from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.util.types import AttributeValue

    from ._backends import Answer, Backend
    from ._protocol import Request
    from ._reconcile import Verdict
    from ._telemetry import SendRecord, Telemetry, WaitReason

__all__ = ["Instruments", "SpanHandle", "providers_installed"]

#: The instrumentation scope: the package, so a collector can tell its telemetry apart.
SCOPE: Final = "haorui_async"
#: The semantic conventions whose names are used (HTTP's, stable since 1.23).
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.26.0"
SPAN_NAME: Final = "haorui.send"

#: The HTTP conventions' advised buckets for request durations, in seconds.
HTTP_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
#: A send (and its waits) can last up to its deadline, 60 s by default: the HTTP buckets with
#: room for retries, back-off and a 429's pause.
SEND_DURATION_BUCKETS: Final = (*HTTP_DURATION_BUCKETS, 30.0, 60.0)

Attributes = dict[str, "AttributeValue"]


def providers_installed() -> bool:
    """Whether the global tracer or meter provider is a real one (an SDK's), not the API's
    default proxy or no-op."""
    return is_real(trace.get_tracer_provider(), metrics.get_meter_provider())


def is_real(tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider) -> bool:
    """Whether either provider is something other than the API's default proxy or no-op."""
    placeholders: tuple[type, ...] = (metrics.NoOpMeterProvider,)
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider
    except ImportError:  # pragma: no cover - a future API that moved it
        pass
    else:
        placeholders = (*placeholders, _ProxyMeterProvider)
    return not isinstance(
        tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    ) or not isinstance(meter_provider, placeholders)


class Instruments:
    """One sender's tracer and metric instruments, made once when the sender is built.

    Args:
        telemetry: the providers (None: the global ones).
        base_url: the gateway (its host and port are `server.address`, `server.port`).
        method, backend: the sender's.
    """

    def __init__(self, telemetry: Telemetry, *, base_url: str, method: str, backend: str) -> None:
        url = httpx.URL(base_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        self.tracer = trace.get_tracer(
            SCOPE, __version__, telemetry.tracer_provider, schema_url=SCHEMA_URL
        )
        meter = metrics.get_meter(
            SCOPE, __version__, telemetry.meter_provider, schema_url=SCHEMA_URL
        )
        self.sends = meter.create_counter(
            "haorui.sends", unit="{send}", description="Sends ended, by outcome."
        )
        self.send_duration = meter.create_histogram(
            "haorui.send.duration",
            unit="s",
            description="Duration of sends: admission, every attempt and the back-off.",
            explicit_bucket_boundaries_advisory=SEND_DURATION_BUCKETS,
        )
        self.wait_duration = meter.create_histogram(
            "haorui.send.wait.duration",
            unit="s",
            description="Time an attempt waited for the rate limit or a pause the gateway "
            "asked for.",
            explicit_bucket_boundaries_advisory=SEND_DURATION_BUCKETS,
        )
        self.request_duration = meter.create_histogram(
            "http.client.request.duration",
            unit="s",
            description="Duration of HTTP client requests.",
            explicit_bucket_boundaries_advisory=HTTP_DURATION_BUCKETS,
        )
        self.active_requests = meter.create_up_down_counter(
            "http.client.active_requests",
            unit="{request}",
            description="Number of active HTTP requests.",
        )
        self.request_attributes: Mapping[str, AttributeValue] = {
            "http.request.method": method,
            "server.address": url.host,
            "server.port": port,
        }
        self.span_attributes: Mapping[str, AttributeValue] = {
            **self.request_attributes,
            "haorui.backend": backend,
        }
        self._wait_attributes: Mapping[str, Mapping[str, AttributeValue]] = {
            "rate_limit": {"haorui.wait.reason": "rate_limit"},
            "pause": {"haorui.wait.reason": "pause"},
        }

    def start_send(
        self, *, uid: str, parts: int, encoding: str, phonenumber: str | None
    ) -> SpanHandle:
        """Start a send's span, as a child of the current one, and make it current."""
        attributes: Attributes = {
            **self.span_attributes,
            "haorui.uid": uid,
            "haorui.sms.parts": parts,
            "haorui.sms.encoding": encoding,
        }
        if phonenumber is not None:
            attributes["haorui.sms.phonenumber"] = phonenumber
        span = self.tracer.start_span(SPAN_NAME, kind=SpanKind.CLIENT, attributes=attributes)
        token = context.attach(trace.set_span_in_context(span))
        return SpanHandle(self, span, token)

    def waited(self, reason: WaitReason, seconds: float) -> None:
        self.wait_duration.record(seconds, self._wait_attributes[reason])

    async def exchange(self, backend: Backend, request: Request, deadline: float) -> Answer:
        """The backend's exchange, counted in flight and timed per the HTTP conventions."""
        base = self.request_attributes
        self.active_requests.add(1, base)
        started = time.perf_counter()
        try:
            answer = await backend.exchange(request, deadline)
        except BaseException as exc:
            # Before an answer: the transport's exception class (low cardinality).
            self.request_duration.record(
                time.perf_counter() - started, {**base, "error.type": type(exc).__qualname__}
            )
            raise
        finally:
            self.active_requests.add(-1, base)
        attributes: Attributes = {**base, "http.response.status_code": answer.status}
        if answer.status >= 400:
            attributes["error.type"] = str(answer.status)
        self.request_duration.record(time.perf_counter() - started, attributes)
        return answer


class SpanHandle:
    """One send's span while it runs: its events, then its end (attributes, status, metrics)."""

    __slots__ = ("_instruments", "_token", "span")

    def __init__(self, instruments: Instruments, span: trace.Span, token: Token[Context]) -> None:
        self._instruments = instruments
        self.span = span
        self._token = token

    def retrying(
        self, failure: HaoruiError, attempt: int, wait: float, *, resent_after_reconcile: bool
    ) -> None:
        attributes: Attributes = {
            "haorui.attempt": attempt,
            "haorui.outcome": kind_of(failure),
            "error.type": type(failure).__qualname__,
            "haorui.retry.wait": wait,
        }
        status = getattr(failure, "status_code", None)
        if status is not None:
            attributes["http.response.status_code"] = status
        if resent_after_reconcile:
            attributes["haorui.reconciled"] = True
        self.span.add_event("haorui.retry", attributes)

    def reconciled(self, verdict: Verdict, attempt: int) -> None:
        self.span.add_event(
            "haorui.reconcile", {"haorui.attempt": attempt, "haorui.reconcile.verdict": verdict}
        )

    def end(self, record: SendRecord) -> None:
        """End the span with what `record` says, and count the send."""
        span = self.span
        outcome: Attributes = {"haorui.outcome": record.kind}
        if record.error is not None:
            outcome["error.type"] = record.error
        if span.is_recording():  # not where a sampler dropped it
            attributes: Attributes = {
                **outcome,
                "haorui.attempts": record.attempts,
                "haorui.may_have_been_sent": record.may_have_been_sent,
                "haorui.reconciled": record.reconciled,
                "haorui.wait.rate_limit": record.rate_limit_wait,
                "haorui.wait.pause": record.pause_wait,
            }
            if record.status_code is not None:
                attributes["http.response.status_code"] = record.status_code
            span.set_attributes(attributes)
            if record.error is not None:
                span.set_status(Status(StatusCode.ERROR))
        span.end()
        instruments = self._instruments
        instruments.sends.add(1, outcome)
        instruments.send_duration.record(record.duration, outcome)

    def detach(self) -> None:
        """The span stops being the current one (where it was made so)."""
        context.detach(self._token)
