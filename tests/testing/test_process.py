"""`EmulatorProcess`: the emulator in a subprocess on a free loopback port."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest

from haorui_async import AsyncSender, OutcomeUnknown, RetryPolicy
from haorui_async.testing import (
    DEMO_API_ID,
    DEMO_API_PASSWORD,
    DEMO_SENDER_ID,
    EmulatorNotStarted,
    EmulatorProcess,
)

pytestmark = pytest.mark.integration


def _sender(base_url: str) -> AsyncSender:
    return AsyncSender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        sender_id=DEMO_SENDER_ID,
        base_url=base_url,
        retry=RetryPolicy(attempts=1),
    )


def _running(emulator: EmulatorProcess) -> bool:
    # Read through a call: mypy would take a property asserted once as fixed for good.
    return emulator.running


def test_the_command_is_the_emulator_on_a_free_loopback_port_with_the_options() -> None:
    command = EmulatorProcess(["--rate-500", "1"]).command
    assert command[:3] == [sys.executable, "-m", "haorui_async.testing"]
    assert command[3:] == ["--host", "127.0.0.1", "--port", "0", "--rate-500", "1"]


def test_with_block_gives_a_listening_emulator_and_stops_it() -> None:
    with EmulatorProcess() as emulator:
        assert _running(emulator)
        assert emulator.base_url.startswith("http://127.0.0.1:")
        stats = httpx.get(emulator.base_url + "/_emulator/stats", timeout=10).json()
        assert stats["received"] == 0
    assert not _running(emulator)
    with pytest.raises(RuntimeError, match="not running"):
        _ = emulator.base_url


async def test_async_with_block_serves_the_sdk_and_stops_the_emulator() -> None:
    async with EmulatorProcess() as emulator, _sender(emulator.base_url) as sender:
        result = await sender.send("8613912345678", "Your code is 1")
        assert result.status == "S"
    assert not _running(emulator)


async def test_the_options_reach_the_emulator() -> None:
    async with EmulatorProcess(["--rate-500", "1"]) as emulator, _sender(emulator.base_url) as s:
        with pytest.raises(OutcomeUnknown):
            await s.send("8613912345678", "Your code is 1")


def test_start_and_stop_by_hand_and_stop_twice() -> None:
    emulator = EmulatorProcess()
    url = emulator.start()
    try:
        assert url == emulator.base_url
        with pytest.raises(RuntimeError, match="started already"):
            emulator.start()
    finally:
        emulator.stop()
    emulator.stop()
    assert not _running(emulator)


def test_a_stopped_emulator_refuses_connections() -> None:
    with EmulatorProcess() as emulator:
        url = emulator.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/_emulator/stats", timeout=10)


def test_an_emulator_that_does_not_start_says_why() -> None:
    emulator = EmulatorProcess(["--rate-500", "2"])
    with pytest.raises(EmulatorNotStarted, match=r"exited with status 2: .*rate_500") as caught:
        emulator.start()
    assert isinstance(caught.value, RuntimeError)
    assert not _running(emulator)


async def test_an_emulator_that_does_not_start_says_why_in_async_with() -> None:
    with pytest.raises(EmulatorNotStarted, match="did not start"):
        async with EmulatorProcess(["--rate-500", "2"]):
            pass  # pragma: no cover - never entered


async def test_cancelled_while_starting_leaves_no_process_behind() -> None:
    emulator = EmulatorProcess()
    entered = asyncio.Event()

    async def use() -> None:
        async with emulator:
            entered.set()  # pragma: no cover - cancelled before

    task = asyncio.create_task(use())
    # One turn of the loop runs the task up to its first await, the wait for the emulator's
    # `listening on` line: the process is spawned by then.
    await asyncio.sleep(0)
    assert _running(emulator)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not _running(emulator)
    assert not entered.is_set()
