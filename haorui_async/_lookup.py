"""Lookups, as plain functions: `GetDeliveryStatus` and `CheckBalance` (no I/O).

Neither endpoint is on HAORUI's own page; both are the vendor family's ([family] in API.md):
likely, not certain. What the family answers for a uid it has no record of is not known, so
the SDK's rule is strict:

- **found**: a 2xx whose JSON (an object, or a list holding one) carries a `message_id` and a
  `DLRStatus` for the uid or message_id asked;
- **not found**: any other well-formed answer (`{"status": "F", "remarks": "Record not found"}`,
  `{}`, `[]`, a record for another message);
- **unknown** (`LookupFailed`): a transport failure, a non-2xx status, or an answer that does
  not parse.

A lookup only reads, so the sender retries it freely on any transport failure.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._delivery import DeliveryReport, DeliveryState, InvalidDeliveryReport
from ._exceptions import HaoruiError
from ._protocol import Request, encode_json, encode_query
from ._secrets import Secret

__all__ = [
    "BALANCE_PATH",
    "DELIVERY_STATUS_PATH",
    "Balance",
    "DeliveryStatus",
    "LookupFailed",
    "balance_request",
    "delivery_status_request",
    "read_balance",
    "read_delivery_status",
]

#: The family's endpoints, relative to the base URL.
DELIVERY_STATUS_PATH: Final = "/api/GetDeliveryStatus"
BALANCE_PATH: Final = "/api/CheckBalance"


class LookupFailed(HaoruiError):
    """A lookup could not tell: the gateway was not reached, refused, or its answer is unreadable.

    Nothing is known of the message from it; look again later, or wait for its delivery report.

    Attributes:
        status_code: the HTTP status of the answer, or None where there was none.
    """

    def __init__(self, detail: str, *, status_code: int | None = None) -> None:
        self.detail = detail
        self.status_code = status_code
        super().__init__(detail)


@attrs.frozen(kw_only=True)
class DeliveryStatus:
    """What `GetDeliveryStatus` knows of one message.

    Attributes:
        message_id: the gateway's id, as a string, exactly.
        uid: the message's uid, where the record names it (else the one asked for).
        status: the `DLRStatus` word as received.
        state: its normalised state (the same as a `DeliveryReport`'s).
        phonenumber, parts, cost, error_code, error_description: as the record says, or None.
        sent_at: `SentDateUTC`, where it parses (timezone-aware, UTC), else None.
        raw: the record as received.
    """

    message_id: str
    uid: str | None
    status: str
    state: DeliveryState
    phonenumber: str | None = None
    parts: int | None = None
    cost: decimal.Decimal | None = None
    error_code: str | None = None
    error_description: str | None = None
    sent_at: datetime.datetime | None = None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


@attrs.frozen(kw_only=True)
class Balance:
    """What `CheckBalance` answered: the amount (exact), its currency, the raw fields."""

    amount: decimal.Decimal
    currency: str | None
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)


def _credentials(api_id: str, api_password: Secret) -> dict[str, str]:
    return {"api_id": api_id, "api_password": api_password.reveal()}


def _request(method: str, path: str, params: Mapping[str, str]) -> Request:
    if method == "POST":
        return Request("POST", path.encode("ascii"), encode_json(params))
    return Request("GET", f"{path}?{encode_query(params)}".encode("ascii"), b"")


def delivery_status_request(
    *,
    method: str,
    path: str,
    api_id: str,
    api_password: Secret,
    uid: str | None = None,
    message_id: str | None = None,
) -> Request:
    """The `GetDeliveryStatus` request for `uid` and/or `message_id` (at least one).

    Raises ValueError: neither was given.
    """
    if uid is None and message_id is None:
        raise ValueError("uid, message_id: give at least one")
    params = _credentials(api_id, api_password)
    if message_id is not None:
        params["message_id"] = message_id
    if uid is not None:
        params["uid"] = uid
    return _request(method, path, params)


def balance_request(*, method: str, path: str, api_id: str, api_password: Secret) -> Request:
    """The `CheckBalance` request."""
    return _request(method, path, _credentials(api_id, api_password))


def _decode(status_code: int, body: bytes, what: str) -> object:
    if not 200 <= status_code < 300:
        raise LookupFailed(
            f"{what}: the gateway answered HTTP {status_code}", status_code=status_code
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        pass
    # (Raised out of the handler: the decoder's frames and its error hold the answer, which
    # may echo the password, so they are not even a hidden context.)
    raise LookupFailed(f"{what}: the answer is not JSON", status_code=status_code)


def _folded(record: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).casefold().replace("_", ""): v for k, v in record.items()}


def _parts(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _decimal(value: object) -> decimal.Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        # str() first: a float goes in by its shortest repr, not its binary expansion.
        amount = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _timestamp(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=datetime.timezone.utc) if when.tzinfo is None else when


def read_delivery_status(
    status_code: int, body: bytes, *, uid: str | None = None, message_id: str | None = None
) -> DeliveryStatus | None:
    """The record of the message asked for, or None (not found, by the rule above).

    Raises LookupFailed: a non-2xx answer, or one that does not parse.
    """
    decoded = _decode(status_code, body, "GetDeliveryStatus")
    records = decoded if isinstance(decoded, list) else [decoded]
    for record in records:
        if not isinstance(record, Mapping):
            continue
        try:
            report = DeliveryReport.from_json(record)
        except InvalidDeliveryReport:
            continue
        if report.message_id is None or "dlrstatus" not in _folded(record):
            continue
        if message_id is not None and report.message_id != message_id:
            continue
        if uid is not None and report.uid is not None and report.uid != uid:
            continue  # another message's record; one that names no uid answers the query
        extra = _folded(record)
        return DeliveryStatus(
            message_id=report.message_id,
            uid=report.uid if report.uid is not None else uid,
            status=report.status,
            state=report.state,
            phonenumber=report.phonenumber,
            parts=_parts(extra.get("messageparts")),
            cost=_decimal(extra.get("clientcost")),
            error_code=report.error_code,
            error_description=report.error_description,
            sent_at=_timestamp(extra.get("sentdateutc")),
            raw=record,
        )
    return None


def read_balance(status_code: int, body: bytes) -> Balance:
    """The balance; raises LookupFailed where the answer carries no amount."""
    decoded = _decode(status_code, body, "CheckBalance")
    if not isinstance(decoded, Mapping):
        raise LookupFailed("CheckBalance: the answer is not a JSON object", status_code=status_code)
    fields = _folded(decoded)
    amount = _decimal(fields.get("balanceamount"))
    if amount is None:
        raise LookupFailed(
            "CheckBalance: the answer carries no BalanceAmount", status_code=status_code
        )
    # The family spells it "CurrenceCode" (sic); "CurrencyCode" is read as well.
    currency = fields.get("currencecode", fields.get("currencycode"))
    return Balance(
        amount=amount,
        currency=currency if isinstance(currency, str) and currency else None,
        raw=decoded,
    )
