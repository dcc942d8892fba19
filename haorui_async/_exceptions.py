"""The exceptions of haorui-async: one tree, one root.

```
HaoruiError
├── ConfigurationError (also ValueError)   the sender was set up wrongly: no credentials, bad option
├── SenderClosed (also RuntimeError)       the sender was used after aclose()
├── InvalidMessage (also ValueError)       a message failed validation; nothing was sent
├── InvalidDeliveryReport (also ValueError) what arrived at a callback URL is not a delivery report
└── SendError                              a send did not succeed; carries the message and its uid
    ├── SubmissionFailed                   the gateway answered status "F": not accepted
    ├── NotSent                            provably never accepted: retried by default
    │   │                                  (connection refused, DNS failure, connect or pool
    │   │                                   timeout, HTTP 408, 429, 503)
    │   └── Rejected                       refused as it stands: never retried
    │                                      (other 4xx, 3xx, 501, 505, an unusable URL)
    └── OutcomeUnknown                     may have been accepted: never retried by default
                                           (read or write timeout, connection lost after the
                                            request was written, 500, 502, 504, a 2xx whose body
                                            is not the documented JSON)
```

Every `SendError` says, in `may_have_been_sent`, whether the gateway may have accepted the
message. Where it is `True`, sending the message again may deliver it twice: reconcile by `uid`
(delivery reports carry it) before resending.

No exception built by this package carries the API password, in its text, its arguments or the
exception it was raised from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from ._message import SMS

__all__ = [
    "ConfigurationError",
    "HaoruiError",
    "InvalidMessage",
    "NotSent",
    "OutcomeUnknown",
    "Rejected",
    "SendError",
    "SenderClosed",
    "SubmissionFailed",
]


#: The kinds of outcome a failed send can be (the `sent` and `invalid` kinds are not sends
#: that failed).
_SendKind = Literal["failed", "rejected", "not_sent", "unknown"]


class HaoruiError(Exception):
    """The root of every exception raised by haorui-async."""


class ConfigurationError(HaoruiError, ValueError):
    """The sender was configured wrongly (missing credentials, an invalid option)."""


class SenderClosed(HaoruiError, RuntimeError):
    """The sender was used after `aclose()` (or after its `async with` block ended)."""

    #: Nothing was sent.
    kind: ClassVar[Literal["not_sent"]] = "not_sent"


class InvalidMessage(HaoruiError, ValueError):
    """A message failed validation before anything was sent.

    Attributes:
        field: the name of the offending field, as the gateway calls it (`phonenumber`, ...).
        value: the value that was given.
        reason: what was expected.
    """

    kind: ClassVar[Literal["invalid"]] = "invalid"

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}: {reason} (got {value!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.reason))


class SendError(HaoruiError):
    """A send did not end in an accepted message.

    Attributes:
        message: the `SMS` that was being sent (its `uid` identifies it in delivery reports).
        uid: shortcut for `message.uid`.
        status_code: the HTTP status of the last answer, or None where there was no answer.
        may_have_been_sent: True where the gateway may have accepted the message.
        attempts: how many requests were made for this message.
        detail: what went wrong, in words (secrets removed).
    """

    may_have_been_sent: bool = False
    #: The kind of outcome this error is (`haorui_async._outcome.KINDS`).
    kind: ClassVar[_SendKind] = "unknown"

    def __init__(
        self,
        detail: str,
        *,
        message: SMS,
        status_code: int | None = None,
        attempts: int = 1,
        retry_after: float | None = None,
    ) -> None:
        self.detail = detail
        self.message = message
        self.status_code = status_code
        self.attempts = attempts
        #: Seconds the gateway asked to wait (a `Retry-After` header), if it did.
        self.retry_after = retry_after
        #: When the last attempt ended, on the sender's clock (set by the sender).
        self.ended_at: float | None = None
        #: True where the attempt ended without an answer in time (a timeout, a 504): the
        #: gateway may still be working on the request (reconciliation waits longer).
        self.timed_out = False
        super().__init__(detail)

    @property
    def uid(self) -> str:
        return self.message.uid

    def __str__(self) -> str:
        where = ""
        if self.status_code is not None and f"HTTP {self.status_code}" not in self.detail:
            where = f"HTTP {self.status_code}, "
        sent = "may have been sent" if self.may_have_been_sent else "not sent"
        return f"{self.detail} ({where}uid={self.message.uid!r}, {sent}, attempts={self.attempts})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.detail!r}, uid={self.message.uid!r}, " + (
            f"status_code={self.status_code!r}, attempts={self.attempts!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as cls(*args) by default, which keyword-only fields defeat.
        return (_rebuild_send_error, (type(self), self.detail, dict(self.__dict__)))


def _rebuild_send_error(cls: type[SendError], detail: str, state: dict[str, Any]) -> SendError:
    err = cls.__new__(cls)
    Exception.__init__(err, detail)
    err.__dict__.update(state)
    return err


class SubmissionFailed(SendError):
    """The gateway answered `status: "F"`: it did not accept the message.

    Attributes:
        remarks: the gateway's description of the failure (never match on its wording).
        body: the whole decoded answer.
    """

    may_have_been_sent = False
    kind: ClassVar[_SendKind] = "failed"

    def __init__(
        self,
        detail: str,
        *,
        message: SMS,
        remarks: str,
        body: Mapping[str, Any],
        status_code: int | None = 200,
        attempts: int = 1,
    ) -> None:
        self.remarks = remarks
        self.body = body
        super().__init__(detail, message=message, status_code=status_code, attempts=attempts)


class NotSent(SendError):
    """The gateway provably did not accept the message; retried by default.

    Raised once the retries are spent, with the last failure.
    """

    may_have_been_sent = False
    kind: ClassVar[_SendKind] = "not_sent"


class Rejected(NotSent):
    """The request was refused as it stands (e.g. HTTP 400, 401, 403, 404): never retried.

    The message was not sent; sending the same request again will be refused again.
    """

    kind: ClassVar[_SendKind] = "rejected"


class OutcomeUnknown(SendError):
    """The gateway may have accepted the message; it is not resent unless asked.

    Look the message up by its `uid` (delivery reports carry it) before sending it again:
    the gateway has no idempotency key, so a resend may deliver the SMS twice.
    """

    may_have_been_sent = True
    kind: ClassVar[_SendKind] = "unknown"
