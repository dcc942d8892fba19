"""The SendSMS protocol as plain functions: build the request, read the answer (no I/O).

The sender calls a `RequestBuilder` on the way out and `read_response()` on the way back; the
I/O between them is a backend's (`_backends`). Secrets are scrubbed here too: `_clean()`
makes any text the SDK puts in an exception free of the password, whatever the gateway echoed.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, cast
from urllib.parse import urlencode

import attrs

from ._encoding import detect_encoding
from ._exceptions import (
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    Rejected,
    SendError,
    SubmissionFailed,
)
from ._message import SMS
from ._native import mypyc_attr
from ._secrets import Secret, scrub

__all__ = [
    "Request",
    "RequestBuilder",
    "SendResult",
    "build_params",
    "error_for_status",
    "parse_retry_after",
    "read_response",
]

#: HTTP statuses that prove the gateway did not take the request, and may take it later.
RETRYABLE_NOT_SENT: Final = frozenset({408, 429, 503})
#: 5xx answers that say "the server could not do this at all", so nothing was accepted.
REJECTED_5XX: Final = frozenset({501, 505})


class Request:
    """One request: "POST" or "GET", the path and query (percent-encoded), the body.

    The query and the body carry the password, so nothing shows them: its repr hides them,
    and it is no sequence (error trackers list a sequence's items, not its repr). A request is
    a local of the frames a failed send's traceback passes through, and a traceback printed
    with its locals (Sentry's default, `--showlocals`) shows each one.
    """

    __slots__ = ("body", "method", "target")

    def __init__(self, method: str, target: bytes, body: bytes) -> None:
        self.method = method
        self.target = target
        self.body = body

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (self.method, self.target, self.body) == (other.method, other.target, other.body)

    __hash__ = None  # type: ignore[assignment]  # compared by value, and not immutable

    def __repr__(self) -> str:
        path, query, _ = self.target.partition(b"?")
        hidden = f"?<{len(self.target) - len(path) - 1} bytes>" if query else ""
        return (
            f"Request(method={self.method!r}, target={path.decode('ascii', 'replace')}{hidden}, "
            f"body=<{len(self.body)} bytes>)"
        )


@mypyc_attr(native_class=False)
@attrs.frozen
class SendResult:
    """The gateway's answer to an accepted message (`status == "S"`).

    Attributes:
        message_id: the gateway's id for the message, as a string, exactly (ids of 19 digits
            and more survive).
        status: "S".
        remarks: the gateway's words; their wording varies, so never match on them.
        uid: the `uid` the gateway echoed (the message's own), or None.
        body: the whole decoded answer, unknown keys kept.
        message: the `SMS` that was sent.
        attempts: how many requests it took.
        reconciled: True where the answer was lost and the acceptance was found afterwards
            (a lookup or a delivery report: `remarks` is then empty).
    """

    message_id: str
    status: str
    remarks: str
    uid: str | None
    body: Mapping[str, Any] = attrs.field(repr=False)
    message: SMS = attrs.field(repr=False, eq=False)
    # The defaults typed Any: compiled (mypyc), a default typed int or bool is taken for the
    # field's value and unboxed, which attrs' field definition is not.
    attempts: int = attrs.field(default=cast(Any, 1), eq=False)
    reconciled: bool = attrs.field(default=cast(Any, False), eq=False)

    @property
    def ok(self) -> bool:
        """True: a SendResult is only built for an accepted message."""
        return self.status == "S"

    @classmethod
    def from_json(cls, body: Mapping[str, Any], message: SMS, attempts: int = 1) -> SendResult:
        """Build from a decoded `status: "S"` answer; raise `ValueError` if it is not one."""
        message_id = body.get("message_id")
        if type(message_id) is str:
            message_id = message_id.strip()
        elif isinstance(message_id, bool) or not isinstance(message_id, (int, str)):
            raise ValueError(f"message_id is not an integer or a string: {message_id!r}")
        else:
            message_id = str(message_id).strip()
        if not message_id:
            raise ValueError("message_id is empty")
        uid = body.get("uid")
        remarks = body.get("remarks")
        # Positional: attrs' __init__ takes keywords at a third more per call.
        return cls(
            message_id,
            "S",
            remarks if isinstance(remarks, str) else "",
            None if uid is None else str(uid),
            body,
            message,
            attempts,
        )


def build_params(
    sms: SMS,
    *,
    api_id: str,
    api_password: Secret,
    sms_type: str,
    encoding: str,
    sender_id: str | None,
) -> dict[str, str]:
    """The SendSMS parameters for `sms`, the sender's defaults filling its empty fields.

    Raises `InvalidMessage` when no sender id is known.
    """
    sender = sms.sender_id or sender_id
    if sender is None:
        raise InvalidMessage(
            "sender_id", None, "required: give it to AsyncSender(sender_id=...) or the message"
        )
    enc = sms.encoding or encoding
    if enc == "auto":
        enc = detect_encoding(sms.textmessage)
    params = {
        "api_id": api_id,
        "api_password": api_password.reveal(),
        "sms_type": sms.sms_type or sms_type,
        "encoding": enc,
        "sender_id": sender,
        "phonenumber": sms.phonenumber,
        "textmessage": sms.textmessage,
        "uid": sms.uid,
    }
    if sms.callback_url is not None:
        params["callback_url"] = sms.callback_url
    return params


#: `json.dumps` with options builds an encoder per call; this one is built once.
_JSON: Final = json.JSONEncoder(separators=(",", ":"))
#: The JSON decoder's scanner: one value from a position of a str, and where it ends.
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # its __init__ sets it; typeshed omits it
#: A str as ASCII JSON, quotes included: what `_JSON` writes for one.
_escape: Final = json.encoder.encode_basestring_ascii


def encode_json(params: Mapping[str, str]) -> bytes:
    """The POST body: compact ASCII JSON."""
    return _JSON.encode(params).encode("ascii")


def encode_query(params: Mapping[str, str]) -> str:
    """The GET query string."""
    return urlencode(params)


class RequestBuilder:
    """Builds the SendSMS requests of one account: POST with a JSON body, or GET with a query
    string, of the parameters `build_params` gives.

    `path` is the endpoint's path, percent-encoded. A POST's body is what `json.dumps` with
    compact separators writes, in a fraction of its time: what every body shares (the
    credentials, and the account's type and sender id for a message that has none of its
    own) is encoded once, and the body is written in one f-string. Its repr hides the
    password it holds.
    """

    __slots__ = ("_account", "_around_encoding", "_head", "_method", "_path", "_target")

    def __init__(self, *, method: str, path: str, **account: Any) -> None:
        self._method = method
        self._path = path
        self._target = path.encode("ascii")
        #: `build_params`' keywords: api_id, api_password (a `Secret`), sms_type, encoding
        #: and sender_id.
        self._account = account
        self._head = (
            f'{{"api_id":{_escape(account["api_id"])},'
            f'"api_password":{_escape(account["api_password"].reveal())},"sms_type":'
        )
        # A message with no type or sender id of its own (most): the body up to its encoding,
        # and from there to its number. Its number is digits (checked when the SMS was built)
        # and its encoding "T" or "U" (checked again where it is written), so both go in as
        # they are.
        sender = account["sender_id"]
        self._around_encoding = (
            None
            if sender is None
            else (
                f'{self._head}{_escape(account["sms_type"])},"encoding":"',
                f'","sender_id":{_escape(sender)},"phonenumber":"',
            )
        )

    def __repr__(self) -> str:
        return f"<RequestBuilder {self._method} {self._path}>"

    def __call__(self, sms: SMS) -> Request:
        """The request for `sms`. Raises `InvalidMessage` when no sender id is known."""
        if self._method != "POST":
            query = encode_query(build_params(sms, **self._account))
            return Request("GET", f"{self._path}?{query}".encode("ascii"), b"")
        account = self._account
        text = sms.textmessage
        enc = sms.encoding or account["encoding"]
        if enc == "auto":
            enc = detect_encoding(text)
        callback_url = sms.callback_url
        end = "}" if callback_url is None else f',"callback_url":{_escape(callback_url)}}}'
        around = self._around_encoding
        if (
            around is not None
            and sms.sms_type is None
            and sms.sender_id is None
            and (enc == "T" or enc == "U")
        ):
            body = (
                f'{around[0]}{enc}{around[1]}{sms.phonenumber}","textmessage":{_escape(text)},'
                f'"uid":{_escape(sms.uid)}{end}'
            )
        else:
            sender = sms.sender_id or account["sender_id"]
            if sender is None:
                raise InvalidMessage(
                    "sender_id",
                    None,
                    "required: give it to AsyncSender(sender_id=...) or the message",
                )
            body = (
                f"{self._head}{_escape(sms.sms_type or account['sms_type'])},"
                f'"encoding":{_escape(enc)},"sender_id":{_escape(sender)},'
                f'"phonenumber":{_escape(sms.phonenumber)},"textmessage":{_escape(text)},'
                f'"uid":{_escape(sms.uid)}{end}'
            )
        return Request("POST", self._target, body.encode("ascii"))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


def error_for_status(
    status_code: int,
    message: SMS,
    *,
    attempts: int,
    retry_after: float | None = None,
) -> SendError:
    """The error for a non-2xx answer: the outcome table of the SDK in one function."""
    reason = f"gateway answered HTTP {status_code}"
    if status_code in RETRYABLE_NOT_SENT:
        cls: type[SendError] = NotSent
    elif 300 <= status_code < 500 or status_code in REJECTED_5XX:
        cls = Rejected
    else:
        # 500, 502, 504 and anything unknown: the request may have been processed.
        cls = OutcomeUnknown
    return cls(
        reason,
        message=message,
        status_code=status_code,
        attempts=attempts,
        retry_after=retry_after,
    )


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _decode(body: bytes) -> Any:
    """`json.loads(body)`, or None where the body is not JSON. The usual answer (UTF-8, one
    value and nothing around it) is read by the decoder's scanner alone, at a third of the
    cost; anything else goes through `json.loads`, which decides."""
    try:
        text = body.decode()
        value, end = _SCAN(text, 0)
        if end == len(text):
            return value
    except (ValueError, StopIteration, RecursionError):  # (UnicodeDecodeError too)
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def read_response(
    status_code: int,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    message: SMS,
    *,
    attempts: int = 1,
    secret: Secret | None = None,
) -> SendResult:
    """Read the gateway's answer: a `SendResult`, or raise the `SendError` it amounts to.

    `headers` are the raw (name, value) pairs; only `Retry-After` of a failure is read. An
    answer that is not the documented JSON for this message (it does not parse, or it echoes
    another message's `uid`) is `OutcomeUnknown`; its connection is not to be trusted. Text
    the gateway sent is scrubbed of `secret` before it goes into an exception.
    """
    if not 200 <= status_code < 300:
        retry_after = parse_retry_after(_header(headers, b"retry-after"))
        raise error_for_status(status_code, message, attempts=attempts, retry_after=retry_after)
    decoded = _decode(body)
    if not isinstance(decoded, dict):
        raise OutcomeUnknown(
            f"gateway answered HTTP {status_code} with a body that is not a JSON object",
            message=message,
            status_code=status_code,
            attempts=attempts,
        )
    echoed = decoded.get("uid")
    if echoed is not None and str(echoed) != message.uid:
        raise OutcomeUnknown(
            f"gateway answered for another message (uid {_clean(str(echoed), secret)!r})",
            message=message,
            status_code=status_code,
            attempts=attempts,
        )
    status = decoded.get("status")
    if status != "S" and isinstance(status, str):
        status = status.strip().upper()
    if status == "S":
        try:
            return SendResult.from_json(decoded, message, attempts)
        except ValueError as exc:
            malformed = _clean(str(exc), secret)
        # (Raised out of the handler: the ValueError's frames hold the answer, so it is not
        # even a hidden context.)
        raise OutcomeUnknown(
            f"gateway accepted the message but its answer is malformed: {malformed}",
            message=message,
            status_code=status_code,
            attempts=attempts,
        )
    if status == "F":
        remarks = decoded.get("remarks")
        remarks = _clean(remarks, secret) if isinstance(remarks, str) else ""
        if secret is not None and scrub(repr(decoded), secret) != repr(decoded):
            decoded = {
                k: _clean(v, secret) if isinstance(v, str) else v for k, v in decoded.items()
            }
        raise SubmissionFailed(
            f"gateway refused the message: {remarks or 'no remarks'}",
            message=message,
            remarks=remarks,
            body=decoded,
            status_code=status_code,
            attempts=attempts,
        )
    shown = _clean(repr(status), secret) if isinstance(status, str) else repr(status)
    raise OutcomeUnknown(
        f"gateway answered an unknown status {shown[:100]}",
        message=message,
        status_code=status_code,
        attempts=attempts,
    )


def _clean(text: str, secret: Secret | None) -> str:
    return text if secret is None else scrub(text, secret)
