"""The sender's lookups and reconciliation: the I/O around `_lookup` and `_reconcile`.

`AsyncSender` inherits these methods; they go through its admission (the rate limit and slots
count lookups too) and its backend, within its deadline. A lookup only reads, so it is retried
on any failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from . import _defaults as defaults
from ._admission import Admission, Late
from ._backends import Answer, Backend
from ._config import SenderConfig
from ._exceptions import OutcomeUnknown, SenderClosed
from ._lookup import (
    BALANCE_PATH,
    DELIVERY_STATUS_PATH,
    Balance,
    DeliveryStatus,
    LookupFailed,
    balance_request,
    delivery_status_request,
    read_balance,
    read_delivery_status,
)
from ._message import SMS
from ._protocol import Request, SendResult
from ._reconcile import DeliveryTracker, Reconciliation, reconcile
from ._secrets import Secret, scrub

__all__ = ["LookupsMixin", "accepted_by"]

logger = logging.getLogger(defaults.LOGGER_NAME)

_T = TypeVar("_T")

#: Seconds a successful account check (`CheckBalance`) stands for reconciliation.
ACCOUNT_CHECK_TTL: Final = 300.0


class LookupsMixin:
    """`get_delivery_status()`, `check_balance()` and `reconcile()` of `AsyncSender`."""

    config: SenderConfig
    tracker: DeliveryTracker | None
    _admission: Admission
    _backend: Backend
    _password: Secret
    _prefix: str
    _clock: Callable[[], float] | None
    _sleep: Callable[[float], Awaitable[None]]
    _account_checked_at: float | None = None
    _account_check: asyncio.Lock | None = None

    def _closed(self) -> bool:
        raise NotImplementedError

    # -- lookups ----------------------------------------------------------------------------

    async def get_delivery_status(
        self, *, uid: str | None = None, message_id: str | None = None
    ) -> DeliveryStatus | None:
        """What the gateway knows of a message (`GetDeliveryStatus`), or None: not found.

        Found only where the answer carries a `message_id` and a `DLRStatus` for the uid or
        message_id asked (`_lookup`'s rule). A lookup only reads, so it is retried on any
        failure, within the sender's deadline.

        Raises:
            ValueError: neither `uid` nor `message_id` was given.
            LookupFailed: the gateway could not be asked, or its answer is unreadable.
        """
        return await self._delivery_status(uid, message_id, None)

    async def _delivery_status(
        self, uid: str | None, message_id: str | None, deadline: float | None
    ) -> DeliveryStatus | None:
        request = delivery_status_request(
            **self._lookup_fields(DELIVERY_STATUS_PATH), uid=uid, message_id=message_id
        )
        return await self._look_up(
            request,
            lambda a: read_delivery_status(a.status, a.body, uid=uid, message_id=message_id),
            deadline=deadline,
        )

    async def check_balance(self) -> Balance:
        """The account's balance (`CheckBalance`). Raises LookupFailed as lookups do."""
        request = balance_request(**self._lookup_fields(BALANCE_PATH))
        return await self._look_up(request, lambda a: read_balance(a.status, a.body))

    def _lookup_fields(self, path: str) -> dict[str, Any]:
        config = self.config
        return {
            "method": config.method,
            "path": self._prefix + path,
            "api_id": config.api_id,
            "api_password": self._password,
        }

    async def _look_up(
        self, request: Request, read: Callable[[Answer], _T], deadline: float | None = None
    ) -> _T:
        if self._closed():
            raise SenderClosed("this AsyncSender is closed; create a new one")
        loop = asyncio.get_running_loop()
        clock = self._clock or loop.time
        own = clock() + self.config.deadline
        deadline = own if deadline is None else min(own, deadline)
        policy = self.config.retry
        attempt = 1
        while True:
            try:
                await self._admission.enter(loop.time() + deadline - clock())
            except Late as late:
                raise LookupFailed(str(late)) from None
            try:
                answer = await self._backend.exchange(request, loop.time() + deadline - clock())
            except Exception as exc:
                failure = LookupFailed(
                    f"the lookup failed ({scrub(f'{type(exc).__name__}: {exc}', self._password)})"
                )
            else:
                try:
                    return read(answer)
                except LookupFailed as exc:
                    # Without the frames that read the answer (they hold its body).
                    failure = exc.with_traceback(None)
                finally:
                    answer.finish(keep=200 <= answer.status < 300)
            finally:
                self._admission.leave()
            wait = policy.backoff(attempt)
            if attempt >= policy.attempts or clock() + wait >= deadline:
                raise failure
            logger.debug("lookup retried in %.3fs after attempt %d: %s", wait, attempt, failure)
            await self._sleep(wait)
            attempt += 1

    async def reconcile(
        self, what: OutcomeUnknown | SMS | str, *, age: float | None = None
    ) -> Reconciliation:
        """Resolve an unknown outcome: was the message accepted? (`_reconcile` tells how.)

        `what` is the `OutcomeUnknown` a send raised, the `SMS`, or its uid. `age`: how many
        seconds ago its last attempt ended, where the caller knows (a bulk job's journal
        does); without it or the error, the last attempt is taken to have been just now. The
        verdict "not_accepted" is the only one that makes a resend safe.

        Raises:
            ValueError: `age` is negative.
        """
        if age is not None and not age >= 0:
            raise ValueError(f"age: expected seconds >= 0, got {age!r}")
        return await self._reconcile(what, None, age=age)

    async def _reconcile(
        self, what: OutcomeUnknown | SMS | str, deadline: float | None, *, age: float | None = None
    ) -> Reconciliation:
        clock = self._clock or asyncio.get_running_loop().time
        since = clock() - (age or 0.0)
        uid = what if isinstance(what, str) else what.uid
        phonenumber = None if isinstance(what, str) else _message_of(what).phonenumber
        if isinstance(what, OutcomeUnknown):
            if age is None and what.ended_at is not None:
                since = what.ended_at
            if what.timed_out or what.status_code == 504:
                # No answer in time: the gateway may accept it later still.
                since += defaults.RECONCILE_IN_FLIGHT

        async def look_up(uid: str) -> DeliveryStatus | None:
            # Within the send's deadline, where a send reconciles its own attempt.
            return await self._delivery_status(uid, None, deadline)

        return await reconcile(
            uid,
            look_up=look_up,
            tracker=self.tracker,
            since=since,
            settle=self.config.reconcile_settle,
            clock=clock,
            sleep=self._sleep,
            deadline=deadline,
            confirm=self._confirm_account,
            phonenumber=phonenumber,
        )

    async def _confirm_account(self) -> None:
        """Check that the credentials work (`CheckBalance`), at most once per
        `ACCOUNT_CHECK_TTL` seconds. Raises LookupFailed."""
        clock = self._clock or asyncio.get_running_loop().time
        if self._account_check is None:
            self._account_check = asyncio.Lock()
        # One check at a time: reconciliations that finish together share it.
        async with self._account_check:
            checked = self._account_checked_at
            if checked is not None and clock() - checked < ACCOUNT_CHECK_TTL:
                return
            await self.check_balance()
            self._account_checked_at = clock()


def _message_of(what: OutcomeUnknown | SMS) -> SMS:
    return what if isinstance(what, SMS) else what.message


def accepted_by(found: Reconciliation, sms: SMS, attempts: int) -> SendResult:
    """The `SendResult` of a message whose answer was lost and whose acceptance was found."""
    evidence = found.status.raw if found.status is not None else {}
    if found.report is not None:
        evidence = found.report.raw
    return SendResult(
        message_id=found.message_id or "",
        status="S",
        remarks="",
        uid=sms.uid,
        body=evidence,
        message=sms,
        attempts=attempts,
        reconciled=True,
    )
