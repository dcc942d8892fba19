"""Delivery reports: what the gateway pushes to a message's `callback_url` (pure, no I/O).

The gateway (its vendor family) pushes a report as an HTTP POST with a JSON body such as

    {"uid": "tv-719b8afb-test", "message_id": "22281907", "DLRStatus": "Delivered",
     "PhoneNumber": "56934449937"}

Some deployments send the same fields as a form body or in the query string, and some spell the
names in lower case. `parse_delivery_report()` reads all of these into a `DeliveryReport`; input
that is not a delivery report raises `InvalidDeliveryReport`, and nothing else.

Field names are matched ignoring case, `_` and `-` (`DLRStatus`, `dlrstatus`, `dlr_status`).
Unknown fields are kept in `DeliveryReport.raw`; unknown status words pass through with the
state `unknown`.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

import attrs

from ._exceptions import HaoruiError

__all__ = [
    "DeliveryReport",
    "DeliveryState",
    "InvalidDeliveryReport",
    "parse_delivery_report",
]

#: The longest value shown in an `InvalidDeliveryReport` message: reports come from the network.
_PREVIEW_LENGTH: Final = 80


class InvalidDeliveryReport(HaoruiError, ValueError):
    """What arrived at the callback URL is not a delivery report.

    Raised by `parse_delivery_report()` and `DeliveryReport.from_json()`; a
    `DeliveryReportReceiver` answers it with HTTP 400.

    Attributes:
        field: the offending field, as the gateway names it (`DLRStatus`, `message_id`, ...),
            or `body` when the whole input is unreadable.
        value: what arrived (long values are cut short).
        reason: what was expected.
    """

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = _preview(value)
        self.reason = reason
        super().__init__(f"{field}: {reason} (got {self.value!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.field, self.value, self.reason))


def _preview(value: object) -> object:
    if isinstance(value, str) and len(value) > _PREVIEW_LENGTH:
        return value[:_PREVIEW_LENGTH] + "..."
    if isinstance(value, bytes) and len(value) > _PREVIEW_LENGTH:
        return value[:_PREVIEW_LENGTH] + b"..."
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    # Containers from the network can be huge or deeply nested: keep a short text instead.
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return text[:_PREVIEW_LENGTH]


class DeliveryState(str, enum.Enum):
    """The normalised meaning of a report's status word.

    `DELIVERED` and `FAILED` are final; `PENDING` reports may be followed by another one;
    `UNKNOWN` is any word this SDK does not know (it is passed through, never rejected).
    """

    DELIVERED = "delivered"
    FAILED = "failed"
    PENDING = "pending"
    UNKNOWN = "unknown"

    @classmethod
    def from_status(cls, status: str) -> DeliveryState:
        """The state of a status word (`"Delivered"`, `"DND"`, ...), ignoring case and spaces."""
        return _STATES.get(status.strip().casefold(), cls.UNKNOWN)

    @property
    def final(self) -> bool:
        """True for `DELIVERED` and `FAILED`: no later report will change the outcome."""
        return self in (DeliveryState.DELIVERED, DeliveryState.FAILED)


#: Status words seen from the gateway's family (API.md); the list is not known to be complete.
_STATES: Final[Mapping[str, DeliveryState]] = {
    "delivered": DeliveryState.DELIVERED,
    "failed": DeliveryState.FAILED,
    "undeliverable": DeliveryState.FAILED,
    "rejected": DeliveryState.FAILED,
    "expired": DeliveryState.FAILED,
    "dnd": DeliveryState.FAILED,
    "pending": DeliveryState.PENDING,
    "accepted": DeliveryState.PENDING,
    "acknowledged": DeliveryState.PENDING,
}

_optional_str = attrs.validators.optional(attrs.validators.instance_of(str))


@attrs.frozen(kw_only=True)
class DeliveryReport:
    """One delivery report: the operator's word on what became of a message.

    Build it from the wire with `parse_delivery_report()` (bytes as they arrived) or
    `from_json()` (an already decoded mapping); build it directly in your own tests.

    Attributes:
        status: the status word as received (`"Delivered"`, `"DND"`, ...).
        state: the normalised state of `status` (derived from it unless given).
        uid: the `uid` the message was sent with (`SMS.uid`, `SendResult.uid`), or None.
        message_id: the gateway's id of the message (`SendResult.message_id`), as a string,
            exactly: ids of 19 digits and more survive.
        phonenumber: the recipient (`PhoneNumber`), or None.
        sms_id: the operator's id of the message (`SMSID`), or None.
        error_code: the operator's error code (`ErrorCode`), as a string, or None.
        error_description: the operator's words on the error (`ErrorDescription`), or None.
        client_cost: what the message cost (`ClientCost`), as a string, or None.
        remarks: the gateway's remarks (`Remarks`), or None.
        raw: every field as received, unknown ones included, under their original names.
    """

    status: str = attrs.field(validator=attrs.validators.instance_of(str))
    state: DeliveryState = attrs.field(validator=attrs.validators.instance_of(DeliveryState))
    uid: str | None = attrs.field(default=None, validator=_optional_str)
    message_id: str | None = attrs.field(default=None, validator=_optional_str)
    phonenumber: str | None = attrs.field(default=None, validator=_optional_str)
    sms_id: str | None = attrs.field(default=None, validator=_optional_str)
    error_code: str | None = attrs.field(default=None, validator=_optional_str)
    error_description: str | None = attrs.field(default=None, validator=_optional_str)
    client_cost: str | None = attrs.field(default=None, validator=_optional_str)
    remarks: str | None = attrs.field(default=None, validator=_optional_str)
    raw: Mapping[str, Any] = attrs.field(factory=dict, repr=False, eq=False)

    @state.default
    def _state_of_status(self) -> DeliveryState:
        return DeliveryState.from_status(self.status)

    @property
    def final(self) -> bool:
        """True when the state is final (delivered or failed)."""
        return self.state.final

    @classmethod
    def from_json(cls, fields: Mapping[str, Any]) -> DeliveryReport:
        """Build a report from its decoded fields (a JSON object, form or query fields).

        Names are matched ignoring case, `_` and `-`. A report needs a `DLRStatus` and at
        least one of `uid` and `message_id`; empty values count as absent.

        Raises:
            InvalidDeliveryReport: `fields` is not a mapping with string keys, a field is
                missing, of the wrong type, or given twice with different values.
        """
        return cls._build(_known_fields(_pairs_of_mapping(fields)), fields)

    @classmethod
    def _build(cls, found: Mapping[str, tuple[str, Any]], raw: Mapping[str, Any]) -> DeliveryReport:
        values: dict[str, str | None] = {}
        for folded, (wire_name, attribute, kind) in _FIELDS.items():
            value = found[folded][1] if folded in found else None
            values[attribute] = _scalar(wire_name, value, kind)
        status = values["status"]
        if status is None:
            if "dlrstatus" not in found:
                raise InvalidDeliveryReport("DLRStatus", None, "required: the delivery status")
            # Present but blank: a status word nobody knows, not a missing one.
            status = ""
        if values["uid"] is None and values["message_id"] is None:
            raise InvalidDeliveryReport(
                "message_id", None, "a report needs a message_id or a uid to match its message"
            )
        return cls(
            status=status,
            uid=values["uid"],
            message_id=values["message_id"],
            phonenumber=values["phonenumber"],
            sms_id=values["sms_id"],
            error_code=values["error_code"],
            error_description=values["error_description"],
            client_cost=values["client_cost"],
            remarks=values["remarks"],
            raw=raw,
        )


#: Per field: the gateway's name, the attribute, and which JSON values it accepts:
#: "id" strings and integers (a float would have lost digits), "number" floats too.
_FIELDS: Final[Mapping[str, tuple[str, str, str]]] = {
    "dlrstatus": ("DLRStatus", "status", "id"),
    "uid": ("uid", "uid", "id"),
    "messageid": ("message_id", "message_id", "id"),
    "phonenumber": ("PhoneNumber", "phonenumber", "id"),
    "smsid": ("SMSID", "sms_id", "id"),
    "errorcode": ("ErrorCode", "error_code", "id"),
    "errordescription": ("ErrorDescription", "error_description", "id"),
    "clientcost": ("ClientCost", "client_cost", "number"),
    "remarks": ("Remarks", "remarks", "id"),
}


def _fold(name: str) -> str:
    return name.casefold().replace("_", "").replace("-", "")


def _known_fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, tuple[str, Any]]:
    """The known fields among `pairs`, by folded name; a contradiction raises."""
    found: dict[str, tuple[str, Any]] = {}
    for name, value in pairs:
        folded = _fold(name)
        if folded not in _FIELDS:
            continue
        earlier = found.get(folded)
        if earlier is not None and earlier[1] != value:
            raise InvalidDeliveryReport(
                _FIELDS[folded][0], value, f"given twice with different values ({name!r})"
            )
        found[folded] = (name, value)
    return found


def _scalar(field: str, value: object, kind: str) -> str | None:
    """A field's value as a string (None when absent or blank); raise for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidDeliveryReport(field, value, "expected a string or a number, not a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and kind == "number":
        if value != value or value in (float("inf"), float("-inf")):
            raise InvalidDeliveryReport(field, value, "expected a finite number")
        return repr(value)
    if isinstance(value, str):
        stripped = value.strip()
        return stripped or None
    if isinstance(value, float):
        raise InvalidDeliveryReport(
            field, value, "expected a string or an integer: a float may have lost digits"
        )
    raise InvalidDeliveryReport(field, value, "expected a string or a number")


def _pairs_of_mapping(fields: object) -> list[tuple[str, Any]]:
    if not isinstance(fields, Mapping):
        raise InvalidDeliveryReport("body", fields, "expected a JSON object of report fields")
    pairs = list(fields.items())
    for name, _ in pairs:
        if not isinstance(name, str):
            raise InvalidDeliveryReport("body", name, "field names must be strings")
    return pairs


_JSON_TYPES: Final = frozenset({"application/json", "text/json"})
_FORM_TYPES: Final = frozenset({"application/x-www-form-urlencoded"})


def _media_type(content_type: str | None) -> tuple[str, str]:
    """The media type and charset of a Content-Type header (both lower-case)."""
    if not content_type:
        return "", "utf-8"
    media, _, params = content_type.partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"').lower()
    return media.strip().lower(), charset


def _decode_json(body: bytes) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):
        # ValueError covers bad JSON, bad UTF-8 and over-long integers.
        raise InvalidDeliveryReport("body", body, "expected a JSON object") from None
    if not isinstance(decoded, dict):
        raise InvalidDeliveryReport("body", decoded, "expected a JSON object")
    return list(decoded.items()), decoded


def _decode_form(text: bytes | str, charset: str, where: str) -> list[tuple[str, str]]:
    if isinstance(text, bytes):
        try:
            text = text.decode(charset)
        except (UnicodeDecodeError, LookupError):
            raise InvalidDeliveryReport(where, text, f"not text in {charset!r}") from None
    try:
        return parse_qsl(text, keep_blank_values=True, encoding=charset, errors="strict")
    except (UnicodeDecodeError, LookupError, ValueError):
        raise InvalidDeliveryReport(where, text, "not a URL-encoded form") from None


def parse_delivery_report(
    body: bytes, content_type: str | None = None, query_string: bytes | str = b""
) -> DeliveryReport:
    """Read a delivery report as it arrived at the callback URL.

    The body is read as JSON (`application/json`) or as a form
    (`application/x-www-form-urlencoded`); without a known `Content-Type`, a body starting
    with `{` is read as JSON and any other as a form. The query string's fields are read
    too: a report pushed with GET carries all of its fields there, and the body's fields
    win over the query's where both carry one.

    Args:
        body: the request body, as received (may be empty).
        content_type: the request's `Content-Type` header, or None.
        query_string: the URL's query string, without the `?`.

    Raises:
        InvalidDeliveryReport: the input is not a delivery report (unreadable body, a
            missing status or id, a field of the wrong type).
    """
    media, charset = _media_type(content_type)
    query_pairs = _decode_form(query_string, "utf-8", "query string") if query_string else []
    body_pairs: list[tuple[str, Any]] = []
    raw: dict[str, Any] = dict(query_pairs)
    if body.strip():
        if media in _JSON_TYPES or (media not in _FORM_TYPES and body.lstrip()[:1] == b"{"):
            body_pairs, decoded = _decode_json(body)
            raw.update(decoded)
        else:
            body_pairs = _decode_form(body, charset, "body")
            raw.update(body_pairs)
    if not query_pairs and not body_pairs:
        raise InvalidDeliveryReport("body", body, "empty: no report fields in body or query")
    # Each source is checked for contradictions on its own; the body wins over the query.
    found = _known_fields(query_pairs)
    found.update(_known_fields(body_pairs))
    return DeliveryReport._build(found, raw)
