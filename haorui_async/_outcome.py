"""One vocabulary for what became of a message: the outcome kinds, `Outcome`, `BulkReport`.

Each error class knows its kind (`SendError.kind`, `InvalidMessage.kind`, ...); everything
that names an outcome (`send_many()`, the demo, the `bulk` command's file and summary, exit
codes) reads it from here, so the same words mean the same thing everywhere.

| kind | what happened | may have been sent |
|---|---|---|
| `sent` | the gateway accepted it (`status: "S"`) | yes, it was |
| `failed` | the gateway answered `status: "F"` | no |
| `rejected` | the request was refused as it stands (HTTP 4xx, ...) | no |
| `not_sent` | provably never accepted (retries spent, deadline, never started) | no |
| `unknown` | it may have been accepted: reconcile by `uid` before resending | maybe |
| `invalid` | not a sendable message: nothing was sent | no |
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

import attrs

from ._exceptions import HaoruiError, OutcomeUnknown
from ._message import SMS
from ._protocol import SendResult

__all__ = ["KINDS", "BulkReport", "Outcome", "OutcomeKind", "kind_of"]

OutcomeKind = Literal["sent", "failed", "rejected", "not_sent", "unknown", "invalid"]
#: Every kind of outcome, in the order summaries list them.
KINDS: Final[tuple[OutcomeKind, ...]] = (
    "sent",
    "failed",
    "rejected",
    "not_sent",
    "unknown",
    "invalid",
)


def kind_of(error: HaoruiError | None) -> OutcomeKind:
    """The kind of outcome of a send that ended with `error` (None: sent).

    An error that names no kind of its own is "unknown": nothing proves it was not sent.
    """
    if error is None:
        return "sent"
    kind: OutcomeKind = getattr(error, "kind", "unknown")
    return kind


@attrs.frozen
class Outcome:
    """What became of one input item of `send_many()`: a `SendResult` or an error.

    Attributes:
        index: the item's position in the input, from 0.
        message: the `SMS`, or None where the item was not an `SMS`.
        result: the gateway's acceptance, where the message was sent.
        error: why it was not sent, where it was not: a `SendError` (its subclass tells whether
            the gateway may have accepted it), `InvalidMessage` for an item that is not a
            sendable `SMS`, or `SenderClosed`.
        kind: "sent"; "failed" (the gateway answered status F); "rejected" (refused as it
            stands); "not_sent" (provably not accepted, retries spent, or never started);
            "unknown" (may have been accepted: reconcile by `uid` before resending);
            "invalid" (not a sendable message, nothing was sent).
    """

    index: int
    message: SMS | None
    result: SendResult | None = None
    error: HaoruiError | None = None
    kind: OutcomeKind = attrs.field(init=False)

    @kind.default
    def _kind(self) -> OutcomeKind:
        if (self.result is None) == (self.error is None):
            raise ValueError("Outcome: give exactly one of result and error")
        return kind_of(self.error)

    @property
    def sent(self) -> bool:
        """True where the gateway accepted the message."""
        return self.result is not None

    @property
    def may_have_been_sent(self) -> bool:
        """True where the gateway accepted the message or may have: do not resend blindly."""
        return self.result is not None or isinstance(self.error, OutcomeUnknown)

    @property
    def uid(self) -> str | None:
        """The message's `uid` (None for an item that was not an `SMS`)."""
        return None if self.message is None else self.message.uid


@attrs.frozen
class BulkReport:
    """Every outcome of `send_all()`, in input order, with counts per kind.

    Attributes:
        outcomes: one `Outcome` per input item, in input order.
        counts: how many outcomes of each kind ("sent", "failed", ...), every kind present.
    """

    outcomes: tuple[Outcome, ...] = attrs.field(repr=False)
    counts: dict[str, int]

    @classmethod
    def from_outcomes(cls, outcomes: Iterable[Outcome]) -> BulkReport:
        """Build from outcomes in any order."""
        ordered = tuple(sorted(outcomes, key=lambda o: o.index))
        counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        for outcome in ordered:
            counts[outcome.kind] += 1
        return cls(ordered, counts)

    @property
    def all_sent(self) -> bool:
        """True where every message was accepted."""
        return self.counts["sent"] == len(self.outcomes)

    @property
    def unknown(self) -> tuple[Outcome, ...]:
        """Outcomes that may have been sent without proof: reconcile by `uid` before resending."""
        return tuple(o for o in self.outcomes if o.kind == "unknown")

    @property
    def unsent(self) -> tuple[Outcome, ...]:
        """Outcomes of messages that were provably not accepted (safe to send again)."""
        return tuple(o for o in self.outcomes if not o.may_have_been_sent)
