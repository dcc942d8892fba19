from __future__ import annotations

import asyncio

import pytest

from benchmarks.suite.load import UNFINISHED, Measurement, error_class, measure, percentile
from haorui_async import AsyncSender, RetryPolicy


async def test_measure_stops_at_the_message_count() -> None:
    calls = 0

    async def send() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)

    result = await measure(send, concurrency=7, count=50, seconds=30, grace=1)
    assert calls == result.ok == 50
    assert result.concurrency == 7
    assert result.p50 is not None
    assert result.p99 is not None
    assert result.p50 <= result.p99
    assert result.rate > 0


async def test_measure_stops_at_the_time_bound() -> None:
    async def send() -> None:
        await asyncio.sleep(0.01)

    result = await measure(send, concurrency=2, count=10**9, seconds=0.2, grace=1)
    assert 0 < result.ok < 200
    assert result.elapsed < 1.0


async def test_sends_still_in_flight_after_the_grace_are_cancelled_and_counted() -> None:
    async def send() -> None:
        await asyncio.Event().wait()

    result = await measure(send, concurrency=4, count=100, seconds=0.05, grace=0.1)
    assert result.ok == 0
    assert result.errors == {UNFINISHED: 4}
    assert result.p50 is None
    assert result.p99 is None


async def test_errors_are_counted_by_class_with_the_sdk_errors_cause() -> None:
    # Port 1 on loopback refuses connections: the SDK raises NotSent caused by ConnectError.
    async with AsyncSender(
        api_id="API43404236",
        api_password="pw",
        sender_id="HAORUI",
        base_url="http://127.0.0.1:1",
        retry=RetryPolicy(attempts=1),
    ) as sender:

        async def send() -> None:
            await sender.send("8613912345678", "hello")

        result = await measure(send, concurrency=2, count=4, seconds=10, grace=5)
    assert result.errors == {"NotSent(ConnectError)": 4}
    assert result.ok == 0
    assert result.rate == 0.0


def test_error_class_of_a_plain_exception_is_its_name() -> None:
    assert error_class(ConnectionResetError()) == "ConnectionResetError"


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.5, 50.0), (0.99, 99.0), (1.0, 100.0), (0.0, 1.0)]
)
def test_percentile_is_the_nearest_rank(fraction: float, expected: float) -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, fraction) == expected


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 0.5) is None


def test_a_measurement_survives_its_json_form() -> None:
    measurement = Measurement(
        concurrency=10, ok=5, errors={"ReadTimeout": 1}, elapsed=0.5, p50=0.01, p99=None
    )
    data = measurement.to_json()
    assert data["rate"] == 10.0
    assert Measurement.from_json(data) == measurement


def test_the_rate_of_an_instant_measurement_is_zero() -> None:
    assert Measurement(concurrency=1, ok=0, errors={}, elapsed=0.0, p50=None, p99=None).rate == 0
