"""Faults a test can script: what the gateway does instead of answering (pure, no I/O).

A fault is a value object; a `FaultPlan` hands them out, request by request: first the ones
queued with `inject()`, in order, then, with the configured rates, random ones drawn from a
seeded generator, so a run can be reproduced.

```
Fault
├── RespondWith        an HTTP status (429 with Retry-After, 500, 503, ...) instead of the answer
├── MalformedBody      a 2xx whose body is not the documented JSON
├── Hang               no answer until the client's read timeout passes
├── DropConnection     the connection closes after the request was read, before any answer
├── LoseAnswer         the message is accepted, then the connection is reset: no answer arrives
└── RefuseConnection   the connection is refused: the request never arrives
```

`accepted=True` on a fault means the gateway took the message before failing, as a real
gateway may: the message is recorded, and a client that resends it sends a duplicate.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from typing import Final

import attrs

__all__ = [
    "DropConnection",
    "Fault",
    "FaultPlan",
    "FaultRates",
    "Hang",
    "LoseAnswer",
    "MalformedBody",
    "RefuseConnection",
    "RespondWith",
]


def _unit_interval(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name}: expected a rate between 0 and 1, got {value!r}")


@attrs.frozen
class RespondWith:
    """Answer with this HTTP status instead of the gateway's answer.

    Attributes:
        status: the HTTP status, e.g. 429, 500, 503.
        retry_after: the `Retry-After` header's value (seconds or an HTTP date), or None.
        body: the body sent with it.
        accepted: the gateway accepted the message before answering so.
    """

    status: int
    retry_after: str | float | None = None
    body: bytes = b'{"detail":"injected fault"}'
    accepted: bool = False

    @property
    def kind(self) -> str:
        return str(self.status)


@attrs.frozen
class MalformedBody:
    """Answer `status` (200 by default) with a body that is not the documented JSON."""

    body: bytes = b"<html><body>Service Temporarily Unavailable</body></html>"
    status: int = 200
    accepted: bool = False

    @property
    def kind(self) -> str:
        return "malformed"


@attrs.frozen
class Hang:
    """Answer nothing: the client's read timeout passes (`httpx.ReadTimeout` in the fake).

    Attributes:
        accepted: the gateway accepted the message before going silent.
        seconds: how long to hang; None: the client's read timeout (the fake) or the
            emulator's `hang_seconds` (the server, which cannot see the client's timeout).
    """

    accepted: bool = False
    seconds: float | None = None

    @property
    def kind(self) -> str:
        return "hang"


@attrs.frozen
class DropConnection:
    """Close the connection once the request was read, before answering.

    The client sees the connection lost after its request went out (`httpx.RemoteProtocolError`):
    it cannot know whether the message was accepted. `accepted` says whether it was.
    """

    accepted: bool = False

    @property
    def kind(self) -> str:
        return "drop"


@attrs.frozen
class LoseAnswer:
    """Accept the message, then reset the connection: the answer never reaches the client.

    The realistic ambiguous case: the gateway took the message (it is recorded, found by
    `GetDeliveryStatus`, and its delivery report is pushed), but the client sees only a
    reset connection (`httpx.ReadError`) and cannot know. Unlike `DropConnection`, it always
    accepts, whatever `faults_accept` says.
    """

    @property
    def accepted(self) -> bool:
        """Always: the gateway took the message before the answer was lost."""
        return True

    @property
    def kind(self) -> str:
        return "lose_answer"


@attrs.frozen
class RefuseConnection:
    """Refuse the connection (`httpx.ConnectError`): the request never arrives, never accepted.

    Only the in-process `FakeGateway` can do this; a listening server cannot refuse a
    connection it has already accepted.
    """

    @property
    def accepted(self) -> bool:
        """Never: the request did not arrive."""
        return False

    @property
    def kind(self) -> str:
        return "refuse"


Fault = RespondWith | MalformedBody | Hang | DropConnection | LoseAnswer | RefuseConnection


@attrs.frozen
class FaultRates:
    """How often each fault happens at random, as a share of requests (0 to 1 each).

    Attributes:
        rate_429: answer 429 with `Retry-After: retry_after`.
        rate_503: answer 503.
        rate_500: answer 500.
        rate_hang: hang without answering.
        rate_drop: drop the connection after reading the request.
        rate_malformed: answer 200 with a body that is not JSON.
        rate_lose_answer: accept the message, then reset the connection without an answer
            (always accepts: `faults_accept` does not apply).
        retry_after: the `Retry-After` value of the 429s; "" sends none.
        faults_accept: whether the 500s, hangs, drops and malformed answers accept the message
            before failing (429 and 503 never do: they prove the message was not taken).

    Raises:
        ValueError: a rate outside [0, 1], or rates adding up to more than 1.
    """

    rate_429: float = attrs.field(default=0.0, validator=_unit_interval)
    rate_503: float = attrs.field(default=0.0, validator=_unit_interval)
    rate_500: float = attrs.field(default=0.0, validator=_unit_interval)
    rate_hang: float = attrs.field(default=0.0, validator=_unit_interval)
    rate_drop: float = attrs.field(default=0.0, validator=_unit_interval)
    rate_malformed: float = attrs.field(default=0.0, validator=_unit_interval)
    rate_lose_answer: float = attrs.field(default=0.0, validator=_unit_interval)
    retry_after: str = "1"
    faults_accept: bool = False

    def __attrs_post_init__(self) -> None:
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {self.total}, more than 1")

    @property
    def total(self) -> float:
        """The share of requests that fail at random."""
        return (
            self.rate_429
            + self.rate_503
            + self.rate_500
            + self.rate_hang
            + self.rate_drop
            + self.rate_malformed
            + self.rate_lose_answer
        )

    def table(self) -> tuple[tuple[float, Fault], ...]:
        """The (cumulative rate, fault) pairs a random draw is looked up in."""
        accept = self.faults_accept
        entries: list[tuple[float, Fault]] = [
            (self.rate_429, RespondWith(429, retry_after=self.retry_after or None)),
            (self.rate_503, RespondWith(503)),
            (self.rate_500, RespondWith(500, accepted=accept)),
            (self.rate_hang, Hang(accepted=accept)),
            (self.rate_drop, DropConnection(accepted=accept)),
            (self.rate_malformed, MalformedBody(accepted=accept)),
            (self.rate_lose_answer, LoseAnswer()),
        ]
        table: list[tuple[float, Fault]] = []
        cumulative = 0.0
        for rate, fault in entries:
            if rate > 0:
                cumulative += rate
                table.append((cumulative, fault))
        return tuple(table)


NO_FAULTS: Final = FaultRates()


@attrs.define(eq=False)
class FaultPlan:
    """Decides, request by request, which fault (if any) happens.

    Queued faults come first, in the order they were injected; then random faults at the
    configured rates, drawn from `random.Random(seed)`.

    Attributes:
        rates: the random faults' rates; none by default.
        seed: the seed of the random generator (None: unseeded).
    """

    rates: FaultRates = NO_FAULTS
    seed: int | None = None
    #: Faults served so far, by kind ("429", "503", "hang", "drop", ...).
    served: Counter[str] = attrs.field(init=False, factory=Counter)
    _queue: deque[Fault] = attrs.field(init=False, factory=deque)
    _table: tuple[tuple[float, Fault], ...] = attrs.field(init=False)
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._table = self.rates.table()
        self._random = random.Random(self.seed)

    def inject(self, *faults: Fault, times: int = 1) -> None:
        """Queue `faults` for the next requests, in order; the whole sequence `times` times.

        Raises:
            ValueError: `times` is below 1.
        """
        if times < 1:
            raise ValueError(f"times: expected >= 1, got {times!r}")
        for _ in range(times):
            self._queue.extend(faults)

    @property
    def pending(self) -> int:
        """Queued faults not yet served."""
        return len(self._queue)

    def clear(self) -> None:
        """Drop the queued faults (the random rates stay)."""
        self._queue.clear()

    def next(self) -> Fault | None:
        """The fault for the next request, or None: answer normally."""
        if self._queue:
            fault: Fault | None = self._queue.popleft()
        elif self._table:
            draw = self._random.random()
            fault = None
            for cumulative, candidate in self._table:
                if draw < cumulative:
                    fault = candidate
                    break
        else:
            return None
        if fault is not None:
            self.served[fault.kind] += 1
        return fault
