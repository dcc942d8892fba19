"""`AsyncSender`: the adapter that drives one message through admission, a backend, retries.

This module builds it and gives it its public face; the path itself (`send_message`: `_send`,
one `_attempt` each) is its base's, `_sender_core.SenderCore`, which the compiled build compiles.
The path of one message: the request is built by `_protocol.RequestBuilder`;
each attempt waits its turn at `_admission.Admission` (rate limit, a pause the gateway asked
for, a slot), goes out through the backend (`_backends`), and its answer is read by
`_protocol.read_response`; `_retry.RetryPolicy.next_wait` decides whether another attempt
follows. `_backends.translate()` is the one place where a transport's exception becomes the SDK's.
Where something watches the sends (`on_outcome`, OpenTelemetry), a `_telemetry.SendTrace`
follows each one through these steps; where nothing does, it is None.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Literal

import httpx

from . import _bulk
from . import _defaults as defaults
from ._admission import Admission, Limiter, local_limiter
from ._backends import make_backend
from ._bulk import BulkReport, BulkSend
from ._config import SenderConfig
from ._exceptions import ConfigurationError, SenderClosed
from ._lookups import LookupsMixin
from ._message import SMS
from ._protocol import RequestBuilder, SendResult
from ._reconcile import DeliveryTracker
from ._retry import RetryPolicy
from ._secrets import install_library_log_filter
from ._sender_core import SenderCore, State
from ._telemetry import Observer, SendRecord, Telemetry, resolve_telemetry

__all__ = ["AsyncSender"]


class AsyncSender(LookupsMixin, SenderCore):
    """Sends SMS through the HAORUI gateway, many at once, over one pool of connections.

    Use it as an async context manager, or call `aclose()` when done:

        async with AsyncSender(api_id="API43404236", sender_id="HAORUI") as sender:
            result = await sender.send("+86 139 1234 5678", "Your code is 112233")

    Args:
        api_id: the account id; defaults to the environment variable `HAORUI_API_ID`.
        api_password: the account password; defaults to `HAORUI_API_PASSWORD`. It never
            appears in a repr, a log record or an exception built by this SDK.
        sender_id: the default sender id of messages that carry none.
        base_url: the gateway; defaults to `HAORUI_BASE_URL`, else `https://api.haorui.com`.
        method: "POST" (a JSON body; the default) or "GET" (everything in the query string,
            so the password sits in the URL on the wire).
        backend: "httpx" (the default: an `httpx.AsyncClient` over the SDK's own connection
            pool) or "fast" (the same pool driven directly, answers read by httptools: the
            `[fast]` extra). Both step aside for httpx's own pool while respx or pytest-httpx
            mocks it, so mocked tests are intercepted.
        sms_type: the default `sms_type`, "T" (transactional) or "P" (promotional).
        encoding: the default `encoding`: "auto", "T" or "U".
        timeout: connect/read/write/pool timeouts of one request (an `httpx.Timeout` or seconds).
        deadline: the most one `send` may take, in seconds: the rate limit, a slot, every
            attempt (a trickling answer included) and the back-off between them. Past it,
            `NotSent` where nothing went out, else `OutcomeUnknown`.
        max_concurrency: requests in flight at most; more sends wait for a slot.
        rate_limit: requests per second at most, for the whole sender (retries count): a
            number (aiolimiter's leaky bucket: the `[ratelimit]` extra), or any object with
            `async acquire()` (a limiter shared by several processes). None: no limit.
        retry: the `RetryPolicy`; `RetryPolicy(attempts=1)` turns retries off.
        retry_ambiguous: shortcut for `RetryPolicy(retry_ambiguous=True)`: also retry failures
            whose outcome is unknown. This risks duplicate SMS.
        ssl_context: the TLS settings of the sender's own backend (e.g. to trust a private CA);
            certificates and host names are always verified.
        transport: an `httpx.AsyncBaseTransport` to send through (e.g. `httpx.MockTransport`,
            a `FakeGateway`'s transport). Closed by `aclose()`.
        client: an `httpx.AsyncClient` of the caller's to send through. Not closed by `aclose()`.
        sleep: the coroutine function used to wait between attempts (tests inject a fake).
        clock: the clock of the deadline and the retry decisions, in seconds (defaults to the
            event loop's); a test pairs a fake one with a fake `sleep`.
        reconcile_unknown: an attempt that ends in an unknown outcome is reconciled
            (`reconcile()`) instead of raised: accepted, `send()` returns a `SendResult` marked
            `reconciled`; provably not accepted, it is sent again (within the attempts and the
            deadline); still unknown, `OutcomeUnknown` is raised. Off by default: its one
            residual risk is a gateway whose record appears later than `reconcile_settle`.
        reconcile_settle: seconds a record is given to appear before a lookup that finds
            nothing counts (two such lookups, this far apart, mean "not accepted").
        tracker: a `DeliveryTracker` shared with a `DeliveryReportReceiver`: messages without a
            `callback_url` get its URL (with its secret token), and its reports settle unknown
            outcomes.
        on_outcome: called with a `SendRecord` once each send has ended (sent or not, after
            its last attempt): its uid, outcome, attempts, parts, waits, error class; never
            the text or the password. A plain function (not `async def`); what it raises is
            logged and never changes the send.
        telemetry: OpenTelemetry spans and metrics (the `[otel]` extra;
            docs/observability.md). None: on only where a real tracer or meter provider (an
            SDK's) is installed when the sender is built; True: on, with the global providers;
            a `Telemetry`: on, with its providers; False: off. Off, it costs nothing.
        telemetry_phonenumber: put the phone number into `SendRecord`s and spans (never into
            metrics). Off by default: it is personal data.

    Raises:
        ConfigurationError: credentials missing, an option out of range, or `telemetry`
            asked for without opentelemetry-api.
    """

    def __init__(
        self,
        *,
        api_id: str | None = None,
        api_password: str | None = None,
        sender_id: str | None = None,
        base_url: str | None = None,
        method: Literal["POST", "GET"] = defaults.DEFAULT_METHOD,
        backend: Literal["httpx", "fast"] = defaults.DEFAULT_BACKEND,
        sms_type: Literal["P", "T"] = defaults.DEFAULT_SMS_TYPE,
        encoding: Literal["T", "U", "auto"] = defaults.DEFAULT_ENCODING,
        timeout: httpx.Timeout | float | None = None,
        deadline: float = defaults.DEFAULT_DEADLINE,
        max_concurrency: int = defaults.DEFAULT_MAX_CONCURRENCY,
        rate_limit: float | Limiter | None = None,
        retry: RetryPolicy | None = None,
        retry_ambiguous: bool | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
        reconcile_unknown: bool = False,
        reconcile_settle: float = defaults.DEFAULT_RECONCILE_SETTLE,
        tracker: DeliveryTracker | None = None,
        on_outcome: Callable[[SendRecord], object] | None = None,
        telemetry: bool | Telemetry | None = None,
        telemetry_phonenumber: bool = False,
    ) -> None:
        if transport is not None and client is not None:
            raise ConfigurationError("transport, client: give one or the other, not both")
        limiter: Limiter | None = None
        if isinstance(rate_limit, Limiter):
            limiter, rate_limit = rate_limit, None
        self.config = config = SenderConfig.from_options(
            api_id=api_id,
            api_password=api_password,
            sender_id=sender_id,
            base_url=base_url,
            method=method,
            backend=backend,
            sms_type=sms_type,
            encoding=encoding,
            timeout=timeout,
            deadline=deadline,
            max_concurrency=max_concurrency,
            rate_limit=rate_limit,
            retry=retry,
            retry_ambiguous=retry_ambiguous,
            ssl_context=ssl_context,
            reconcile_unknown=reconcile_unknown,
            reconcile_settle=reconcile_settle,
            on_outcome=on_outcome,
            telemetry=telemetry,
            telemetry_phonenumber=telemetry_phonenumber,
        )
        #: Where the reports of this sender's messages are matched to their uids, if anywhere.
        self.tracker = tracker
        if limiter is None and config.rate_limit is not None:
            limiter = local_limiter(config.rate_limit)
        self._password = config.api_password
        self._path = httpx.URL(config.endpoint).raw_path.decode("ascii")
        self._prefix = self._path.removesuffix(defaults.SEND_SMS_PATH)
        self._encode = RequestBuilder(
            method=config.method,
            path=self._path,
            api_id=config.api_id,
            api_password=self._password,
            sms_type=config.sms_type,
            encoding=config.encoding,
            sender_id=config.sender_id,
        )
        # A caller's client or transport, or a mock standing in for the sender's pool, may
        # log through httpx and httpcore: keep the password out of their records.
        install_library_log_filter(self._password)
        self._backend = make_backend(config, transport=transport, client=client)
        self._admission = Admission(config.max_concurrency, limiter, sleep)
        self._sleep = sleep
        self._clock = clock
        self._loop = None
        self._loop_time = time.monotonic
        self._state = State.UNOPENED
        self._telemetry = resolve_telemetry(config.telemetry)
        self._observer = self._make_observer()

    def _make_observer(self) -> Observer | None:
        config = self.config
        if config.on_outcome is None and self._telemetry is None:
            return None
        instruments = None
        if self._telemetry is not None:
            from ._otel import Instruments

            instruments = Instruments(
                self._telemetry,
                base_url=config.base_url,
                method=config.method,
                backend=config.backend,
            )
        return Observer(
            on_outcome=config.on_outcome,
            instruments=instruments,
            phonenumber=config.telemetry_phonenumber,
            backend=config.backend,
            method=config.method,
            encoding=config.encoding,
        )

    # -- what it was built with -----------------------------------------------------------

    @property
    def api_id(self) -> str:
        return self.config.api_id

    @property
    def base_url(self) -> str:
        return self.config.base_url

    @property
    def method(self) -> str:
        return self.config.method

    @property
    def backend(self) -> str:
        return self.config.backend

    @property
    def max_concurrency(self) -> int:
        return self.config.max_concurrency

    @property
    def deadline(self) -> float:
        return self.config.deadline

    @property
    def rate_limit(self) -> float | None:
        return self.config.rate_limit

    @property
    def retry(self) -> RetryPolicy:
        return self.config.retry

    @property
    def telemetry(self) -> Telemetry | None:
        """The OpenTelemetry instrumentation this sender reports to, or None: it is off."""
        return self._telemetry

    @property
    def client(self) -> httpx.AsyncClient:
        """The `httpx.AsyncClient` the default backend sends through (the caller's, if given)."""
        return self._backend.client

    @property
    def closed(self) -> bool:
        return self._state is State.CLOSED

    def _closed(self) -> bool:
        return self._state is State.CLOSED

    async def __aenter__(self) -> AsyncSender:
        if self._state is State.CLOSED:
            raise SenderClosed("this AsyncSender is closed; create a new one")
        self._state = State.OPENED
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (a client passed in by the caller stays open)."""
        if self._state is State.CLOSED:
            return
        self._state = State.CLOSED
        await self._backend.aclose()

    def __repr__(self) -> str:
        return (
            f"<AsyncSender api_id={self.api_id!r} base_url={self.base_url!r} "
            f"method={self.method!r} max_concurrency={self.max_concurrency} "
            f"state={self._state.value!r}>"
        )

    # -- sending --------------------------------------------------------------------------

    async def send(
        self,
        phonenumber: str | int,
        textmessage: str,
        *,
        sms_type: str | None = None,
        encoding: str | None = None,
        sender_id: str | None = None,
        uid: str | int | None = None,
        callback_url: str | None = None,
    ) -> SendResult:
        """Send one SMS and return the gateway's acceptance.

        Fields left as None take the sender's defaults; without a `uid` the message gets a
        random one. Bad input raises `InvalidMessage` naming the field before anything is sent.

        Raises:
            InvalidMessage: a field is invalid; nothing was sent.
            SubmissionFailed: the gateway answered `status: "F"`.
            NotSent: the gateway provably did not accept it, after the retries allowed.
            Rejected: the gateway refused the request as it stands (HTTP 400, 401, ...).
            OutcomeUnknown: the gateway may have accepted it; not resent.
            SenderClosed: the sender was closed.
        """
        if (
            sms_type is None
            and encoding is None
            and sender_id is None
            and uid is None
            and callback_url is None
        ):
            # Most sends: five keywords of None cost a sixth of building the message.
            sms = SMS(phonenumber, textmessage)
        else:
            sms = SMS(
                phonenumber,
                textmessage,
                sms_type=sms_type,
                encoding=encoding,
                sender_id=sender_id,
                uid=uid,
                callback_url=callback_url,
            )
        return await self.send_message(sms)

    def send_many(
        self,
        messages: Iterable[SMS] | AsyncIterable[SMS],
        *,
        ordered: bool = False,
        concurrency: int | None = None,
        window: int | None = None,
        grace: float = defaults.DEFAULT_GRACE,
        reconcile_unknown: bool | None = None,
    ) -> BulkSend:
        """Send many messages, at most `concurrency` at once; one `Outcome` per input.

        `async for outcome in sender.send_many(messages)`: outcomes come as sends complete
        (`ordered=True`: in input order). Memory is bounded by the concurrency, not by the
        input's length. See `haorui_async._bulk.send_many` for stopping, cancellation and
        `reconcile_unknown`.
        """
        return _bulk.send_many(
            self,
            messages,
            ordered=ordered,
            concurrency=concurrency,
            window=window,
            grace=grace,
            reconcile_unknown=reconcile_unknown,
        )

    async def send_all(
        self,
        messages: Iterable[SMS] | AsyncIterable[SMS],
        *,
        concurrency: int | None = None,
    ) -> BulkReport:
        """Send every message and gather the outcomes in input order, with counts per kind."""
        return await _bulk.send_all(self, messages, concurrency=concurrency)
