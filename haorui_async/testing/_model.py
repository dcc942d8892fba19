"""The gateway as plain code: read one request, answer it as HAORUI would (no I/O).

`GatewayModel.handle()` takes what arrived on the wire (method, path, query string, body) and
returns the `Reply` to send back. The in-process `FakeGateway` and the loopback emulator server
both wrap this one model, so a test behaves the same over either.

What the model checks, as the real API does: every required parameter is present and well
formed, and the `(api_id, api_password)` pair is a known account. A failed check is answered
HTTP 200 with `{"status": "F", "remarks": ...}`, the way the gateway family reports failures.

Besides SendSMS it answers the family's lookups ([family] in API.md: likely, not certain):
`GetDeliveryStatus` (the record of an accepted message, once it is `lookup_lag` seconds old on
the model's `clock`) and `CheckBalance` (a fixed balance).
"""

from __future__ import annotations

import datetime
import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import attrs

from .._defaults import SEND_SMS_PATH
from .._encoding import text_info
from .._lookup import BALANCE_PATH, DELIVERY_STATUS_PATH

__all__ = [
    "DEFAULT_BALANCE",
    "DEFAULT_CURRENCY",
    "DEMO_API_ID",
    "DEMO_API_PASSWORD",
    "DEMO_SENDER_ID",
    "FIRST_MESSAGE_ID",
    "GatewayModel",
    "Message",
    "RecordMode",
    "Reply",
    "delivery_report",
    "is_lookup_path",
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

#: What `CheckBalance` answers unless told otherwise: the family's documented example.
DEFAULT_BALANCE: Final = 1000.0
DEFAULT_CURRENCY: Final = "UGX"
#: What one SMS part costs (`ClientCost` of a lookup), in whole units of the currency so that
#: every cost is exact. An invented price: the gateway's are not public.
COST_PER_PART: Final = 30

#: The read-only endpoints (lowered: paths are matched without case, as SendSMS's is).
LOOKUP_PATHS: Final = frozenset({DELIVERY_STATUS_PATH.lower(), BALANCE_PATH.lower()})
STATS_PATH: Final = "/_emulator/stats"
MESSAGES_PATH: Final = "/_emulator/messages"
UIDS_PATH: Final = "/_emulator/uids"

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
_NOT_FOUND: Final = {"status": "F", "remarks": "Record not found"}
_DELIVERED: Final = (("Delivered", 1.0),)


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
        accepted_at: the model's `clock` when it was accepted (not shown by `to_json()`).
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
    accepted_at: float = attrs.field(default=0.0, eq=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON-ready dict (the password is never kept, so never shown)."""
        return attrs.asdict(self, filter=_shown)


def _shown(attribute: attrs.Attribute[Any], value: object) -> bool:
    # A reading of a monotonic clock means nothing outside the process.
    return attribute.name != "accepted_at"


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


def is_lookup_path(path: str) -> bool:
    """Whether `path` is one of the read-only lookups (`GetDeliveryStatus`, `CheckBalance`)."""
    return path.lower() in LOOKUP_PATHS


def _accounts(accounts: Mapping[str, str]) -> dict[str, str]:
    return dict(accounts)


def _statuses(mix: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    return tuple((word, float(weight)) for word, weight in mix)


def _finite(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name}: expected a finite number, got {value!r}")


def _not_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name}: expected >= 0, got {value!r}")


class _Refused(Exception):
    """A request the gateway answers with `status: "F"`; the text is its remarks."""


# Plain attribute assignment: the counters change on every request, and attrs' validating
# __setattr__ would double the cost of each.
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class GatewayModel:
    """The HAORUI SendSMS endpoint, and the family's lookups, as plain code.

    Args:
        accounts: the known `api_id -> api_password` pairs; the demo account by default.
        record: what is kept of accepted messages (see `RecordMode`): "messages" (the default)
            keeps every `Message`; "uids" keeps counts per uid only; "totals" keeps only the
            totals, in constant memory, for benchmarks of millions of messages.
            `GetDeliveryStatus` needs the messages: in the other modes it answers HTTP 501.
        first_message_id: the id given to the first accepted message; each next one is +1.
        lookup_lag: seconds after its acceptance before `GetDeliveryStatus` finds a message
            (until then: "Record not found"), as a gateway whose records trail its answers.
        balance, currency: what `CheckBalance` answers.
        dlr_statuses: the `DLRStatus` words and their weights; each message gets one, fixed
            (see `delivery_status()`), that its lookup and its delivery report both carry.
        seed: the seed of those draws.
        clock: seconds, for the lag (`time.monotonic` by default); a test passes its own to
            move time on without waiting.

    Raises:
        ValueError: `record` is not one of the modes; a negative `lookup_lag`; a balance that
            is not a finite number; no status with a positive weight.
    """

    accounts: Mapping[str, str] = attrs.field(
        factory=lambda: {DEMO_API_ID: DEMO_API_PASSWORD}, converter=_accounts
    )
    record: RecordMode = attrs.field(default="messages")
    first_message_id: int = FIRST_MESSAGE_ID
    lookup_lag: float = attrs.field(default=0.0, validator=_not_negative)
    balance: float = attrs.field(default=DEFAULT_BALANCE, converter=float, validator=_finite)
    currency: str = DEFAULT_CURRENCY
    dlr_statuses: tuple[tuple[str, float], ...] = attrs.field(
        default=_DELIVERED, converter=_statuses
    )
    seed: int | None = None
    clock: Callable[[], float] = time.monotonic
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
    #: `GetDeliveryStatus` requests answered (never counted in `requests`).
    lookups: int = attrs.field(init=False, default=0)
    #: `CheckBalance` requests answered (never counted in `requests`).
    balance_checks: int = attrs.field(init=False, default=0)
    _next_id: int = attrs.field(init=False)
    #: The first accepted message of each uid, and every message by id (`record="messages"`).
    _first_by_uid: dict[str, Message] = attrs.field(init=False, factory=dict)
    _by_id: dict[int, Message] = attrs.field(init=False, factory=dict)
    _status_words: tuple[str, ...] = attrs.field(init=False)
    _status_weights: tuple[float, ...] = attrs.field(init=False)

    @record.validator
    def _check_record(self, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in RECORD_MODES:
            raise ValueError(f"record: expected one of {RECORD_MODES}, got {value!r}")

    def __attrs_post_init__(self) -> None:
        self._next_id = self.first_message_id
        mix = [(word, weight) for word, weight in self.dlr_statuses if weight > 0]
        if not mix:
            raise ValueError(f"dlr_statuses: expected a positive weight, got {self.dlr_statuses}")
        self._status_words = tuple(word for word, _ in mix)
        self._status_weights = tuple(weight for _, weight in mix)

    # -- what a test asks -----------------------------------------------------------------

    def count_for_uid(self, uid: str) -> int:
        """How many times a message with this uid was accepted (0 with `record="totals"`)."""
        return self.uids.get(uid, 0)

    def messages_for_uid(self, uid: str) -> list[Message]:
        """The accepted messages that carried this uid (only with `record="messages"`)."""
        return [m for m in self.messages if m.uid == uid]

    def delivery_status(self, message: Message) -> str:
        """The `DLRStatus` of `message`: drawn from `dlr_statuses` by weight, once per message.

        The draw depends only on the seed and the message id, so the delivery report pushed
        and every lookup of the message carry the same word.
        """
        if len(self._status_words) == 1:
            return self._status_words[0]
        draw = random.Random(f"{self.seed}:{message.message_id}")
        return draw.choices(self._status_words, self._status_weights)[0]

    def stats(self) -> dict[str, Any]:
        """The counters, as a JSON-ready dict.

        "Every uid accepted exactly once" reads `duplicates == 0` (and `distinct_uids` the
        number of uids sent); `lookups` and `balance_checks` never count in `requests`.
        """
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "failed": self.failed,
            "duplicates": self.duplicates,
            "distinct_uids": len(self.uids),
            "lookups": self.lookups,
            "balance_checks": self.balance_checks,
            "record": self.record,
        }

    def reset(self) -> None:
        """Forget every message and counter (message ids keep increasing)."""
        self.messages.clear()
        self.uids.clear()
        self._first_by_uid.clear()
        self._by_id.clear()
        self.requests = self.accepted = self.failed = self.duplicates = 0
        self.lookups = self.balance_checks = 0

    # -- the wire -------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: bytes | str = b"",
        body: bytes = b"",
        content_type: str = "",
    ) -> Reply:
        """Answer one HTTP request: SendSMS, a lookup, or the read-only `/_emulator/...` ones.

        SendSMS, GetDeliveryStatus and CheckBalance answer GET (parameters in the query string)
        and POST (a JSON body, or a form body), HTTP 200 in both cases; other paths answer 404,
        other methods 405.
        """
        lowered = path.lower()
        if lowered == SEND_SMS_PATH.lower() or lowered in LOOKUP_PATHS:
            if method not in ("GET", "POST"):
                return _json_reply({"detail": "method not allowed"}, 405)
            params = self.parse(method, query, body, content_type)
            if lowered == DELIVERY_STATUS_PATH.lower():
                return self.look_up(params)
            if lowered == BALANCE_PATH.lower():
                return self.check_balance(params)
            return self.submit(params, method=method)
        if method == "GET" and path == STATS_PATH:
            return _json_reply(self.stats())
        if method == "GET" and path == MESSAGES_PATH:
            return _json_reply(self._messages_page(query))
        if method == "GET" and path == UIDS_PATH:
            return _json_reply({"record": self.record, "uids": dict(self.uids)})
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

    def look_up(self, params: Mapping[str, object] | None) -> Reply:
        """Answer `GetDeliveryStatus`: the record of an accepted message, or "Record not found".

        The message is the one with the `message_id` asked, else the first accepted with the
        `uid` asked (with both, both must match), once `lookup_lag` seconds old. Credentials are
        checked as SendSMS checks them, and refused alike.
        """
        self.lookups += 1
        uid = _text_or_none(params.get("uid")) or None if params is not None else None
        refused = self._refusal(params, uid)
        if refused is not None:
            return refused
        assert params is not None
        if self.record != "messages":
            return _json_reply(
                {"detail": f"GetDeliveryStatus needs record='messages' (not {self.record!r})"},
                501,
            )
        wanted_id = (_text_or_none(params.get("message_id")) or "").strip()
        if not wanted_id and uid is None:
            return _json_reply(
                {
                    "message_id": None,
                    "status": "F",
                    "remarks": "Missing parameter: message_id or uid",
                    "uid": None,
                }
            )
        message: Message | None
        if wanted_id:
            message = None
            if wanted_id.isascii() and wanted_id.isdigit():
                message = self._by_id.get(int(wanted_id))
            if message is not None and uid is not None and message.uid != uid:
                message = None
        else:
            assert uid is not None
            message = self._first_by_uid.get(uid)
        now = self.clock()
        if message is None or now - message.accepted_at < self.lookup_lag:
            return _json_reply(_NOT_FOUND)
        return _json_reply(self._status_record(message, now))

    def check_balance(self, params: Mapping[str, object] | None) -> Reply:
        """Answer `CheckBalance`: `{"BalanceAmount": ..., "CurrenceCode": ...}` (sic)."""
        self.balance_checks += 1
        refused = self._refusal(params, None)
        if refused is not None:
            return refused
        amount: float | int = self.balance
        if self.balance.is_integer():
            amount = int(self.balance)
        return _json_reply({"BalanceAmount": amount, "CurrenceCode": self.currency})

    def _refusal(self, params: Mapping[str, object] | None, uid: str | None) -> Reply | None:
        """SendSMS's answer to a body it cannot read or to bad credentials; None if they pass."""
        try:
            if params is None:
                raise _Refused("Invalid request: the body is not a JSON object")
            values = {}
            for name in ("api_id", "api_password"):
                value = _text_or_none(params.get(name))
                if value is None or not value.strip():
                    raise _Refused(f"Missing parameter: {name}")
                values[name] = value
            if self.accounts.get(values["api_id"]) != values["api_password"]:
                raise _Refused("Invalid API credentials")
        except _Refused as refused:
            return _json_reply(
                {"message_id": None, "status": "F", "remarks": str(refused), "uid": uid}
            )
        return None

    def _status_record(self, message: Message, now: float) -> dict[str, Any]:
        """The family's `GetDeliveryStatus` record of `message`, as looked up at `now`."""
        try:
            info = text_info(message.textmessage, "U" if "U" in message.encoding else "T")
        except ValueError:  # encoding "T" with characters outside GSM: the gateway took it
            info = text_info(message.textmessage, "U")
        # The clock may be a test's own: date the message by the time elapsed on it.
        sent = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(
            seconds=max(0.0, now - message.accepted_at)
        )
        return {
            "message_id": str(message.message_id),
            "uid": message.uid,
            "PhoneNumber": message.phonenumber,
            "SMSMessage": message.textmessage,
            "MessageType": message.encoding,
            "MessageLength": info.units,
            "MessageParts": info.parts,
            "ClientCost": info.parts * COST_PER_PART,
            "DLRStatus": self.delivery_status(message),
            "SMSID": str(message.message_id),
            "ErrorCode": "000",
            "ErrorDescription": "",
            "SentDateUTC": sent.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Remarks": "",
        }

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
            accepted_at=self.clock(),
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
            self._by_id[message.message_id] = message
            if uid is not None:
                self._first_by_uid.setdefault(uid, message)
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
