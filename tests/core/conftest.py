from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from haorui_async import AsyncSender, RetryPolicy

API_ID = "API43404236"
PASSWORD = "s3cret-Pa55word!"

ACCEPTED = {"message_id": 26471304, "status": "S", "remarks": "Message Submitted Sucessfully"}


def accepted(request: httpx.Request, **extra: Any) -> httpx.Response:
    """The gateway's documented success answer, echoing the request's uid."""
    return httpx.Response(
        200, json={**ACCEPTED, "uid": request_params(request).get("uid"), **extra}
    )


def scripted(*answers: httpx.Response) -> Callable[[httpx.Request], httpx.Response]:
    """A handler that gives `answers` in turn, then the documented success answer."""
    queue = iter(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        return next(queue, None) or accepted(request)

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
        options.setdefault("api_id", API_ID)
        options.setdefault("api_password", PASSWORD)
        options.setdefault("sender_id", "HAORUI")
        options.setdefault("sleep", fake_sleep)
        options.setdefault("retry", RetryPolicy(attempts=4))
        return AsyncSender(transport=httpx.MockTransport(handler), **options)

    return make
