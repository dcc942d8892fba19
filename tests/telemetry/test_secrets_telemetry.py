"""The password never appears in telemetry: no span name, attribute, event, status or metric
attribute, and no `SendRecord`, holds it raw, percent-encoded or JSON-escaped, on every path
of tests/core/test_secrets.py (its random passwords and failures), POST and GET."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace import ReadableSpan

from haorui_async import RetryPolicy, SendError, SendRecord

from .._kit import make_test_sender
from ..core.test_secrets import _forms, _handlers, passwords
from ._otel_kit import InMemoryOtel


def _span_texts(span: ReadableSpan) -> list[str]:
    texts = [span.name, span.status.description or "", repr(dict(span.attributes or {}))]
    for event in span.events:
        texts += [event.name, repr(dict(event.attributes or {}))]
    return texts


async def _exercise(password: str, method: str, reconcile_unknown: bool) -> list[str]:
    otel = InMemoryOtel()
    records: list[SendRecord] = []

    async def no_sleep(seconds: float) -> None:
        return None

    for name, handler in _handlers(password).items():
        sender = make_test_sender(
            api_password=password,
            method=method,
            retry=RetryPolicy(attempts=2, backoff_base=0.0),
            transport=httpx.MockTransport(handler),
            telemetry=otel.telemetry,
            on_outcome=records.append,
            # Everything telemetry can carry, the phone number included.
            telemetry_phonenumber=True,
            reconcile_unknown=reconcile_unknown,
            reconcile_settle=0.001,
            sleep=no_sleep,
        )
        async with sender:
            with contextlib.suppress(SendError):
                await sender.send("8613912345678", "hi", uid=name.replace(" ", "-"))
    texts = [text for span in otel.spans() for text in _span_texts(span)]
    for metric, points in otel.metrics().items():
        texts += [metric, *(repr(point.attributes) for point in points)]
    texts += [repr(record) for record in records]
    otel.shutdown()
    assert len(records) == len(_handlers(password)), "one record per send"
    return texts


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    password=passwords,
    method=st.sampled_from(["POST", "GET"]),
    reconcile_unknown=st.booleans(),
)
def test_password_never_reaches_telemetry(
    password: str, method: str, reconcile_unknown: bool
) -> None:
    texts = asyncio.run(_exercise(password, method, reconcile_unknown))
    everything = "\n".join(texts)
    assert "haorui.send" in everything, "the spans were exported"
    for form in _forms(password):
        assert form not in everything
