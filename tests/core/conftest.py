"""Fixtures of the unit tests: senders on a MockTransport, the gateway's answers, a fake sleep."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from haorui_async import AsyncSender, RetryPolicy

from .._kit import Answer, make_test_sender

ACCEPTED = {"message_id": 26471304, "status": "S", "remarks": "Message Submitted Sucessfully"}


def accepted(request: httpx.Request, **extra: Any) -> httpx.Response:
    """The gateway's documented success answer, echoing the request's uid."""
    return httpx.Response(
        200, json={**ACCEPTED, "uid": request_params(request).get("uid"), **extra}
    )


def scripted(*answers: httpx.Response | Answer) -> Answer:
    """A handler that gives `answers` in turn, then the documented success answer.

    An answer is a response, or a handler to call with the request (one that raises, say).
    """
    queue = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(queue, accepted)
        return answer if isinstance(answer, httpx.Response) else answer(request)

    return handler


def request_params(request: httpx.Request) -> dict[str, str]:
    """The SendSMS parameters of a request, from its JSON body (POST) or its query (GET)."""
    if request.method == "POST":
        params: dict[str, str] = json.loads(request.content)
        return params
    return dict(request.url.params)


class FakeSleep:
    """An injectable sleep that records how long the sender asked to wait, and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def make_sender(fake_sleep: FakeSleep) -> Callable[..., AsyncSender]:
    """Build senders on a MockTransport with test credentials and a sleep that never sleeps."""

    def make(handler: Callable[[httpx.Request], Any], **options: Any) -> AsyncSender:
        options.setdefault("sleep", fake_sleep)
        # With the default back-off: the fake sleep records the waits a test checks.
        options.setdefault("retry", RetryPolicy(attempts=4))
        return make_test_sender(transport=httpx.MockTransport(handler), **options)

    return make
