"""Fixtures of the bulk tests: a recording gateway behind `httpx.MockTransport`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from haorui_async import SMS, AsyncSender, RetryPolicy

API_ID = "API43404236"
PASSWORD = "bulk-Pa55word!"

Answer = Callable[[str, int], Awaitable[httpx.Response] | httpx.Response]


def accepted(uid: str, message_id: int = 1) -> httpx.Response:
    """The documented success answer."""
    return httpx.Response(
        200,
        json={"message_id": message_id, "status": "S", "remarks": "Submitted", "uid": uid},
    )


class RecordingGateway:
    """A MockTransport handler that records when each request arrived and answers by script.

    `answer(uid, n)` gets the uid and the 0-based arrival number and returns the response
    (or raises an httpx error); by default every message is accepted at once. `accepted`
    counts the uids answered with status S.
    """

    def __init__(self, answer: Answer | None = None, delay: float = 0.0) -> None:
        self.answer = answer
        self.delay = delay
        self.starts: list[float] = []
        self.uids: list[str] = []
        self.accepted: Counter[str] = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        uid = json.loads(request.content)["uid"]
        number = len(self.starts)
        self.starts.append(loop.time())
        self.uids.append(uid)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.answer is None:
                response = accepted(uid, number + 1)
            else:
                answer = self.answer(uid, number)
                response = await answer if not isinstance(answer, httpx.Response) else answer
        finally:
            self.in_flight -= 1
        if response.status_code == 200 and b'"S"' in response.content:
            self.accepted[uid] += 1
        return response


def make_sender(gateway: RecordingGateway, **options: Any) -> AsyncSender:
    """An `AsyncSender` in front of `gateway`, with test credentials."""
    options.setdefault("api_id", API_ID)
    options.setdefault("api_password", PASSWORD)
    options.setdefault("sender_id", "HAORUI")
    options.setdefault("retry", RetryPolicy(attempts=1))
    return AsyncSender(transport=httpx.MockTransport(gateway), **options)


def messages(count: int, prefix: str = "m") -> list[SMS]:
    """`count` messages with uids `<prefix>0`, `<prefix>1`, ..."""
    return [SMS("8613912345678", f"code {n}", uid=f"{prefix}{n}") for n in range(count)]


async def eventually(
    condition: Callable[[], bool], timeout: float = 10.0, *, every: float = 0.01
) -> None:
    """Wait until `condition()` holds, checked `every` seconds; fail after `timeout` seconds.

    For a state the test reaches through other tasks or processes: a fixed sleep before
    checking it would be too short on a busy machine.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still false after {timeout} s")
        await asyncio.sleep(every)


@pytest.fixture
async def gateway_sender() -> AsyncIterator[tuple[RecordingGateway, AsyncSender]]:
    gateway = RecordingGateway()
    async with make_sender(gateway, max_concurrency=8) as sender:
        yield gateway, sender
