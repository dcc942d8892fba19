"""`DeliveryReportReceiver`: a small ASGI app that takes delivery reports at a `callback_url`.

No web framework: it runs under any ASGI server (`uvicorn module:receiver`) and mounts in
Starlette or FastAPI (`app.mount("/dlr", receiver)`). Each report is parsed by
`_delivery.parse_delivery_report()` and answered at once; the caller's callback runs in a task
of its own, so a slow or failing callback never delays or breaks the answer to the gateway.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

from . import _defaults as defaults
from ._delivery import DeliveryReport, InvalidDeliveryReport, parse_delivery_report
from ._reconcile import TOKEN_PARAMETER, DeliveryTracker

__all__ = ["DeliveryReportReceiver"]

logger = logging.getLogger(defaults.LOGGER_NAME)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: What the receiver calls with each report: an async function (a plain one works too).
ReportCallback = Callable[[DeliveryReport], Awaitable[None] | None]

#: A delivery report is a few hundred bytes; a body a hundred times that is not one, and
#: reading it whole would let any client make the receiver buffer without bound.
DEFAULT_MAX_BODY_SIZE: Final = 64 * 1024
#: Callbacks still running at most; past this the receiver answers 503 so the gateway pushes
#: the report again later, instead of the receiver holding ever more tasks in memory.
DEFAULT_MAX_PENDING: Final = 10_000
#: How long `aclose()` waits for running callbacks before cancelling them.
DEFAULT_DRAIN_TIMEOUT: Final = 10.0
#: The methods a report arrives with: POST (JSON or form body) or GET (query string).
ALLOWED_METHODS: Final = ("GET", "POST")


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class DeliveryReportReceiver:
    """An ASGI app that reads delivery reports and hands each one to `on_report`.

    Answers, per request:

    - 200 once the report is read; `on_report` then runs in a task of its own. An exception
      it raises is logged (WARNING, logger `haorui_async`, with the report's `uid` and
      `message_id`) and never reaches the gateway or the next report.
    - 400 for a body that is not a delivery report (`InvalidDeliveryReport`), with the reason.
    - 405 for a method other than GET and POST; 413 for a body over `max_body_size`.
    - 503 while `max_pending` callbacks are still running, and after `aclose()`: the gateway
      may push the report again later.

    Serve it with any ASGI server (`uvicorn module:receiver`): on the server's shutdown
    (ASGI lifespan) it waits for running callbacks. Mounted in a Starlette or FastAPI app
    (`app.mount("/dlr", receiver)`), which sends no lifespan events to mounted apps, call
    `await receiver.aclose()` in the app's own shutdown.

    Args:
        on_report: called with each `DeliveryReport`; an async function, or a plain one
            (which then runs on the event loop, so it should be quick).
        max_body_size: the largest request body read, in bytes.
        tracker: a `DeliveryTracker` shared with the sender (or a bulk job): a report must
            then come to the tracker's callback URL with its secret token (else 403, never
            applied), and is applied, and handed to `on_report`, only for a uid the tracker
            saw sent; reports for other uids are answered 200 and dropped.
        max_pending: callbacks running at most before new reports are answered 503.
        drain_timeout: seconds `aclose()` waits for running callbacks before cancelling them.

    Raises:
        TypeError: `on_report` is not callable.
        ValueError: a limit is not positive.
    """

    def __init__(
        self,
        on_report: ReportCallback | None = None,
        *,
        tracker: DeliveryTracker | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_pending: int = DEFAULT_MAX_PENDING,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        if on_report is None and tracker is None:
            raise TypeError("on_report, tracker: give at least one")
        if on_report is not None and not callable(on_report):
            raise TypeError(f"on_report: expected a callable, got {on_report!r}")
        limits: dict[str, object] = {
            "max_body_size": max_body_size,
            "max_pending": max_pending,
            "drain_timeout": drain_timeout,
        }
        for name, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: expected a number > 0, got {value!r}")
        self.on_report = on_report
        self.tracker = tracker
        self.max_body_size = max_body_size
        self.max_pending = max_pending
        self.drain_timeout = float(drain_timeout)
        # Strong references: the event loop keeps only weak ones to tasks, and a callback
        # whose task is collected mid-run would silently never finish.
        self._tasks: set[asyncio.Task[None]] = set()
        self._state = _State.OPEN

    @property
    def pending(self) -> int:
        """How many callbacks are still running."""
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        """True once `aclose()` has begun: new reports are answered 503."""
        return self._state is not _State.OPEN

    def __repr__(self) -> str:
        return (
            f"<DeliveryReportReceiver on_report={self.on_report!r} pending={self.pending} "
            f"state={self._state.value!r}>"
        )

    async def aclose(self) -> None:
        """Stop taking reports and wait for running callbacks (cancelled after `drain_timeout`).

        Safe to call more than once.
        """
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSING
        if self._tasks:
            _, still_running = await asyncio.wait(set(self._tasks), timeout=self.drain_timeout)
            for task in still_running:
                task.cancel()
            if still_running:
                logger.warning(
                    "cancelled %d delivery report callbacks still running after %.1fs",
                    len(still_running),
                    self.drain_timeout,
                )
                await asyncio.wait(still_running)
        self._state = _State.CLOSED

    # -- ASGI -----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: HTTP requests and lifespan events."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"DeliveryReportReceiver serves HTTP only, not {scope['type']!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ALLOWED_METHODS:
            await _answer(send, 405, "method not allowed", [(b"allow", b"GET, POST")])
            return
        if self._state is not _State.OPEN:
            await _answer(send, 503, "shutting down")
            return
        try:
            body = await self._read_body(receive)
        except _BodyTooLarge:
            await _answer(send, 413, "body too large")
            return
        except _ClientGone:
            return
        query: bytes = scope.get("query_string", b"")
        if self.tracker is not None:
            given, query = _take_token(query)
            if not self.tracker.accepts_token(given):
                # Never the token itself in a log record: only that it was wrong or missing.
                logger.warning("answered 403 to a delivery report without the right token")
                await _answer(send, 403, "forbidden")
                return
        content_type = None
        for name, value in scope["headers"]:
            if name.lower() == b"content-type":
                content_type = value.decode("latin-1")
        try:
            report = parse_delivery_report(body, content_type, query)
        except InvalidDeliveryReport as exc:
            logger.warning("answered 400 to a malformed delivery report: %s", exc)
            await _answer(send, 400, str(exc))
            return
        if self.tracker is not None and not self.tracker.record(report):
            logger.debug("a delivery report for uid=%s, not sent with this tracker", report.uid)
            await _answer(send, 200, "ok")
            return
        if self.on_report is None:
            await _answer(send, 200, "ok")
            return
        if len(self._tasks) >= self.max_pending:
            await _answer(send, 503, "too many reports in progress", [(b"retry-after", b"1")])
            return
        task = asyncio.get_running_loop().create_task(self._deliver(report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await _answer(send, 200, "ok")

    async def _read_body(self, receive: Receive) -> bytes:
        """The whole body; raises `_BodyTooLarge` past `max_body_size`, `_ClientGone`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # A report cut short is not acted on: the gateway will push it again.
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_size:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _deliver(self, report: DeliveryReport) -> None:
        assert self.on_report is not None
        try:
            result = self.on_report(report)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            # The callback is the caller's code: its text is theirs, the report's ids are ours.
            logger.warning(
                "delivery report callback failed for uid=%s message_id=%s status=%s: %s",
                report.uid,
                report.message_id,
                report.status,
                type(exc).__name__,
                exc_info=exc,
            )


def _take_token(query: bytes) -> tuple[str | None, bytes]:
    """The tracker's token from a query string, and the query without it."""
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    tokens = [value for name, value in pairs if name == TOKEN_PARAMETER]
    rest = urlencode([(name, value) for name, value in pairs if name != TOKEN_PARAMETER])
    return (tokens[0] if len(tokens) == 1 else None), rest.encode("latin-1")


async def _answer(
    send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = text.encode("utf-8", "replace") + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
