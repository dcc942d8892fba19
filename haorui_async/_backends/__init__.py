"""Backends: how one SendSMS request reaches the gateway and its answer comes back.

The sender speaks to a backend through one small interface (`Backend`): `exchange()` a
`Request` (method, target, body; built by `_protocol`) before a deadline, get an `Answer`
(status, raw headers, body: read within the caps, never decoded), then `finish()` it, keeping
the connection for the next request or retiring it. Failures are httpx's exception classes;
the sender translates them, in one place.

- `HttpxBackend` (`backend="httpx"`, the default): an `httpx.AsyncClient` over the SDK's own
  pool (`PoolTransport`, answers read by the plain reader), or over a transport or client
  of the caller's.
- `FastBackend` (`backend="fast"`): the same pool driven directly, answers read by httptools,
  no httpx models per message; imported only when asked for.

Both own-pool backends send through httpx's pool instead while an HTTP mocking library
(respx, pytest-httpx) has patched it, so a user's mocked test is intercepted and never
reaches the network.

The pool itself: `_wire` (bytes, pure), `_connection` (one connection, a state machine),
`_pool` (connections to one origin, every hand-over), `_transport` (httpx's interface).
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Final, Protocol

import httpcore
import httpx

from .. import _defaults as defaults
from .._exceptions import ConfigurationError, NotSent, OutcomeUnknown, Rejected, SendError
from .._message import SMS
from .._protocol import Request
from .._secrets import Secret, scrub
from .._version import __version__
from ._pool import Answer

if TYPE_CHECKING:
    from .._config import SenderConfig

__all__ = ["Answer", "Backend", "Request", "intercepted", "make_backend", "translate"]

logger = logging.getLogger(defaults.LOGGER_NAME)


class Backend(Protocol):
    """What the sender needs of a backend."""

    name: str

    @property
    def client(self) -> httpx.AsyncClient:
        """The httpx client behind it (the caller's, where one was given)."""

    async def exchange(self, request: Request, deadline: float) -> Answer:
        """Send `request` and read its answer, all before `deadline` (event-loop time).

        Raises httpx's errors: `ConnectError`, `ConnectTimeout` and `PoolTimeout` only where
        nothing was written (past the deadline too); any other where it may have been.
        """

    async def aclose(self) -> None: ...


_ORIGINALS = (
    (httpcore.AsyncConnectionPool, "handle_async_request"),
    (httpx.AsyncHTTPTransport, "handle_async_request"),
    (httpx.AsyncClient, "_transport_for_url"),
)
# (Each class's namespace is a live view: what a mock patches in shows there at once.)
_WATCHED = tuple((cls.__dict__, name, cls.__dict__[name]) for cls, name in _ORIGINALS)


def intercepted() -> bool:
    """Whether a mocking library (respx, pytest-httpx) has patched httpx or httpcore now."""
    for namespace, name, original in _WATCHED:  # noqa: SIM110 - any() over a generator costs twice this, per send
        if namespace.get(name) is not original:
            return True
    return False


def _headers(method: str) -> list[tuple[str, str]]:
    user_agent = f"{defaults.USER_AGENT_PREFIX}/{__version__} httpx/{httpx.__version__}"
    headers = [
        ("Accept", "application/json"),
        # The answer is a few hundred bytes: compression saves nothing, and a compressed
        # body is never decoded (a decompression bomb costs nothing).
        ("Accept-Encoding", "identity"),
        ("User-Agent", user_agent),
    ]
    if method == "POST":
        headers.append(("Content-Type", "application/json"))
    return headers


def make_backend(
    config: SenderConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    client: httpx.AsyncClient | None = None,
) -> Backend:
    """The backend `config` asks for, over the caller's transport or client where given.

    Raises ConfigurationError: a transport or client given with `backend="fast"` or an
    `ssl_context` (those build their own).
    """
    if (config.backend == "fast" or config.ssl_context is not None) and (
        transport is not None or client is not None
    ):
        raise ConfigurationError(
            "transport, client: the sender builds its own transport for backend='fast' or "
            "ssl_context=; give those to your transport or client instead"
        )
    common = {
        "headers": _headers(config.method),
        "timeout": config.timeout,
        "max_connections": config.max_concurrency,
        "ssl_context": config.ssl_context,
    }
    if config.backend == "fast":
        from ._fast import FastBackend

        return FastBackend(config.base_url, **common)  # type: ignore[arg-type]  # typed above
    from ._httpx import HttpxBackend

    return HttpxBackend(config.base_url, transport=transport, client=client, **common)  # type: ignore[arg-type]  # typed above


#: Failures that happen before a single byte of the request can have reached the gateway.
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
#: Requests that cannot be sent as they stand: retrying changes nothing.
_UNSENDABLE: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL)


def translate(exc: Exception, sms: SMS, attempt: int, secret: Secret) -> SendError:
    """The one place where a transport's exception becomes the SDK's.

    The cause is chained (`__cause__`) only where its text is free of the password, and as a
    copy without frames (`_frameless`).
    """
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    clean = scrub(text, secret)
    cls: type[SendError]
    if isinstance(exc, _NEVER_SENT):
        cls, detail = NotSent, f"could not reach the gateway ({clean})"
    elif isinstance(exc, _UNSENDABLE):
        cls, detail = Rejected, f"the request could not be sent ({clean})"
    elif isinstance(exc, httpx.TimeoutException):
        cls, detail = OutcomeUnknown, f"no answer in time after the request went out ({clean})"
    else:
        cls, detail = (
            OutcomeUnknown,
            f"the exchange broke off after the request went out ({clean})",
        )
    failure = cls(detail, message=sms, attempts=attempt)
    failure.timed_out = isinstance(exc, httpx.TimeoutException)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("attempt %d uid=%s: %s", attempt, sms.uid, detail)
    if clean == text and scrub(repr(exc), secret) == repr(exc):
        failure.__cause__ = _frameless(exc)
    return failure


def _frameless(exc: Exception) -> Exception | None:
    """A copy of `exc` without its traceback and chain, or None if it cannot be copied.

    The original's frames hold the request (a traceback printed with its locals would show
    them), and its chain may end in the caller's own exception (one being handled where the
    send was called), which is not the SDK's to change: the copy keeps the type and the text,
    which tell what went wrong.
    """
    try:
        twin = copy.copy(exc)
    except Exception:  # an exception class that cannot be rebuilt from its arguments
        return None
    if type(twin) is not type(exc) or str(twin) != str(exc):
        return None
    return twin
