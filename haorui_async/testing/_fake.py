"""`FakeGateway`: the gateway model in process, behind an httpx transport (no sockets).

gateway = FakeGateway()
async with AsyncSender(api_id=DEMO_API_ID, api_password=DEMO_API_PASSWORD,
                       sender_id="HAORUI", transport=gateway.transport) as sender:
    await sender.send("8613912345678", "hello", uid="order-1")
assert gateway.count_for_uid("order-1") == 1
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from ._faults import (
    DropConnection,
    Fault,
    FaultPlan,
    FaultRates,
    Hang,
    LoseAnswer,
    MalformedBody,
    RefuseConnection,
    RespondWith,
)
from ._model import (
    DEFAULT_BALANCE,
    DEFAULT_CURRENCY,
    DEMO_API_ID,
    DEMO_API_PASSWORD,
    GatewayModel,
    Message,
    RecordMode,
    Reply,
    is_lookup_path,
)

__all__ = ["FakeGateway"]


class FakeGateway:
    """The HAORUI gateway in process: hand `transport` to `AsyncSender`, then ask what was sent.

    Every request is answered by the same `GatewayModel` the loopback emulator serves, so the
    validation, the answers and the records are the real API's, lookups included
    (`GetDeliveryStatus`, `CheckBalance`). Faults are scripted with `inject()` and served in
    order to the next requests ("429, then success"); lookups get none unless `lookup_faults`.

    Args:
        accounts: the known `api_id -> api_password` pairs; the demo account by default.
        record: what is kept of accepted messages: "messages", "uids" or "totals"
            (see `GatewayModel`).
        rates: random faults, at these rates (none by default).
        seed: the seed of the random faults.
        lookup_lag: seconds, on `clock`, before `GetDeliveryStatus` finds an accepted message.
        clock: the model's clock (`time.monotonic`); a test passes its own to skip the lag
            without waiting.
        balance: the amount `CheckBalance` answers.
        currency: the currency code `CheckBalance` answers.
        lookup_faults: lookups take their turn in the fault plan too (by default they are
            always answered, and a scripted fault waits for the next send).

    Raises:
        ValueError: an option out of range (see `GatewayModel`).
    """

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        record: RecordMode = "messages",
        rates: FaultRates | None = None,
        seed: int | None = None,
        lookup_lag: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        balance: float = DEFAULT_BALANCE,
        currency: str = DEFAULT_CURRENCY,
        lookup_faults: bool = False,
    ) -> None:
        self.model = GatewayModel(
            accounts if accounts is not None else {DEMO_API_ID: DEMO_API_PASSWORD},
            record=record,
            lookup_lag=lookup_lag,
            balance=balance,
            currency=currency,
            clock=clock,
        )
        self.faults = FaultPlan(rates if rates is not None else FaultRates(), seed)
        self.lookup_faults = lookup_faults
        #: Requests that reached the gateway (refused connections excluded), faults included;
        #: lookups are not counted here (see `stats()["lookups"]`).
        self.received = 0
        self.transport: httpx.AsyncBaseTransport = _FakeTransport(self)

    # -- scripting ------------------------------------------------------------------------

    def inject(self, *faults: Fault, times: int = 1) -> None:
        """Serve `faults` to the next requests, in order (the sequence `times` times)."""
        self.faults.inject(*faults, times=times)

    # -- what a test asks -----------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Every accepted message, in order (with `record="messages"`)."""
        return self.model.messages

    @property
    def uids(self) -> Counter[str]:
        """How many times each uid was accepted."""
        return self.model.uids

    @property
    def accepted(self) -> int:
        """How many messages were accepted."""
        return self.model.accepted

    def count_for_uid(self, uid: str) -> int:
        """How many times a message with this uid was accepted."""
        return self.model.count_for_uid(uid)

    def stats(self) -> dict[str, Any]:
        """The counters: the model's, plus requests received and faults served by kind."""
        return {**self.model.stats(), "received": self.received, "faults": dict(self.faults.served)}

    def reset(self) -> None:
        """Forget messages, counters and queued faults."""
        self.model.reset()
        self.faults.clear()
        self.faults.served.clear()
        self.received = 0

    def __repr__(self) -> str:
        return (
            f"<FakeGateway accepted={self.model.accepted} received={self.received} "
            f"pending_faults={self.faults.pending}>"
        )

    # -- the exchange ---------------------------------------------------------------------

    async def _exchange(self, request: httpx.Request) -> httpx.Response:
        lookup = is_lookup_path(request.url.path)
        fault = None if lookup and not self.lookup_faults else self.faults.next()
        if isinstance(fault, RefuseConnection):
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        body = await request.aread()
        if not lookup:
            self.received += 1
        reply: Reply | None = None
        if fault is None or fault.accepted:
            reply = self._answer(request, body)
            if fault is None:
                return httpx.Response(reply.status, headers=list(reply.headers), content=reply.body)
        if isinstance(fault, Hang):
            seconds = fault.seconds
            if seconds is None:
                seconds = _read_timeout(request)
            await asyncio.sleep(seconds)
            raise httpx.ReadTimeout("timed out", request=request)
        if isinstance(fault, DropConnection):
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if isinstance(fault, LoseAnswer):
            # What a client reads when the connection is reset after the gateway took the message.
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        assert isinstance(fault, (RespondWith, MalformedBody))
        headers = {"content-type": "application/json"}
        if isinstance(fault, RespondWith) and fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        return httpx.Response(fault.status, headers=headers, content=fault.body)

    def _answer(self, request: httpx.Request, body: bytes) -> Reply:
        return self.model.handle(
            request.method,
            request.url.path,
            request.url.query,
            body,
            request.headers.get("content-type", ""),
        )


def _read_timeout(request: httpx.Request) -> float:
    timeouts = request.extensions.get("timeout", {})
    read = timeouts.get("read")
    # No read timeout: a real hang would last forever; a day stands in for it.
    return float(read) if read is not None else 86400.0


class _FakeTransport(httpx.AsyncBaseTransport):
    """Hands every request to its `FakeGateway`."""

    def __init__(self, gateway: FakeGateway) -> None:
        self._gateway = gateway

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._gateway._exchange(request)
