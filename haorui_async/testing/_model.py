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

The wire (reading parameters, checking them, the shape of a refusal) is in `_wire`; the
`Message` record and what the lookups answer from it are in `_lookups`. This module keeps
the state: the messages accepted, the counters, and which request goes where.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal
from urllib.parse import parse_qsl

import attrs

from ._lookups import (
    COST_PER_PART,
    DEFAULT_BALANCE,
    DEFAULT_CURRENCY,
    DEFAULT_DLR_STATUSES,
    NOT_FOUND,
    Message,
    balance_answer,
    delivery_report,
    draw_delivery_status,
    status_record,
)
from ._wire import (
    BALANCE,
    DELIVERY_STATUS,
    LOOKUP_PATHS,
    MESSAGES_PATH,
    SEND_PATH,
    STATS_PATH,
    UIDS_PATH,
    Refused,
    Reply,
    SendRequest,
    check_credentials,
    is_lookup_path,
    json_reply,
    read_params,
    read_send_request,
    refusal,
    text_or_none,
    uid_of,
)

# Besides its own names, the module still offers those that lived here before the wire and
# the lookups had modules of their own.
__all__ = [
    "COST_PER_PART",
    "DEFAULT_BALANCE",
    "DEFAULT_CURRENCY",
    "DEMO_API_ID",
    "DEMO_API_PASSWORD",
    "DEMO_SENDER_ID",
    "FIRST_MESSAGE_ID",
    "GatewayModel",
    "LOOKUP_PATHS",
    "MESSAGES_PATH",
    "Message",
    "RECORD_MODES",
    "RecordMode",
    "Reply",
    "STATS_PATH",
    "UIDS_PATH",
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

#: What the model keeps of accepted messages:
#: "messages" every `Message` and the per-uid counts; "uids" the per-uid counts only;
#: "totals" only the totals (constant memory, for long benchmarks).
RecordMode = Literal["messages", "uids", "totals"]
RECORD_MODES: Final = ("messages", "uids", "totals")

_REMARKS_OK: Final = "Message Submitted Sucessfully"
_ACCEPTED_TEMPLATE: Final = (
    '{"message_id":%d,"status":"S","remarks":"' + _REMARKS_OK + '","uid":%s}'
)


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


# Plain attribute assignment: the counters change on every request, and attrs' validating
# __setattr__ would double the cost of each.
@attrs.define(eq=False, on_setattr=attrs.setters.NO_OP)
class GatewayModel:
    """The HAORUI SendSMS endpoint, and the family's lookups, as plain code.

    Attributes:
        accounts: the known `api_id -> api_password` pairs; the demo account by default.
        record: what is kept of accepted messages (see `RecordMode`): "messages" (the default)
            keeps every `Message`; "uids" keeps counts per uid only; "totals" keeps only the
            totals, in constant memory, for benchmarks of millions of messages.
            `GetDeliveryStatus` needs the messages: in the other modes it answers HTTP 501.
        first_message_id: the id given to the first accepted message; each next one is +1.
        lookup_lag: seconds after its acceptance before `GetDeliveryStatus` finds a message
            (until then: "Record not found"), as a gateway whose records trail its answers.
        balance: the amount `CheckBalance` answers.
        currency: the currency code `CheckBalance` answers.
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
        default=DEFAULT_DLR_STATUSES, converter=_statuses
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
        return draw_delivery_status(
            self.seed, message.message_id, self._status_words, self._status_weights
        )

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
        if lowered == SEND_PATH or lowered in LOOKUP_PATHS:
            if method not in ("GET", "POST"):
                return json_reply({"detail": "method not allowed"}, 405)
            params = read_params(method, query, body, content_type)
            if lowered == DELIVERY_STATUS:
                return self.look_up(params)
            if lowered == BALANCE:
                return self.check_balance(params)
            return self.submit(params, method=method)
        if method == "GET" and path == STATS_PATH:
            return json_reply(self.stats())
        if method == "GET" and path == MESSAGES_PATH:
            return json_reply(self._messages_page(query))
        if method == "GET" and path == UIDS_PATH:
            return json_reply({"record": self.record, "uids": dict(self.uids)})
        return json_reply({"detail": "not found"}, 404)

    #: The request's parameters, or None when the body cannot be read (see `read_params`).
    parse = staticmethod(read_params)

    def submit(self, params: Mapping[str, object] | None, *, method: str = "POST") -> Reply:
        """Validate SendSMS parameters and accept the message, or refuse it with `"F"`."""
        self.requests += 1
        uid = uid_of(params)
        try:
            if params is None:
                raise Refused("Invalid request: the body is not a JSON object")
            message = self._accept(read_send_request(params, self.accounts), uid, method)
        except Refused as refused:
            self.failed += 1
            return refusal(str(refused), uid)
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
        uid = uid_of(params)
        try:
            check_credentials(params, self.accounts)
        except Refused as refused:
            return refusal(str(refused), uid)
        assert params is not None
        if self.record != "messages":
            return json_reply(
                {"detail": f"GetDeliveryStatus needs record='messages' (not {self.record!r})"},
                501,
            )
        wanted_id = (text_or_none(params.get("message_id")) or "").strip()
        if not wanted_id and uid is None:
            return refusal("Missing parameter: message_id or uid", None)
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
            return json_reply(NOT_FOUND)
        record = status_record(message, now - message.accepted_at, self.delivery_status(message))
        return json_reply(record)

    def check_balance(self, params: Mapping[str, object] | None) -> Reply:
        """Answer `CheckBalance`: `{"BalanceAmount": ..., "CurrenceCode": ...}` (sic)."""
        self.balance_checks += 1
        try:
            check_credentials(params, self.accounts)
        except Refused as refused:
            return refusal(str(refused), None)
        return json_reply(balance_answer(self.balance, self.currency))

    def _accept(self, request: SendRequest, uid: str | None, method: str) -> Message:
        message = Message(
            message_id=self._next_id,
            uid=uid,
            method=method,
            accepted_at=self.clock(),
            **attrs.asdict(request, recurse=False),
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
        """The `GET /_emulator/messages` page: every accepted message (those of `?uid=` only,
        if given), in order of acceptance.

        Each message is its `Message.to_json()` plus `accepted_at`: when the model accepted
        it, in seconds on the model's `clock`: `time.monotonic()` of the emulator's process
        unless its maker gave another (`python -m haorui_async.testing` gives none). A
        monotonic clock has no fixed origin: compare these readings with each other (the
        acceptances per second, the time between two), not with a wall clock or with
        another process's clock.
        """
        if isinstance(query, bytes):
            query = query.decode("latin-1")
        wanted = dict(parse_qsl(query)).get("uid")
        selected: Iterable[Message] = self.messages
        if wanted is not None:
            selected = (m for m in self.messages if m.uid == wanted)
        return {
            "record": self.record,
            "messages": [{**m.to_json(), "accepted_at": m.accepted_at} for m in selected],
        }
