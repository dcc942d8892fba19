"""The test kit the suites share: senders on the test account, and a handler that counts.

Each suite's sender fixture builds on `make_test_sender()` and adds its own defaults (a mock
transport and a sleep that never sleeps, timeouts, a backend); a test that counts the requests
of its sends answers them through a `CountingHandler`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import httpx

from haorui_async import AsyncSender, RetryPolicy

API_ID: Final = "API43404236"
#: Distinctive, and with characters that URL- and JSON-encoding change: a leak test looks for
#: each of its forms.
PASSWORD: Final = "Pa55/w+rd&test\u00e9!"
SENDER_ID: Final = "HAORUI"
#: Attempts of the test retry policy: enough to see a retry, few enough to be quick.
ATTEMPTS: Final = 3

#: What a `httpx.MockTransport` calls: the answer to one request (or the error it raises).
Answer = Callable[[httpx.Request], httpx.Response]


def make_test_sender(**options: Any) -> AsyncSender:
    """An `AsyncSender` on the test account; `options` are passed on and win over the defaults.

    The defaults: `API_ID`, `PASSWORD`, `SENDER_ID`, and `ATTEMPTS` attempts without back-off
    (a test that checks the back-off sets its own policy). Raises what `AsyncSender` raises.
    """
    options.setdefault("api_id", API_ID)
    options.setdefault("api_password", PASSWORD)
    options.setdefault("sender_id", SENDER_ID)
    options.setdefault("retry", RetryPolicy(attempts=ATTEMPTS, backoff_base=0.0))
    return AsyncSender(**options)


class CountingHandler:
    """A `MockTransport` handler that answers with `answer` and keeps every request it saw.

    A request is kept before `answer` is called, so one that `answer` fails (a simulated
    transport error) counts too.
    """

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    @property
    def calls(self) -> int:
        """How many requests reached the handler."""
        return len(self.requests)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)
