"""The record of an accepted message, and what the lookups answer from it (no I/O).

`Message` is what the gateway keeps of each message it accepts. The gateway family's
lookups ([family] in API.md: likely, not certain) answer from it: `status_record()` is the
`GetDeliveryStatus` record of a message, `balance_answer()` the `CheckBalance` answer,
`delivery_report()` the report (DLR) pushed to a message's callback URL.
`draw_delivery_status()` picks the one `DLRStatus` word that a message's lookups and its
report all carry.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Sequence
from typing import Any, Final

import attrs

from .._encoding import text_info
from ._wire import SendRequest

__all__ = [
    "COST_PER_PART",
    "DEFAULT_BALANCE",
    "DEFAULT_CURRENCY",
    "DEFAULT_DLR_STATUSES",
    "Message",
    "NOT_FOUND",
    "balance_answer",
    "delivery_report",
    "draw_delivery_status",
    "status_record",
]

#: What `CheckBalance` answers unless told otherwise: the family's documented example.
DEFAULT_BALANCE: Final = 1000.0
DEFAULT_CURRENCY: Final = "UGX"
#: What one SMS part costs (`ClientCost` of a lookup), in whole units of the currency so that
#: every cost is exact. An invented price: the gateway's are not public.
COST_PER_PART: Final = 30
#: Every message is delivered unless told otherwise.
DEFAULT_DLR_STATUSES: Final = (("Delivered", 1.0),)
#: `GetDeliveryStatus`'s answer for a message it does not (yet) know.
NOT_FOUND: Final = {"status": "F", "remarks": "Record not found"}


@attrs.frozen(kw_only=True)
class Message(SendRequest):
    """One message the gateway accepted.

    Attributes:
        message_id: the id the gateway gave it (an int; the answer carries it as a JSON number).
        api_id: the account that sent it.
        sms_type, encoding, sender_id, phonenumber, textmessage: as received.
        uid: the caller's id, or None when the request carried none.
        callback_url: where its delivery report goes, or None.
        method: "GET" or "POST".
        accepted_at: the model's `clock` when it was accepted (not shown by `to_json()`).
    """

    message_id: int
    uid: str | None
    method: str
    accepted_at: float = attrs.field(default=0.0, eq=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON-ready dict (the password is never kept, so never shown)."""
        return attrs.asdict(self, filter=_shown)


def _shown(attribute: attrs.Attribute[Any], value: object) -> bool:
    # A reading of a monotonic clock means nothing outside the process.
    return attribute.name != "accepted_at"


def delivery_report(message: Message, status: str = "Delivered") -> dict[str, str | None]:
    """The delivery report (DLR) the gateway pushes to `message.callback_url`.

    The gateway family's format: `message_id` is a string there, `DLRStatus` a word such as
    "Delivered", "Failed", "Undeliverable".
    """
    return {
        "uid": message.uid,
        "message_id": str(message.message_id),
        "DLRStatus": status,
        "PhoneNumber": message.phonenumber,
    }


def draw_delivery_status(
    seed: int | None, message_id: int, words: Sequence[str], weights: Sequence[float]
) -> str:
    """One of `words` by weight, the same for every call with this seed and message id."""
    if len(words) == 1:
        return words[0]
    draw = random.Random(f"{seed}:{message_id}")
    return draw.choices(words, weights)[0]


def status_record(message: Message, age: float, dlr_status: str) -> dict[str, Any]:
    """The family's `GetDeliveryStatus` record of `message`, accepted `age` seconds ago."""
    try:
        info = text_info(message.textmessage, "U" if "U" in message.encoding else "T")
    except ValueError:  # encoding "T" with characters outside GSM: the gateway took it
        info = text_info(message.textmessage, "U")
    # The model's clock may be a test's own: date the message by the time elapsed on it.
    sent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=max(0.0, age))
    return {
        "message_id": str(message.message_id),
        "uid": message.uid,
        "PhoneNumber": message.phonenumber,
        "SMSMessage": message.textmessage,
        "MessageType": message.encoding,
        "MessageLength": info.units,
        "MessageParts": info.parts,
        "ClientCost": info.parts * COST_PER_PART,
        "DLRStatus": dlr_status,
        "SMSID": str(message.message_id),
        "ErrorCode": "000",
        "ErrorDescription": "",
        "SentDateUTC": sent.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Remarks": "",
    }


def balance_answer(balance: float, currency: str) -> dict[str, Any]:
    """`CheckBalance`'s answer: `{"BalanceAmount": ..., "CurrenceCode": ...}` (sic)."""
    amount: float | int = int(balance) if balance.is_integer() else balance
    return {"BalanceAmount": amount, "CurrenceCode": currency}
