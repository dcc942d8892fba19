"""`AsyncSender`: the I/O around the protocol, one attempt at a time, retried when it is safe.

The path of one message: `send()` builds and validates an `SMS`; `send_message()` makes the
first attempt outside tenacity (a first-attempt success pays nothing for the retry machinery);
`_attempt()` is one request: `_take_turn()` waits for the rate limit, a pause the gateway asked
for and a slot in the semaphore; `_exchange()` hands the request to the transport and reads
the answer, and every failure is translated in `_translate()`, the one place where httpx's
errors become the SDK's; the answer is read by `_protocol.read_response()`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
import ssl
import sys
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal

import attrs
import httpx

from . import _bulk
from . import _defaults as defaults
from ._bulk import BulkReport, BulkSend
from ._exceptions import (
    ConfigurationError,
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    Rejected,
    SenderClosed,
    SendError,
    SubmissionFailed,
)
from ._fast import FastTransport
from ._message import SMS
from ._pool import ShardedTransport
from ._protocol import SendResult, build_params, encode_json, encode_query, read_response
from ._retry import RetryPolicy, retrying
from ._secrets import Secret, install_httpx_log_filter, scrub
from ._version import __version__

if TYPE_CHECKING:
    from aiolimiter import AsyncLimiter

__all__ = ["AsyncSender"]

logger = logging.getLogger(defaults.LOGGER_NAME)

#: Failures that happen before a single byte of the request can have reached the gateway.
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
#: Requests that cannot be sent as they stand: retrying changes nothing.
_UNSENDABLE: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


if sys.version_info >= (3, 11):

    async def _wait_acquire(semaphore: asyncio.Semaphore, seconds: float) -> None:
        # asyncio.timeout is a timer handle; wait_for would start a task per waiting send.
        async with asyncio.timeout(seconds):
            await semaphore.acquire()

else:  # pragma: no cover - Python 3.10

    async def _wait_acquire(semaphore: asyncio.Semaphore, seconds: float) -> None:
        await asyncio.wait_for(semaphore.acquire(), seconds)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


def _from_env(value: str | None, env: str, name: str) -> str:
    if value is None:
        value = os.environ.get(env)
    if not value:
        raise ConfigurationError(
            f"{name}: not given, and the environment variable {env} is not set"
        )
    return value


class AsyncSender:
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
        backend: "httpx" (the default: httpx's own transport, sharded into small pools; respx
            intercepts it in tests) or "fast" (`FastTransport`: asyncio protocols and httptools,
            several times faster at high concurrency; respx does not intercept it).
        sms_type: the default `sms_type`, "T" (transactional) or "P" (promotional).
        encoding: the default `encoding`: "auto", "T" or "U".
        timeout: connect/read/write/pool timeouts of one request (an `httpx.Timeout` or seconds).
        deadline: the most one `send` may take, retries and back-off included, in seconds.
        max_concurrency: requests in flight at most; more sends wait for a slot.
        rate_limit: requests per second at most, for the whole sender (retries count); needs
            the `[ratelimit]` extra (aiolimiter). None: no limit.
        retry: the `RetryPolicy`; `RetryPolicy(attempts=1)` turns retries off.
        retry_ambiguous: shortcut for `RetryPolicy(retry_ambiguous=True)`: also retry failures
            whose outcome is unknown. This risks duplicate SMS.
        ssl_context: the TLS settings of the sender's own backend (e.g. to trust a private CA);
            certificates and host names are always verified.
        transport: an `httpx.AsyncBaseTransport` to send through (e.g. `httpx.MockTransport`,
            a `FakeGateway`'s transport). Closed by `aclose()`.
        client: an `httpx.AsyncClient` of the caller's to send through. Not closed by `aclose()`.
        sleep: the coroutine function used to wait between attempts (tests inject a fake).

    Raises:
        ConfigurationError: credentials missing, or an option out of range.
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
        rate_limit: float | None = None,
        retry: RetryPolicy | None = None,
        retry_ambiguous: bool | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api_id = _from_env(api_id, defaults.ENV_API_ID, "api_id")
        self._password = Secret(_from_env(api_password, defaults.ENV_API_PASSWORD, "api_password"))
        # The SMS validators check the defaults too, so both say the same about a bad value.
        try:
            defaults_probe = SMS(
                "10000000", "x", sms_type=sms_type, encoding=encoding, sender_id=sender_id
            )
        except InvalidMessage as exc:
            raise ConfigurationError(str(exc)) from None
        self.sender_id = defaults_probe.sender_id
        self.sms_type: str = defaults_probe.sms_type or defaults.DEFAULT_SMS_TYPE
        self.encoding: str = defaults_probe.encoding or defaults.DEFAULT_ENCODING
        if method not in ("POST", "GET"):
            raise ConfigurationError(f"method: expected 'POST' or 'GET', got {method!r}")
        self.method = method
        if not _is_int(max_concurrency) or max_concurrency < 1:
            raise ConfigurationError(
                f"max_concurrency: expected an int >= 1, got {max_concurrency!r}"
            )
        self.max_concurrency = max_concurrency
        if not deadline > 0:
            raise ConfigurationError(f"deadline: expected seconds > 0, got {deadline!r}")
        self.deadline = float(deadline)
        if transport is not None and client is not None:
            raise ConfigurationError("transport, client: give one or the other, not both")

        self.base_url = self._check_base_url(
            base_url or os.environ.get(defaults.ENV_BASE_URL) or defaults.DEFAULT_BASE_URL
        )
        self._endpoint = self.base_url + defaults.SEND_SMS_PATH
        self._url = httpx.URL(self._endpoint)

        self.retry = retry if retry is not None else RetryPolicy()
        if retry_ambiguous is not None:
            self.retry = attrs.evolve(self.retry, retry_ambiguous=retry_ambiguous)

        self.timeout = self._check_timeout(timeout)
        self._timeouts: dict[str, float] = {
            k: float(v) for k, v in self.timeout.as_dict().items() if v is not None
        }
        self._longest_timeout = max(self._timeouts.values())
        self._sleep = sleep
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self.rate_limit = rate_limit
        self._limiter = self._make_limiter(rate_limit)
        self._paused_until = 0.0

        user_agent = f"{defaults.USER_AGENT_PREFIX}/{__version__} httpx/{httpx.__version__}"
        self._headers: list[tuple[str, str]] = [
            ("Accept", "application/json"),
            ("User-Agent", user_agent),
        ]
        if method == "POST":
            self._headers.append(("Content-Type", "application/json"))
        else:
            install_httpx_log_filter()

        if backend not in ("httpx", "fast"):
            raise ConfigurationError(f"backend: expected 'httpx' or 'fast', got {backend!r}")
        if (backend == "fast" or ssl_context is not None) and (
            transport is not None or client is not None
        ):
            raise ConfigurationError(
                "transport, client: the sender builds its own transport for backend='fast' or "
                "ssl_context=; give those to your transport or client instead"
            )
        self.backend = backend
        self._fast: FastTransport | None = None
        if backend == "fast":
            self._fast = transport = FastTransport(
                self.base_url,
                max_connections=max_concurrency,
                keepalive_expiry=defaults.DEFAULT_KEEPALIVE_EXPIRY,
                ssl_context=ssl_context,
            )
            self._template = self._fast.template(method, self._headers)

        self._owns_client = client is None
        if client is not None:
            self._client = client
            self._handle: Callable[[httpx.Request], Awaitable[httpx.Response]] = client.send
        else:
            if transport is None:
                # As many connections as requests in flight, all kept alive, split into small
                # pools; TLS certificates are always verified.
                transport = ShardedTransport(max_concurrency, ssl_context=ssl_context)
            self._client = httpx.AsyncClient(transport=transport, timeout=self.timeout)
            # The lean path: the client's own layer (auth, redirects, cookies, event hooks,
            # its request log with the URL) does nothing for a SendSMS call, so the request
            # goes to the pool directly.
            self._handle = transport.handle_async_request
        self._state = _State.UNOPENED

    # -- set-up ---------------------------------------------------------------------------

    @staticmethod
    def _check_base_url(base_url: str) -> str:
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ConfigurationError(f"base_url: not a URL ({exc})") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigurationError(
                f"base_url: expected an absolute http:// or https:// URL, got {base_url!r}"
            )
        if url.query or url.fragment or url.userinfo:
            raise ConfigurationError("base_url: must not carry a query, fragment or user info")
        return str(url).rstrip("/")

    @staticmethod
    def _check_timeout(timeout: httpx.Timeout | float | None) -> httpx.Timeout:
        if timeout is None:
            return httpx.Timeout(
                connect=defaults.DEFAULT_CONNECT_TIMEOUT,
                read=defaults.DEFAULT_READ_TIMEOUT,
                write=defaults.DEFAULT_WRITE_TIMEOUT,
                pool=defaults.DEFAULT_POOL_TIMEOUT,
            )
        if isinstance(timeout, httpx.Timeout):
            values = timeout.as_dict().values()
            if any(v is None or v <= 0 for v in values):
                raise ConfigurationError(
                    f"timeout: every timeout must be > 0 seconds, got {timeout!r}"
                )
            return timeout
        seconds: object = timeout
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
            return httpx.Timeout(float(seconds))
        raise ConfigurationError(
            f"timeout: expected seconds > 0 or an httpx.Timeout, got {timeout!r}"
        )

    @staticmethod
    def _make_limiter(rate_limit: float | None) -> AsyncLimiter | None:
        if rate_limit is None:
            return None
        if not rate_limit > 0:
            raise ConfigurationError(f"rate_limit: expected messages/s > 0, got {rate_limit!r}")
        try:
            from aiolimiter import AsyncLimiter
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigurationError(
                "rate_limit: needs aiolimiter: pip install 'haorui-async[ratelimit]'"
            ) from None
        # A leaky bucket that holds a tenth of a second's worth (at least one request), so
        # bursts stay small: a window of T seconds sees at most rate * (T + 0.1) starts.
        burst = max(1.0, rate_limit * defaults.RATE_LIMIT_BURST)
        return AsyncLimiter(burst, burst / rate_limit)

    @property
    def client(self) -> httpx.AsyncClient:
        """The `httpx.AsyncClient` that owns this sender's connection pool."""
        return self._client

    @property
    def closed(self) -> bool:
        return self._state is _State.CLOSED

    async def __aenter__(self) -> AsyncSender:
        if self._state is _State.CLOSED:
            raise SenderClosed("this AsyncSender is closed; create a new one")
        if self._owns_client:
            await self._client.__aenter__()
        self._state = _State.OPENED
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
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        if self._owns_client:
            await self._client.aclose()

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

    async def send_message(self, sms: SMS) -> SendResult:
        """Send a prepared `SMS`. Raises as `send()` does."""
        if self._state is not _State.OPENED:
            if self._state is _State.CLOSED:
                raise SenderClosed("this AsyncSender is closed; create a new one")
            self._state = _State.OPENED
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline
        request_parts = self._encode(sms)
        try:
            return await self._attempt(sms, request_parts, deadline, 1)
        except SendError as exc:
            if not self.retry.should_retry(exc) or self.retry.attempts == 1:
                raise
            first_failure = exc
        return await self._retry(sms, request_parts, deadline, first_failure)

    async def _retry(
        self, sms: SMS, request_parts: tuple[httpx.URL, bytes], deadline: float, first: SendError
    ) -> SendResult:
        """Attempts 2..N, under tenacity; attempt 1 has already failed with `first`."""
        loop = asyncio.get_running_loop()
        attempt_number = 0
        result: SendResult | None = None
        async for attempt in retrying(
            self.retry, deadline=deadline, clock=loop.time, sleep=self._sleep
        ):
            with attempt:
                attempt_number += 1
                if attempt_number == 1:
                    raise first
                result = await self._attempt(sms, request_parts, deadline, attempt_number)
        assert result is not None
        return result

    def send_many(
        self,
        messages: Iterable[SMS] | AsyncIterable[SMS],
        *,
        ordered: bool = False,
        concurrency: int | None = None,
        window: int | None = None,
        grace: float = defaults.DEFAULT_GRACE,
    ) -> BulkSend:
        """Send many messages, at most `concurrency` at once; one `Outcome` per input.

        `async for outcome in sender.send_many(messages)`: outcomes come as sends complete
        (`ordered=True`: in input order). Memory is bounded by the concurrency, not by the
        input's length. See `haorui_async._bulk.send_many` for stopping and cancellation.
        """
        return _bulk.send_many(
            self, messages, ordered=ordered, concurrency=concurrency, window=window, grace=grace
        )

    async def send_all(
        self,
        messages: Iterable[SMS] | AsyncIterable[SMS],
        *,
        concurrency: int | None = None,
    ) -> BulkReport:
        """Send every message and gather the outcomes in input order, with counts per kind."""
        return await _bulk.send_all(self, messages, concurrency=concurrency)

    def _encode(self, sms: SMS) -> tuple[httpx.URL, bytes]:
        params = build_params(
            sms,
            api_id=self.api_id,
            api_password=self._password,
            sms_type=self.sms_type,
            encoding=self.encoding,
            sender_id=self.sender_id,
        )
        if self.method == "POST":
            return self._url, encode_json(params)
        return httpx.URL(self._endpoint + "?" + encode_query(params)), b""

    async def _attempt(
        self, sms: SMS, request_parts: tuple[httpx.URL, bytes], deadline: float, attempt: int
    ) -> SendResult:
        """One request for `sms`: wait for its turn, send, read the answer."""
        remaining = await self._take_turn(sms, deadline, attempt)
        try:
            if self._state is _State.CLOSED:
                raise SenderClosed("this AsyncSender is closed; create a new one")
            status_code, raw_headers, content = await self._exchange(
                sms, request_parts, remaining, attempt
            )
        finally:
            self._semaphore.release()
        try:
            result = read_response(status_code, raw_headers, content, sms, attempts=attempt)
        except SendError as exc:
            self._note_failure(exc, asyncio.get_running_loop().time())
            raise self._scrubbed(exc) from None
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "attempt %d uid=%s: accepted, message_id=%s", attempt, sms.uid, result.message_id
            )
        return result

    async def _take_turn(self, sms: SMS, deadline: float, attempt: int) -> float:
        """Wait for the rate limit, a pause the gateway asked for, and a slot; hold the slot.

        Returns the seconds left before the deadline. Raises `NotSent` if the deadline passes
        first: nothing was sent.
        """
        loop = asyncio.get_running_loop()
        if self._limiter is not None:
            await self._limiter.acquire()
        if self._paused_until > loop.time():
            await self._wait_out_pause(sms, deadline, attempt)
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise NotSent(
                "the deadline passed before the request was sent", message=sms, attempts=attempt
            )
        semaphore = self._semaphore
        if not semaphore.locked():
            await semaphore.acquire()
            return remaining
        try:
            await _wait_acquire(semaphore, remaining)
        except asyncio.TimeoutError:
            raise NotSent(
                f"no free slot among {self.max_concurrency} before the deadline",
                message=sms,
                attempts=attempt,
            ) from None
        if self._paused_until > loop.time():
            # A 429 arrived while this send waited for its slot.
            try:
                await self._wait_out_pause(sms, deadline, attempt)
            except BaseException:
                semaphore.release()
                raise
        return deadline - loop.time()

    async def _exchange(
        self, sms: SMS, request_parts: tuple[httpx.URL, bytes], remaining: float, attempt: int
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Send one request and read the whole answer: status, raw headers, body.

        Every failure is translated by `_translate()`.
        """
        if remaining >= self._longest_timeout:
            timeouts = self._timeouts
        else:
            timeouts = {k: min(v, remaining) for k, v in self._timeouts.items()}
        url, body = request_parts
        failure: SendError | None = None
        try:
            if self._fast is not None:
                # The lean path: no httpx.Request or httpx.Response built per message.
                return await self._fast.send_raw(self._template, url.raw_path, body, timeouts)
            response = await self._handle(
                httpx.Request(
                    self.method,
                    url,
                    headers=self._headers,
                    content=body,
                    extensions={"timeout": timeouts},
                )
            )
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            return response.status_code, response.headers.raw, content
        except Exception as exc:
            failure = self._translate(exc, sms, attempt)
            if failure.__cause__ is exc:
                raise failure from exc
        # Raised outside the except block: the original carried the password.
        raise failure

    async def _wait_out_pause(self, sms: SMS, deadline: float, attempt: int) -> None:
        """Wait until the pause the gateway asked for (429 with Retry-After) is over."""
        loop = asyncio.get_running_loop()
        pause = self._paused_until - loop.time()
        if pause >= deadline - loop.time():
            raise NotSent(
                f"the gateway asked to pause {pause:.1f}s, past this send's deadline",
                message=sms,
                attempts=attempt,
            )
        await self._sleep(pause)

    def _note_failure(self, exc: SendError, now: float) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("attempt %d uid=%s: %s", exc.attempts, exc.uid, type(exc).__name__)
        if (
            exc.status_code == 429
            and exc.retry_after is not None
            and exc.retry_after <= self.retry.retry_after_cap
        ):
            self._paused_until = max(self._paused_until, now + exc.retry_after)

    def _translate(self, exc: Exception, sms: SMS, attempt: int) -> SendError:
        """The one place where a transport's exception becomes the SDK's.

        The cause is chained (`__cause__`) only where its text is free of the password.
        """
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        clean = scrub(text, self._password)
        cls: type[SendError]
        if isinstance(exc, _NEVER_SENT):
            cls, detail = NotSent, f"could not reach the gateway ({clean})"
        elif isinstance(exc, _UNSENDABLE):
            cls, detail = Rejected, f"the request could not be sent ({clean})"
        elif isinstance(exc, (httpx.TimeoutException)):
            cls, detail = OutcomeUnknown, f"no answer in time after the request went out ({clean})"
        else:
            cls, detail = (
                OutcomeUnknown,
                f"the exchange broke off after the request went out ({clean})",
            )
        failure = cls(detail, message=sms, attempts=attempt)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("attempt %d uid=%s: %s", attempt, sms.uid, detail)
        if clean == text and scrub(repr(exc), self._password) == repr(exc):
            failure.__cause__ = exc
        return failure

    def _scrubbed(self, exc: SendError) -> SendError:
        """`exc`, with the password removed should the gateway have echoed it."""
        if isinstance(exc, SubmissionFailed):
            exc.remarks = scrub(exc.remarks, self._password)
            raw = repr(exc.body)
            if scrub(raw, self._password) != raw:
                exc.body = {
                    k: scrub(v, self._password) if isinstance(v, str) else v
                    for k, v in exc.body.items()
                }
        exc.detail = scrub(exc.detail, self._password)
        exc.args = (exc.detail,)
        return exc
