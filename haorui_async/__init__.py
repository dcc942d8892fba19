"""haorui-async: an async-first SDK for the HAORUI SMS gateway.

The path of one message, module by module (docs/architecture.md draws it whole):

1. `_message.SMS` validates the message where it is built (`InvalidMessage` names the field);
   `_encoding` chooses GSM text or Unicode and counts the parts.
2. `_sender.AsyncSender.send()` takes it, with the options `_config.SenderConfig` validated,
   and its base's `_sender_core.SenderCore.send_message()` drives it from here on;
   `_protocol.RequestBuilder` adds the credentials (a `_secrets.Secret`) and the defaults.
3. Each attempt waits its turn at `_admission.Admission` (rate limit, a 429 pause, a slot; every
   wait ends at the deadline), then goes out through a backend (`_backends`: the SDK's own
   connection pool, behind httpx by default); `_backends.translate()` turns a transport's
   failure into the SDK's exception tree (`_exceptions`).
4. `_protocol.read_response()` reads the answer: a `SendResult`, or the error it amounts to.
5. `_retry.RetryPolicy.next_wait()` decides whether to try again: only failures that prove the
   message was never accepted, unless the caller opts in.

Many messages: `_bulk.send_many()` runs a fixed pool of workers over any (async) iterable,
one `Outcome` (`_outcome`: the one vocabulary of outcome kinds) per input. Around that path:
`_delivery` reads what the gateway pushes to `callback_url`, and `_receiver` serves it as an
ASGI app; `_lookups` asks the gateway what became of a message, and `_reconcile` settles an
unknown outcome from reports and lookups. `haorui_async.redis` shares one account's rate
limit among processes and runs a campaign on a queue engine (arq). `_telemetry` follows each
send where something watches (`on_outcome=`, a `SendRecord` per send), and `_otel` turns that
into OpenTelemetry spans and metrics (the `[otel]` extra, imported only where it is on).
"""

from ._bulk import BulkSend, send_all, send_many
from ._defaults import DEFAULT_BASE_URL
from ._delivery import (
    DeliveryReport,
    DeliveryState,
    InvalidDeliveryReport,
    parse_delivery_report,
)
from ._encoding import TextInfo, detect_encoding, is_gsm, text_info
from ._exceptions import (
    ConfigurationError,
    HaoruiError,
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    Rejected,
    SenderClosed,
    SendError,
    SubmissionFailed,
)
from ._lookup import Balance, DeliveryStatus, LookupFailed
from ._message import SMS, new_uid, normalize_phonenumber
from ._outcome import BulkReport, Outcome, OutcomeKind
from ._protocol import SendResult
from ._receiver import DeliveryReportReceiver
from ._reconcile import DeliveryTracker, Reconciliation
from ._retry import RetryPolicy
from ._sender import AsyncSender
from ._sync import Sender
from ._telemetry import SendRecord, Telemetry
from ._version import __version__

__all__ = [
    "AsyncSender",
    "Balance",
    "BulkReport",
    "BulkSend",
    "ConfigurationError",
    "DEFAULT_BASE_URL",
    "DeliveryReport",
    "DeliveryReportReceiver",
    "DeliveryState",
    "DeliveryStatus",
    "DeliveryTracker",
    "HaoruiError",
    "InvalidDeliveryReport",
    "InvalidMessage",
    "LookupFailed",
    "NotSent",
    "Outcome",
    "OutcomeKind",
    "OutcomeUnknown",
    "Reconciliation",
    "Rejected",
    "RetryPolicy",
    "SMS",
    "SendError",
    "SendRecord",
    "SendResult",
    "Sender",
    "SenderClosed",
    "SubmissionFailed",
    "Telemetry",
    "TextInfo",
    "__version__",
    "detect_encoding",
    "is_gsm",
    "new_uid",
    "normalize_phonenumber",
    "parse_delivery_report",
    "send_all",
    "send_many",
    "text_info",
]
