"""Resolving an unknown outcome: was the message accepted? Verdicts from reports and lookups.

A send that ended `OutcomeUnknown` may or may not have reached the gateway, which has no
idempotency key: sending it again blindly may deliver it twice, dropping it may lose it.
`AsyncSender.reconcile()` asks, in this order:

1. the `DeliveryTracker`: a delivery report for the uid (pushed to a callback URL that carried
   this tracker's secret token, for a uid sent with it) proves the gateway took the message;
2. `GetDeliveryStatus`: a record for the uid proves it too;
3. two lookups that find nothing, the first at least `settle` seconds after the last attempt
   and the second `settle` seconds after the first, make it `not_accepted`, once
   `CheckBalance` has shown that the credentials work (a lookup with wrong ones also finds
   nothing): only then is a resend safe. The one residual risk: a gateway whose record of an
   accepted message appears later than that.

Any lookup that cannot tell (`LookupFailed`) leaves the verdict `unknown`.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Literal, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import attrs

from . import _defaults as defaults
from ._delivery import DeliveryReport
from ._lookup import DeliveryStatus, LookupFailed

__all__ = ["DeliveryTracker", "Reconciliation", "Verdict", "found_by_lookup", "reconcile"]

logger = logging.getLogger(defaults.LOGGER_NAME)
_V = TypeVar("_V")

Verdict = Literal["accepted", "not_accepted", "unknown"]

#: The query parameter of the callback URL that carries the tracker's token.
TOKEN_PARAMETER: Final = "haorui_token"
#: Uids remembered at most (sent and reported): a long-running service keeps the most recent.
DEFAULT_TRACKED: Final = 1_000_000


@attrs.frozen
class Reconciliation:
    """The verdict on one message whose outcome was unknown.

    Attributes:
        uid: the message's uid.
        verdict: "accepted" (with `message_id`), "not_accepted" (safe to send again) or
            "unknown" (lookups failed: neither resend nor drop it yet).
        message_id: the gateway's id, where accepted.
        source: what decided it: "report", "lookup", or None.
        report: the delivery report that decided it, where one did.
        status: the lookup's record, where one decided it.
        detail: in words.
    """

    uid: str
    verdict: Verdict
    message_id: str | None = None
    source: Literal["report", "lookup"] | None = None
    report: DeliveryReport | None = attrs.field(default=None, repr=False)
    status: DeliveryStatus | None = attrs.field(default=None, repr=False)
    detail: str = ""


class DeliveryTracker:
    """Which uids were sent with a callback URL of this tracker, and the reports seen for them.

    Share one tracker between the sender (`AsyncSender(tracker=...)`) and the receiver
    (`DeliveryReportReceiver(tracker=...)`): the sender stamps each message without a
    `callback_url` with `callback_url` (which carries the token) and records its uid; the
    receiver refuses a report without the token (403) and applies one only for a recorded uid.
    Reports carry no signature: the token, compared in constant time, and the recorded uids are
    what keep a forged report from marking a message accepted (it would then never be sent).

    Args:
        callback_base: the URL where the receiver is served (`https://me.example/dlr`).
        token: the secret; a fresh random one by default (per tracker: per sender or job).
        capacity: uids remembered at most; the oldest are forgotten first.
    """

    def __init__(
        self,
        callback_base: str | None = None,
        *,
        token: str | None = None,
        capacity: int = DEFAULT_TRACKED,
    ) -> None:
        self.token = token if token is not None else secrets.token_urlsafe(24)
        self._capacity = capacity
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._reports: OrderedDict[str, DeliveryReport] = OrderedDict()
        self.callback_url: str | None = None
        if callback_base is not None:
            parts = urlsplit(callback_base)
            query = "&".join(
                q for q in (parts.query, urlencode({TOKEN_PARAMETER: self.token})) if q
            )
            self.callback_url = urlunsplit(parts._replace(query=query))

    def __repr__(self) -> str:
        # The token is a secret: never shown.
        return f"<DeliveryTracker sent={len(self._sent)} reports={len(self._reports)}>"

    def accepts_token(self, given: str | None) -> bool:
        """Whether `given` is this tracker's token (constant time)."""
        if given is None:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())

    def sent(self, uid: str) -> None:
        """Record that `uid` went out with this tracker's callback URL."""
        self._remember(self._sent, uid, None)

    def sent_uids(self, uids: Iterable[str]) -> None:
        for uid in uids:
            self.sent(uid)

    def knows(self, uid: str) -> bool:
        return uid in self._sent

    def record(self, report: DeliveryReport) -> bool:
        """Apply `report` if it is for a uid sent with this tracker; say whether it was."""
        if report.uid is None or report.uid not in self._sent:
            return False
        self._remember(self._reports, report.uid, report)
        return True

    def report_for(self, uid: str) -> DeliveryReport | None:
        """The latest report applied for `uid`, or None."""
        return self._reports.get(uid)

    def _remember(self, table: OrderedDict[str, _V], uid: str, value: _V) -> None:
        table[uid] = value
        table.move_to_end(uid)
        while len(table) > self._capacity:
            table.popitem(last=False)


def found_by_lookup(uid: str, status: DeliveryStatus) -> Reconciliation:
    """The verdict "accepted" on `uid`, from the gateway's record of it."""
    return Reconciliation(
        uid,
        "accepted",
        message_id=status.message_id,
        source="lookup",
        status=status,
        detail=f"the gateway has it ({status.status!r})",
    )


async def reconcile(
    uid: str,
    *,
    look_up: Callable[[str], Awaitable[DeliveryStatus | None]],
    tracker: DeliveryTracker | None,
    since: float,
    settle: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    deadline: float | None = None,
    confirm: Callable[[], Awaitable[None]] | None = None,
    phonenumber: str | None = None,
) -> Reconciliation:
    """The verdict on `uid`, whose last attempt ended at `since` (on `clock`); see above.

    `look_up` is `AsyncSender.get_delivery_status` by uid. Past `deadline`, before two
    settled lookups could be made, the verdict stays "unknown". `confirm` (the sender's
    `CheckBalance`) must succeed before two misses count as "not_accepted": a lookup made
    with wrong credentials or on another account also finds nothing, and must not make a
    message that was accepted be sent again. Where `phonenumber` is given, a record for the
    uid that names another number is some other message with the same uid: "unknown".
    """

    def from_report() -> Reconciliation | None:
        report = tracker.report_for(uid) if tracker is not None else None
        if report is None:
            return None
        return Reconciliation(
            uid,
            "accepted",
            message_id=report.message_id,
            source="report",
            report=report,
            detail=f"a delivery report says {report.status!r}",
        )

    found = from_report()
    if found is not None:
        return found
    for check, wait_until in enumerate((since + settle, None)):
        wait = (wait_until - clock()) if wait_until is not None else settle
        if deadline is not None and clock() + max(wait, 0.0) > deadline:
            return Reconciliation(uid, "unknown", detail="no time left to let a record settle")
        if wait > 0:
            await sleep(wait)
        found = from_report()
        if found is not None:
            return found
        try:
            status = await look_up(uid)
        except LookupFailed as exc:
            logger.debug("uid=%s stays unknown: %s", uid, exc)
            return Reconciliation(uid, "unknown", detail=f"the lookup failed: {exc}")
        if status is not None and not _same_number(status.phonenumber, phonenumber):
            return Reconciliation(
                uid,
                "unknown",
                detail="the gateway's record of this uid is of another number: two messages "
                "share the uid",
            )
        if status is not None:
            return found_by_lookup(uid, status)
        logger.debug("uid=%s not found by lookup %d", uid, check + 1)
    if confirm is not None:
        try:
            await confirm()
        except LookupFailed as exc:
            return Reconciliation(
                uid, "unknown", detail=f"not found, but the account could not be checked: {exc}"
            )
    return Reconciliation(
        uid, "not_accepted", source="lookup", detail="two settled lookups found nothing"
    )


def _same_number(recorded: str | None, sent: str | None) -> bool:
    """Whether a record's number may be the one sent (either unknown: it may)."""
    if not recorded or not sent:
        return True
    digits = "".join(c for c in recorded if c.isdigit())
    return not digits or digits == "".join(c for c in sent if c.isdigit())
