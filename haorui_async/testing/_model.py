"""The gateway as plain code: read one SendSMS request, answer it as HAORUI would (no I/O).

`GatewayModel.handle()` takes what arrived on the wire (method, path, query string, body) and
returns the `Reply` to send back. The in-process `FakeGateway` and the loopback emulator server
both wrap this one model, so a test behaves the same over either.

What the model checks, as the real API does: every required parameter is present and well
formed, and the `(api_id, api_password)` pair is a known account. A failed check is answered
HTTP 200 with `{"status": "F", "remarks": ...}`, the way the gateway family reports failures.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs

__all__ = [
    "DEMO_API_ID",
    "DEMO_API_PASSWORD",
    "DEMO_SENDER_ID",
    "FIRST_MESSAGE_ID",
    "GatewayModel",
    "Message",
    "RecordMode",
    "Reply",
    "delivery_report",
]

#: The account every emulator and fake gateway accepts unless told otherwise. It is a demo
#: account of the emulator only: the real gateway knows nothing of it.
DEMO_API_ID: Final = "API43404236"
DEMO_API_PASSWORD: Final = "demo-password"
#: A sender id for demos and examples.
DEMO_SENDER_ID: Final = "HAORUI"
#: The first `message_id` handed out. 19 digits, as the gateway family's ids are: more than a
#: float holds exactly, so a client that reads ids as floats is caught by its tests.
FIRST_MESSAGE_ID: Final = 2026083116353900001

SEND_SMS_PATH: Final = "/api/SendSMS"
STATS_PATH: Final = "/_emulator/stats"
MESSAGES_PATH: Final = "/_emulator/messages"

#: What the model keeps of accepted messages:
#: "messages" every `Message` and the per-uid counts; "uids" the per-uid counts only;
#: "totals" only the totals (constant memory, for long benchmarks).
RecordMode = Literal["messages", "uids", "totals"]
RECORD_MODES: Final = ("messages", "uids", "totals")

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
_REMARKS_OK: Final = "Message Submitted Sucessfully"
_ACCEPTED_TEMPLATE: Final = (
    '{"message_id":%d,"status":"S","remarks":"' + _REMARKS_OK + '","uid":%s}'
)


@attrs.frozen
class Message:
    """One message the gateway accepted.

    Attributes:
        message_id: the id the gateway gave it (an int; the answer carries it as a JSON number).
        api_id: the account that sent it.
        sms_type, encoding, sender_id, phonenumber, textmessage: as received.
        uid: the caller's id, or None when the request carried none.
        callback_url: where its delivery report goes, or None.
        method: "GET" or "POST".
    """

    message_id: int
    api_id: str
    sms_type: str
    encoding: str
    sender_id: str
    phonenumber: str
    textmessage: str
    uid: str | None
    callback_url: str | None
    method: str

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON-ready dict (the password is never kept, so never shown)."""
        return attrs.asdict(self)


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


def _json_reply(payload: object, status: int = 200) -> Reply:
    return Reply(status, json.dumps(payload, separators=(",", ":")).encode())


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


def _accounts(accounts: Mapping[str, str]) -> dict[str, str]:
    return dict(accounts)


class _Refused(Exception):
    """A request the gateway answers with `status: "F"`; the text is its remarks."""


# Plain attribute assignment: the counters change on every request, and attrs' validating
# __setattr__ would double the cost of each.
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class GatewayModel:
    """The HAORUI SendSMS endpoint as plain code: validates, accepts, counts.

    Args:
        accounts: the known `api_id -> api_password` pairs; the demo account by default.
        record: what is kept of accepted messages (see `RecordMode`): "messages" (the default)
            keeps every `Message`; "uids" keeps counts per uid only; "totals" keeps only the
            totals, in constant memory, for benchmarks of millions of messages.
        first_message_id: the id given to the first accepted message; each next one is +1.

    Raises:
        ValueError: `record` is not one of the modes.
    """

    accounts: Mapping[str, str] = attrs.field(
        factory=lambda: {DEMO_API_ID: DEMO_API_PASSWORD}, converter=_accounts
    )
    record: RecordMode = attrs.field(default="messages")
    first_message_id: int = FIRST_MESSAGE_ID
    #: Every accepted message, in order (only with `record="messages"`).
    messages: list[Message] = attrs.field(init=False, factory=list)
    #: Accepted messages per uid (with `record` "messages" or "uids"); requests without a uid
    #: are not counted here.
    uids: Counter[str] = attrs.field(init=False, factory=Counter)
    #: Requests received on the SendSMS path, whatever their fate.
    requests: int = attrs.field(init=False, default=0)
    #: Messages accepted (`status: "S"`).
    accepted: int = attrs.field(init=False, default=0)
    #: Requests answered `status: "F"`.
    failed: int = attrs.field(init=False, default=0)
    #: Accepted messages whose uid had been accepted before: each one is a duplicate SMS.
    duplicates: int = attrs.field(init=False, default=0)
    _next_id: int = attrs.field(init=False)

    @record.validator
    def _check_record(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in RECORD_MODES:
            raise ValueError(f"record: expected one of {RECORD_MODES}, got {value!r}")

    def __attrs_post_init__(self) -> None:
        self._next_id = self.first_message_id

    # -- what a test asks -----------------------------------------------------------------

    def count_for_uid(self, uid: str) -> int:
        """How many times a message with this uid was accepted (0 with `record="totals"`)."""
        return self.uids.get(uid, 0)

    def messages_for_uid(self, uid: str) -> list[Message]:
        """The accepted messages that carried this uid (only with `record="messages"`)."""
        return [m for m in self.messages if m.uid == uid]

    def stats(self) -> dict[str, Any]:
        """The counters, as a JSON-ready dict."""
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "distinct_uids": len(self.uids),
            "record": self.record,
        }

    def reset(self) -> None:
        """Forget every message and counter (message ids keep increasing)."""
        self.messages.clear()
        self.uids.clear()
        self.requests = self.accepted = self.failed = self.duplicates = 0

    # -- the wire -------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: bytes | str = b"",
        body: bytes = b"",
        content_type: str = "",
    ) -> Reply:
        """Answer one HTTP request: SendSMS, or the read-only `/_emulator/...` endpoints.

        The SendSMS path answers GET (parameters in the query string) and POST (a JSON body, or
        a form body), HTTP 200 in both cases; other paths answer 404, other methods 405.
        """
        if path.lower() == SEND_SMS_PATH.lower():
            if method not in ("GET", "POST"):
                return _json_reply({"detail": "method not allowed"}, 405)
            return self.submit(self.parse(method, query, body, content_type), method=method)
        if method == "GET" and path == STATS_PATH:
            return _json_reply(self.stats())
        if method == "GET" and path == MESSAGES_PATH:
            return _json_reply(self._messages_page(query))
        return _json_reply({"detail": "not found"}, 404)

    @staticmethod
    def parse(
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

    def submit(self, params: Mapping[str, object] | None, *, method: str = "POST") -> Reply:
        """Validate SendSMS parameters and accept the message, or refuse it with `"F"`."""
        self.requests += 1
        uid = _text_or_none(params.get("uid")) or None if params is not None else None
        try:
            if params is None:
                raise _Refused("Invalid request: the body is not a JSON object")
            message = self._accept(params, uid, method)
        except _Refused as refused:
            self.failed += 1
            return _json_reply(
                {"message_id": None, "status": "F", "remarks": str(refused), "uid": uid}
            )
        # The hot path of every benchmark: one format instead of a json.dumps of a dict.
        body = _ACCEPTED_TEMPLATE % (message.message_id, json.dumps(uid) if uid else "null")
        return Reply(200, body.encode(), accepted=message)

    def _accept(self, params: Mapping[str, object], uid: str | None, method: str) -> Message:
        values: dict[str, str] = {}
        for name in _REQUIRED:
            raw = params.get(name)
            value = _text_or_none(raw)
            if raw is None or (value is not None and not value.strip()):
                raise _Refused(f"Missing parameter: {name}")
            if value is None:
                raise _Refused(f"Invalid parameter: {name} (expected a string)")
            values[name] = value
        if self.accounts.get(values["api_id"]) != values["api_password"]:
            raise _Refused("Invalid API credentials")
        sms_type = values["sms_type"].upper()
        if sms_type not in _SMS_TYPES:
            raise _Refused("Invalid parameter: sms_type (expected P or T)")
        encoding = values["encoding"].upper()
        if encoding not in _ENCODINGS:
            raise _Refused("Invalid parameter: encoding (expected T, U, FS or UFS)")
        if not _SENDER_ID.fullmatch(values["sender_id"]):
            raise _Refused("Invalid parameter: sender_id")
        if not _PHONENUMBER.fullmatch(values["phonenumber"]):
            raise _Refused("Invalid parameter: phonenumber (country code and number, digits)")
        callback_url = _text_or_none(params.get("callback_url")) or None
        if callback_url is not None and not _is_http_url(callback_url):
            raise _Refused("Invalid parameter: callback_url")
        message = Message(
            message_id=self._next_id,
            api_id=values["api_id"],
            sms_type=sms_type,
            encoding=encoding,
            sender_id=values["sender_id"],
            phonenumber=values["phonenumber"],
            textmessage=values["textmessage"],
            uid=uid,
            callback_url=callback_url,
            method=method,
        )
        self._next_id += 1
        self.accepted += 1
        if self.record != "totals" and uid is not None:
            seen = self.uids[uid]
            if seen:
                self.duplicates += 1
            self.uids[uid] = seen + 1
        if self.record == "messages":
            self.messages.append(message)
        return message

    def _messages_page(self, query: bytes | str) -> dict[str, Any]:
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        wanted = dict(parse_qsl(query)).get("uid")
        selected: Iterable[Message] = self.messages
        if wanted is not None:
            selected = (m for m in self.messages if m.uid == wanted)
        return {"record": self.record, "messages": [m.to_json() for m in selected]}


def _text_or_none(value: object) -> str | None:
    """A parameter as text: JSON numbers are taken as their digits, anything else is None."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
