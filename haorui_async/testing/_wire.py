"""The gateway's wire, read and written as plain values (no I/O).

What arrives: `read_params()` turns a query string and a body (JSON or form) into parameters,
`check_credentials()` and `read_send_request()` check them as the real API does. What goes
back: a `Reply`, and `refusal()` for the family's `{"status": "F", "remarks": ...}` answer to a
request it will not take (HTTP 200, as the gateway family reports failures).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlsplit

import attrs

from .._defaults import SEND_SMS_PATH
from .._lookup import BALANCE_PATH, DELIVERY_STATUS_PATH

if TYPE_CHECKING:
    from ._lookups import Message

__all__ = [
    "LOOKUP_PATHS",
    "MESSAGES_PATH",
    "STATS_PATH",
    "UIDS_PATH",
    "Refused",
    "Reply",
    "SendRequest",
    "check_credentials",
    "is_http_url",
    "is_lookup_path",
    "json_reply",
    "read_params",
    "read_send_request",
    "refusal",
    "text_or_none",
    "uid_of",
]

#: The paths, lowered: they are matched without case, as the gateway matches them.
SEND_PATH: Final = SEND_SMS_PATH.lower()
DELIVERY_STATUS: Final = DELIVERY_STATUS_PATH.lower()
BALANCE: Final = BALANCE_PATH.lower()
#: The read-only endpoints.
LOOKUP_PATHS: Final = frozenset({DELIVERY_STATUS, BALANCE})
STATS_PATH: Final = "/_emulator/stats"
MESSAGES_PATH: Final = "/_emulator/messages"
UIDS_PATH: Final = "/_emulator/uids"

_REQUIRED: Final = (
    "api_id",
    "api_password",
    "sms_type",
    "encoding",
    "sender_id",
    "phonenumber",
    "textmessage",
)
_SMS_TYPES: Final = frozenset({"P", "T"})
#: "FS" and "UFS" (flash text, flash Unicode) are documented by the gateway family.
_ENCODINGS: Final = frozenset({"T", "U", "FS", "UFS"})
_PHONENUMBER: Final = re.compile(r"[1-9]\d{6,14}")
_SENDER_ID: Final = re.compile(r"[A-Za-z0-9]{1,11}|\d{1,15}")
_JSON_HEADERS: Final = ((b"content-type", b"application/json"),)


@attrs.frozen
class Reply:
    """What the gateway answers to one request.

    Attributes:
        status: the HTTP status.
        body: the encoded body.
        headers: header pairs, as bytes (the ASGI form).
        accepted: the message the request left accepted, or None.
    """

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = _JSON_HEADERS
    accepted: Message | None = None


def json_reply(payload: object, status: int = 200) -> Reply:
    """`payload` as a compact JSON answer."""
    return Reply(status, json.dumps(payload, separators=(",", ":")).encode())


class Refused(Exception):
    """A request the gateway answers with `status: "F"`; the text is its remarks."""


def refusal(remarks: str, uid: str | None) -> Reply:
    """The family's answer to a request it refuses: HTTP 200, `status: "F"`."""
    return json_reply({"message_id": None, "status": "F", "remarks": remarks, "uid": uid})


def is_lookup_path(path: str) -> bool:
    """Whether `path` is one of the read-only lookups (`GetDeliveryStatus`, `CheckBalance`)."""
    return path.lower() in LOOKUP_PATHS


def read_params(
    method: str, query: bytes | str, body: bytes, content_type: str = ""
) -> Mapping[str, object] | None:
    """The request's parameters, or None when the body cannot be read.

    Query-string parameters come first; a POST body's parameters override them.
    """
    if isinstance(query, bytes):
        query = query.decode("latin-1")
    params: dict[str, object] = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    if method != "POST" or not body:
        return params
    if content_type.startswith("application/x-www-form-urlencoded"):
        try:
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return None
        return params
    try:
        decoded = json.loads(body)
    except ValueError:
        return None
    if not isinstance(decoded, dict):
        return None
    params.update(decoded)
    return params


def text_or_none(value: object) -> str | None:
    """A parameter as text: JSON numbers are taken as their digits, anything else is None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def uid_of(params: Mapping[str, object] | None) -> str | None:
    """The caller's uid, or None when the request carries none (or cannot be read)."""
    if params is None:
        return None
    return text_or_none(params.get("uid")) or None


def is_http_url(value: str) -> bool:
    """Whether `value` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_credentials(params: Mapping[str, object] | None, accounts: Mapping[str, str]) -> None:
    """Check that the request was readable and names a known account.

    Raises:
        Refused: the body could not be read, a credential is missing, or the pair is unknown.
    """
    if params is None:
        raise Refused("Invalid request: the body is not a JSON object")
    values = {}
    for name in ("api_id", "api_password"):
        value = text_or_none(params.get(name))
        if value is None or not value.strip():
            raise Refused(f"Missing parameter: {name}")
        values[name] = value
    if accounts.get(values["api_id"]) != values["api_password"]:
        raise Refused("Invalid API credentials")


@attrs.frozen
class SendRequest:
    """The checked parameters of one SendSMS request (`sms_type`, `encoding` upper-cased)."""

    api_id: str
    sms_type: str
    encoding: str
    sender_id: str
    phonenumber: str
    textmessage: str
    callback_url: str | None


def read_send_request(params: Mapping[str, object], accounts: Mapping[str, str]) -> SendRequest:
    """Check SendSMS parameters as the real API does.

    Raises:
        Refused: a parameter is missing or malformed, or the credentials are unknown.
    """
    values: dict[str, str] = {}
    for name in _REQUIRED:
        raw = params.get(name)
        value = text_or_none(raw)
        if raw is None or (value is not None and not value.strip()):
            raise Refused(f"Missing parameter: {name}")
        if value is None:
            raise Refused(f"Invalid parameter: {name} (expected a string)")
        values[name] = value
    if accounts.get(values["api_id"]) != values["api_password"]:
        raise Refused("Invalid API credentials")
    sms_type = values["sms_type"].upper()
    if sms_type not in _SMS_TYPES:
        raise Refused("Invalid parameter: sms_type (expected P or T)")
    encoding = values["encoding"].upper()
    if encoding not in _ENCODINGS:
        raise Refused("Invalid parameter: encoding (expected T, U, FS or UFS)")
    if not _SENDER_ID.fullmatch(values["sender_id"]):
        raise Refused("Invalid parameter: sender_id")
    if not _PHONENUMBER.fullmatch(values["phonenumber"]):
        raise Refused("Invalid parameter: phonenumber (country code and number, digits)")
    callback_url = text_or_none(params.get("callback_url")) or None
    if callback_url is not None and not is_http_url(callback_url):
        raise Refused("Invalid parameter: callback_url")
    return SendRequest(
        api_id=values["api_id"],
        sms_type=sms_type,
        encoding=encoding,
        sender_id=values["sender_id"],
        phonenumber=values["phonenumber"],
        textmessage=values["textmessage"],
        callback_url=callback_url,
    )
