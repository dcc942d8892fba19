"""The wild part's measurements: the steady window, the cold start, CPU and RSS."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from benchmarks.suite.load import UNFINISHED
from benchmarks.suite.wild.probe import (
    Probe,
    measure_cold,
    measure_window,
    peak_rss_bytes,
    process_cpu_seconds,
)


async def test_the_window_counts_only_what_ends_inside_it() -> None:
    async def send() -> None:
        await asyncio.sleep(0.01)

    result = await measure_window(send, concurrency=5, count=10**9, lead=0.1, seconds=0.3, grace=1)
    # 5 in flight, 10 ms each: at most 500/s; the lead-in's sends are not counted.
    assert 0.25 < result.window < 1.5
    assert 0 < result.ok < result.sent
    assert 50 < result.rate < 600
    assert result.errors == {}
    assert result.p50 is not None
    assert result.p99 is not None
    assert 0.009 < result.p50 <= result.p99
    assert result.server_cpu is None


async def test_the_cpu_per_message_is_the_process_cpu_over_the_accepted_messages() -> None:
    async def send() -> None:
        # Busy for about 1 ms of CPU, then yield.
        end = time.process_time() + 0.001
        while time.process_time() < end:
            pass
        await asyncio.sleep(0)

    result = await measure_window(send, concurrency=2, count=10**9, lead=0.05, seconds=0.3, grace=1)
    assert result.cpu_per_message is not None
    assert 0.0008 < result.cpu_per_message < 0.005
    assert result.cpu == pytest.approx(result.cpu_per_message * result.ok)


async def test_sends_that_all_end_in_the_lead_in_make_the_window_the_whole_run() -> None:
    async def send() -> None:
        await asyncio.sleep(0)

    result = await measure_window(send, concurrency=3, count=30, lead=5, seconds=5, grace=1)
    assert result.ok == result.sent == 30
    assert result.window < 1


async def test_errors_are_counted_by_class_and_sends_past_the_grace_as_unfinished() -> None:
    calls = 0

    async def send() -> None:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionResetError
        await asyncio.Event().wait()

    result = await measure_window(send, concurrency=2, count=100, lead=0.05, seconds=0.1, grace=0.1)
    assert result.errors == {"ConnectionResetError": 2, UNFINISHED: 2}
    assert result.ok == 0
    assert result.rate == 0.0
    assert result.cpu_per_message is None


async def test_the_servers_cpu_is_read_at_the_windows_ends() -> None:
    readings = iter([10.0, 10.25, 11.0])

    async def send() -> None:
        await asyncio.sleep(0.01)

    result = await measure_window(
        send,
        concurrency=1,
        count=10**9,
        lead=0.02,
        seconds=0.05,
        grace=1,
        server_cpu=lambda: next(readings),
    )
    # The first reading is the run's start; the window is the second to the third.
    assert result.server_cpu == pytest.approx(0.75)


async def test_the_cold_start_times_the_last_answer_of_sends_started_at_once() -> None:
    in_flight = 0
    most = 0

    async def send() -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1

    result = await measure_cold(send, connections=50, grace=5, server_cpu=lambda: 1.0)
    assert most == 50
    assert result.ok == result.sent == 50
    assert 0.04 < result.window < 1
    assert result.server_cpu == 0.0
    assert result.errors == {}


async def test_a_cold_start_past_its_bound_counts_the_rest_as_unfinished() -> None:
    async def send() -> None:
        await asyncio.Event().wait()

    result = await measure_cold(send, connections=4, grace=0.05)
    assert result.errors == {UNFINISHED: 4}
    assert result.ok == 0
    assert result.window >= 0.05


def test_a_probe_survives_its_json_form() -> None:
    probe = Probe(
        concurrency=10,
        ok=100,
        errors={"ReadTimeout": 1},
        window=0.5,
        cpu=0.01,
        p50=0.001,
        p99=None,
        peak_rss=2**20,
        sent=101,
        server_cpu=0.2,
    )
    data = probe.to_json()
    assert data["rate"] == 200.0
    assert data["cpu_per_message"] == pytest.approx(0.0001)
    assert Probe.from_json(data) == probe


def test_the_peak_rss_and_another_process_cpu_are_read() -> None:
    assert peak_rss_bytes() > 10 * 2**20
    assert (process_cpu_seconds(os.getpid()) or 0) > 0
    assert process_cpu_seconds(2**22 + 1) is None
