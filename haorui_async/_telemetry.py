"""What a send reports when it ends: a `SendRecord`, to the `on_outcome` hook and OpenTelemetry.

The sender holds one `Observer` where something watches its sends (an `on_outcome` hook, the
OpenTelemetry instrumentation, or both), else None: a sender nobody watches pays an `is None`
check where a send starts and ends and one per attempt, nothing more. Each send then gets a
`SendTrace`, told of the waits at admission (`waited`), each exchange (`exchange`), each
retry (`retrying`) and reconciliation (`reconciled`); when the send ends (`end`) it builds one
`SendRecord` and hands it to both. What OpenTelemetry makes of it is `_otel`'s, imported only
where the instrumentation is on (`resolve_telemetry`), so `import haorui_async` never imports
OpenTelemetry.

A record never holds the text or the password; the phone number only where the sender was
built with `telemetry_phonenumber=True`. A hook that raises is logged, never raised.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Literal, TypeVar

import attrs

from . import _defaults as defaults
from ._encoding import is_gsm, text_info
from ._exceptions import ConfigurationError, HaoruiError
from ._outcome import OutcomeKind, kind_of
from ._protocol import SendResult

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

    from ._backends import Answer, Backend
    from ._message import SMS
    from ._otel import Instruments, SpanHandle
    from ._protocol import Request
    from ._reconcile import Verdict

__all__ = ["Observer", "SendRecord", "SendTrace", "Telemetry", "WaitReason", "resolve_telemetry"]

logger = logging.getLogger(defaults.LOGGER_NAME)

#: What a send waited for at admission, besides a slot.
WaitReason = Literal["rate_limit", "pause"]

#: The environment variables through which OpenTelemetry's API loads a provider by itself,
#: without the application importing it first.
_PROVIDER_VARIABLES: Final = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")

_T = TypeVar("_T")

_OTEL_MISSING: Final = "telemetry: needs opentelemetry-api: pip install 'haorui-async[otel]'"


@attrs.frozen(kw_only=True)
class SendRecord:
    """What became of one send, given to `AsyncSender(on_outcome=...)` once it ended.

    Never the text or the password; the phone number only where the sender asked for it.

    Attributes:
        uid: the message's `uid`.
        kind: the kind of outcome ("sent", "failed", "rejected", "not_sent", "unknown"; the
            vocabulary of `Outcome.kind`).
        attempts: how many attempts the send made.
        may_have_been_sent: True where the gateway accepted the message or may have.
        parts: how many SMS the text takes (each one billed).
        encoding: the encoding it was sent with, "T" (GSM 03.38) or "U" (UCS-2).
        backend: the sender's backend, "httpx" or "fast".
        method: "POST" or "GET".
        duration: seconds from the start of the send to its end, waits and retries included.
        rate_limit_wait: seconds the attempts waited for the rate limit.
        pause_wait: seconds the attempts waited out a pause the gateway asked for (a 429).
        error: the class name of the error the send raised (`"NotSent"`, ...), or None: sent.
        status_code: the HTTP status of the last answer, or None where none came.
        reconciled: True where reconciliation, not an answer, settled the outcome (the
            acceptance found by a lookup or a report, or "not accepted" with no attempt left).
        phonenumber: the recipient, only with `AsyncSender(telemetry_phonenumber=True)`.
    """

    uid: str
    kind: OutcomeKind
    attempts: int
    may_have_been_sent: bool
    parts: int
    encoding: Literal["T", "U"]
    backend: str
    method: str
    duration: float
    rate_limit_wait: float
    pause_wait: float
    error: str | None
    status_code: int | None
    reconciled: bool
    phonenumber: str | None = None


@attrs.frozen(kw_only=True)
class Telemetry:
    """OpenTelemetry instrumentation of a sender, and the providers it reports to.

    `AsyncSender(telemetry=Telemetry(tracer_provider=..., meter_provider=...))` reports to
    these providers instead of the global ones (a test's in-memory exporter, say); a provider
    left None is the global one. Needs the `[otel]` extra (opentelemetry-api).

    Attributes:
        tracer_provider: where the spans go (an `opentelemetry.trace.TracerProvider`).
        meter_provider: where the metrics go (an `opentelemetry.metrics.MeterProvider`).
    """

    tracer_provider: TracerProvider | None = attrs.field(default=None)
    meter_provider: MeterProvider | None = attrs.field(default=None)

    @tracer_provider.validator
    def _check_tracer_provider(self, attribute: attrs.Attribute[object], value: object) -> None:
        if value is not None and not callable(getattr(value, "get_tracer", None)):
            raise ConfigurationError(f"tracer_provider: expected a TracerProvider, got {value!r}")

    @meter_provider.validator
    def _check_meter_provider(self, attribute: attrs.Attribute[object], value: object) -> None:
        if value is not None and not callable(getattr(value, "get_meter", None)):
            raise ConfigurationError(f"meter_provider: expected a MeterProvider, got {value!r}")


def resolve_telemetry(option: bool | Telemetry | None) -> Telemetry | None:
    """The instrumentation a sender uses for its `telemetry=` option, decided once.

    None (auto): on only where opentelemetry-api imports and a real provider (not the API's
    default proxy or no-op) is installed for traces or metrics; the API is not even imported
    where nothing can have installed one. True: on, with the global providers. False: off.

    Raises:
        ConfigurationError: on was asked for, and opentelemetry-api is not installed.
    """
    if option is False:
        return None
    if option is None:
        if "opentelemetry" not in sys.modules and not any(
            v in os.environ for v in _PROVIDER_VARIABLES
        ):
            # Nothing imported OpenTelemetry, so nothing installed a provider.
            return None
        try:
            from . import _otel
        except ImportError:
            return None
        return Telemetry() if _otel.providers_installed() else None
    try:
        from . import _otel  # only to check the API is there
    except ImportError:
        raise ConfigurationError(_OTEL_MISSING) from None
    return Telemetry() if option is True else option


def _logged(call: Callable[..., _T], *args: object, what: str, uid: str) -> _T | None:
    """`call(*args)`, or None where it raised: logged (with its traceback), never raised."""
    try:
        return call(*args)
    except Exception:
        logger.exception("%s raised for uid=%s; the send is unaffected", what, uid)
        return None


def _sms_info(sms: SMS, default_encoding: str) -> tuple[Literal["T", "U"], int]:
    """The encoding `sms` goes out with (as `_protocol.build_params` chooses) and its parts."""
    text = sms.textmessage
    gsm = is_gsm(text)
    encoding = sms.encoding or default_encoding
    sent: Literal["T", "U"] = "U" if encoding == "U" or (encoding == "auto" and not gsm) else "T"
    # A sender default of "T" under a text GSM cannot carry: its parts are counted as Unicode.
    return sent, text_info(text, "T" if gsm and sent == "T" else "U").parts


class Observer:
    """What watches one sender's sends: its `on_outcome` hook, OpenTelemetry, or both.

    Args:
        on_outcome: called with each send's `SendRecord`, or None.
        instruments: the OpenTelemetry instruments (`_otel.Instruments`), or None.
        phonenumber: whether records and spans carry the phone number.
        backend, method: the sender's.
        encoding: the sender's default encoding.
    """

    __slots__ = ("backend", "encoding", "instruments", "method", "on_outcome", "phonenumber")

    def __init__(
        self,
        *,
        on_outcome: Callable[[SendRecord], object] | None,
        instruments: Instruments | None,
        phonenumber: bool,
        backend: str,
        method: str,
        encoding: str,
    ) -> None:
        self.on_outcome = on_outcome
        self.instruments = instruments
        self.phonenumber = phonenumber
        self.backend = backend
        self.method = method
        self.encoding = encoding

    def start(self, sms: SMS) -> SendTrace:
        """A send of `sms` starts now (its span, where there are spans, becomes current)."""
        return SendTrace(self, sms)


class SendTrace:
    """One send as it is observed: what it waited for, its exchanges, retries and end."""

    __slots__ = (
        "_observer",
        "_span",
        "_verdict",
        "attempts",
        "encoding",
        "parts",
        "pause_wait",
        "rate_limit_wait",
        "requested",
        "sms",
        "started",
        "status_code",
    )

    def __init__(self, observer: Observer, sms: SMS) -> None:
        self._observer = observer
        self.sms = sms
        self.started = time.perf_counter()
        self.attempts = 1
        self.rate_limit_wait = 0.0
        self.pause_wait = 0.0
        #: Whether a request went out in this send (then a send that ends otherwise than with
        #: an error that knows better may have been sent).
        self.requested = False
        self.status_code: int | None = None
        self._verdict: Verdict | None = None
        self.encoding, self.parts = _sms_info(sms, observer.encoding)
        instruments = observer.instruments
        self._span: SpanHandle | None = None
        if instruments is not None:
            self._span = instruments.start_send(
                uid=sms.uid,
                parts=self.parts,
                encoding=self.encoding,
                phonenumber=sms.phonenumber if observer.phonenumber else None,
            )

    def waited(self, reason: WaitReason, seconds: float) -> None:
        """An attempt waited `seconds` for the rate limit or a pause (`Admission.enter`)."""
        if reason == "rate_limit":
            self.rate_limit_wait += seconds
        else:
            self.pause_wait += seconds
        instruments = self._observer.instruments
        if instruments is not None:
            instruments.waited(reason, seconds)

    async def exchange(self, backend: Backend, request: Request, deadline: float) -> Answer:
        """The backend's exchange of one attempt, timed; raises what the backend raises."""
        self.requested = True
        instruments = self._observer.instruments
        if instruments is None:
            answer = await backend.exchange(request, deadline)
        else:
            answer = await instruments.exchange(backend, request, deadline)
        self.status_code = answer.status
        return answer

    def retrying(self, failure: HaoruiError, attempt: int, wait: float) -> None:
        """Attempt `attempt` failed with `failure`; the next one follows in `wait` seconds."""
        self.attempts = attempt + 1
        resent = self._verdict == "not_accepted"
        self._verdict = None
        if self._span is not None:
            self._span.retrying(failure, attempt, wait, resent_after_reconcile=resent)

    def reconciled(self, verdict: Verdict) -> None:
        """The unknown outcome of the last attempt was reconciled: `verdict`."""
        self._verdict = verdict
        if self._span is not None:
            self._span.reconciled(verdict, self.attempts)

    def end(self, result: SendResult | None, error: BaseException | None) -> None:
        """The send ended: with `result`, or raising `error`. Never raises: what fails here
        (a hook of the caller's, say) is logged and the send's own ending stands."""
        span, uid = self._span, self.sms.uid
        try:
            record = self._record(result, error)
            if span is not None:
                _logged(span.end, record, what="telemetry: ending the span", uid=uid)
            hook = self._observer.on_outcome
            if hook is not None:
                _logged(hook, record, what="on_outcome", uid=uid)
        finally:
            if span is not None:
                span.detach()

    def _record(self, result: SendResult | None, error: BaseException | None) -> SendRecord:
        observer = self._observer
        if error is None:
            assert result is not None
            kind: OutcomeKind = "sent"
            attempts, maybe, reconciled = result.attempts, True, result.reconciled
        elif isinstance(error, HaoruiError):
            kind = kind_of(error)
            attempts = getattr(error, "attempts", self.attempts)
            maybe = bool(getattr(error, "may_have_been_sent", False))
            reconciled = self._verdict == "not_accepted"
        else:
            # Cancelled, or an error of no kind: nothing proves a request that went out was
            # not accepted.
            kind = "unknown" if self.requested else "not_sent"
            attempts, maybe, reconciled = self.attempts, self.requested, False
        return SendRecord(
            uid=self.sms.uid,
            kind=kind,
            attempts=attempts,
            may_have_been_sent=maybe,
            parts=self.parts,
            encoding=self.encoding,
            backend=observer.backend,
            method=observer.method,
            duration=time.perf_counter() - self.started,
            rate_limit_wait=self.rate_limit_wait,
            pause_wait=self.pause_wait,
            error=None if error is None else type(error).__qualname__,
            status_code=self.status_code,
            reconciled=reconciled,
            phonenumber=self.sms.phonenumber if observer.phonenumber else None,
        )
