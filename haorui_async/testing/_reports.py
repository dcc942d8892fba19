"""The emulator's delivery reports: each accepted message's report, pushed to its callback URL.

`ReportPusher` pushes one report per message that named a callback URL, `dlr_delay` seconds
after its acceptance, at most `_PUSHES_IN_FLIGHT` at once, and counts each by its fate. A push
that gets no answer (a connection error: e.g. the receiver closing an idle keep-alive
connection just as the push is written on it) or a 5xx answer is pushed again, as a gateway
does, up to `_PUSH_ATTEMPTS` times. Only loopback URLs are pushed to, unless the config sets
`allow_remote_callbacks`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter
from typing import Final

import httpx

from ._config import EmulatorConfig
from ._lookups import Message, delivery_report
from ._model import GatewayModel

__all__ = ["ReportPusher"]

#: Delivery reports pushed at once; the others wait their turn.
_PUSHES_IN_FLIGHT: Final = 50
#: Attempts at each push: the first, then retries after `_RETRY_DELAY`, doubled each time.
_PUSH_ATTEMPTS: Final = 5
_RETRY_DELAY: Final = 0.1


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ReportPusher:
    """Pushes the delivery reports of accepted messages, in the background.

    `open()` it on the running loop before the first `schedule()`, and `aclose()` it after the
    last: pending pushes are cancelled then.

    Attributes:
        reports: delivery reports by fate: "sent", "failed", "skipped" (a non-loopback
            URL, not allowed), "dropped" (too many pending).
        retries: pushes made again after a connection error or a 5xx answer.
    """

    def __init__(self, config: EmulatorConfig, model: GatewayModel) -> None:
        self.config = config
        self.model = model
        self.reports: Counter[str] = Counter()
        self.retries = 0
        self._pending: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._slots: asyncio.Semaphore | None = None

    def open(self) -> None:
        """Make the HTTP client the reports go out on."""
        # Pushes wait for one of a few slots here, not in httpx's pool: a pool with a long
        # queue of requests walks it on every response (see the backends docs).
        self._slots = asyncio.Semaphore(_PUSHES_IN_FLIGHT)
        # Reports go to whatever callback URL each message named: httpx's own pool, any origin.
        limits = httpx.Limits(max_connections=_PUSHES_IN_FLIGHT)
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(limits=limits), timeout=5.0
        )

    def schedule(self, message: Message) -> None:
        """Push the report of `message` (which names a callback URL) after `dlr_delay`."""
        assert message.callback_url is not None
        if not self.config.allow_remote_callbacks and not _is_loopback(message.callback_url):
            self.reports["skipped"] += 1
            return
        if len(self._pending) >= self.config.max_pending_reports:
            self.reports["dropped"] += 1
            return
        status = self.model.delivery_status(message)
        task = asyncio.ensure_future(self._push(message, status))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _push(self, message: Message, status: str) -> None:
        assert self._client is not None
        assert self._slots is not None
        assert message.callback_url is not None
        await asyncio.sleep(self.config.dlr_delay)
        report = delivery_report(message, status)
        delay = _RETRY_DELAY
        for attempt in range(1, _PUSH_ATTEMPTS + 1):
            try:
                async with self._slots:
                    response = await self._client.post(message.callback_url, json=report)
            except httpx.TransportError:
                answered = False
            except httpx.HTTPError:
                answered = True
            else:
                if response.is_success:
                    self.reports["sent"] += 1
                    return
                answered = response.status_code < 500
            if answered or attempt == _PUSH_ATTEMPTS:
                break
            self.retries += 1
            await asyncio.sleep(delay)
            delay *= 2
        self.reports["failed"] += 1

    async def aclose(self) -> None:
        """Cancel the pushes still pending, and close the client."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
