"""The loopback emulator: the gateway model as a raw ASGI app, served by uvicorn.

No framework: per request the app reads the body, asks the `GatewayModel` for the answer and
writes it, nothing else (no per-request log), so the emulator is not what limits a benchmark.

- `serve(**options)`: an async context manager that runs the emulator on a free loopback port.
- `run(config, host, port)`: the emulator in the foreground until SIGTERM or SIGINT; what
  `python -m haorui_async.testing` and `haorui-async emulator` run.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import random
import signal
import socket
import struct
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import IO, Any, Final

import httpx
import uvicorn

from ._config import EmulatorConfig
from ._faults import (
    DropConnection,
    FaultPlan,
    Hang,
    LoseAnswer,
    MalformedBody,
    RespondWith,
)
from ._model import STATS_PATH, GatewayModel, Message, Reply, delivery_report, is_lookup_path

#: Delivery reports pushed at once; the others wait their turn.
_PUSHES_IN_FLIGHT: Final = 50
#: Connections the kernel queues before they are accepted: uvicorn's default, so a benchmark
#: opening hundreds of connections at once is not refused.
_BACKLOG: Final = 2048

__all__ = ["Emulator", "run", "serve"]

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]

#: What uvicorn logs when an app ends a response half-way: here that is the deliberate
#: "drop the connection after reading the request" fault, not a bug worth a log line.
_DROP_LOG_MESSAGE: Final = "ASGI callable returned without completing response."
#: The declared length of a dropped answer: more than is ever sent, so the client sees the
#: connection end before the answer does.
_DROP_DECLARED_LENGTH: Final = b"64"


#: The answer to a request still hanging when the server stops.
_SHUTTING_DOWN: Final = Reply(503, b'{"detail":"the emulator is shutting down"}')


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != _DROP_LOG_MESSAGE


_DROP_FILTER: Final = _DropFilter()


def _http_implementation() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the install
        return "h11"
    return "httptools"


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Emulator:
    """The HAORUI gateway on a loopback socket: an ASGI app around one `GatewayModel`.

    Attributes:
        config: the `EmulatorConfig`.
        model: the `GatewayModel` (messages, counts per uid, totals).
        faults: the `FaultPlan`: `inject()` scripts faults for the next requests.
        base_url: `http://HOST:PORT` once it runs (what `AsyncSender(base_url=...)` takes).
        received: requests received on the SendSMS path, faults included (lookups are
            counted apart: `stats()["lookups"]`).
        reports: delivery reports by fate: "sent", "failed", "skipped" (a non-loopback
            URL, not allowed), "dropped" (too many pending).
    """

    def __init__(
        self, config: EmulatorConfig | None = None, *, clock: Callable[[], float] | None = None
    ) -> None:
        self.config = cfg = config if config is not None else EmulatorConfig()
        # `clock` times the lookups' lag: a test passes its own to skip it without waiting.
        self.model = GatewayModel(
            cfg.accounts,
            record=cfg.record,
            lookup_lag=cfg.lookup_lag,
            balance=cfg.balance,
            currency=cfg.currency,
            dlr_statuses=cfg.status_mix(),
            seed=cfg.seed,
            clock=clock if clock is not None else time.monotonic,
        )
        self.faults = FaultPlan(self.config.rates(), self.config.seed)
        self.base_url = ""
        self.received = 0
        self.reports: Counter[str] = Counter()
        self._random = random.Random(cfg.seed)
        self._has_latency = cfg.latency > 0 or cfg.latency_jitter > 0 or cfg.slow_rate > 0
        self._closing: asyncio.Event | None = None
        self._stopped = asyncio.Event()
        self._reports_pending: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        self._server: uvicorn.Server | None = None

    # -- what a test asks -----------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        """Every accepted message, in order (with `record="messages"`)."""
        return self.model.messages

    def count_for_uid(self, uid: str) -> int:
        """How many times a message with this uid was accepted."""
        return self.model.count_for_uid(uid)

    def stats(self) -> dict[str, Any]:
        """The counters: the model's, requests received, faults and delivery reports."""
        return {
            **self.model.stats(),
            "received": self.received,
            "faults": dict(self.faults.served),
            "reports": dict(self.reports),
        }

    def stop(self) -> None:
        """Ask the running server to stop (what SIGTERM does)."""
        self._stopped.set()
        if self._server is not None:
            self._server.should_exit = True

    # -- the ASGI app ---------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI HTTP request (lifespan is not used)."""
        if scope["type"] != "http":
            return None
        message = await receive()
        body: bytes = message.get("body", b"")
        while message.get("more_body"):
            message = await receive()
            body += message.get("body", b"")
        path: str = scope["path"]
        method: str = scope["method"]
        content_type = ""
        if method == "POST":
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value.decode("latin-1")
                    break
        if not path.startswith("/api/"):
            if method == "GET" and path == STATS_PATH:
                reply = Reply(200, json.dumps(self.stats()).encode())
            else:
                reply = self.model.handle(method, path, scope["query_string"], body)
            return await _write(send, reply)
        lookup = is_lookup_path(path)
        if not lookup:
            self.received += 1
        if self._has_latency:
            await asyncio.sleep(self._delay())
        fault = None if lookup and not self.config.lookup_faults else self.faults.next()
        if fault is None or fault.accepted:
            reply = self.model.handle(method, path, scope["query_string"], body, content_type)
            if reply.accepted is not None and reply.accepted.callback_url is not None:
                self._schedule_report(reply.accepted)
            if fault is None:
                return await _write(send, reply)
        if isinstance(fault, RespondWith):
            headers = [(b"content-type", b"application/json")]
            if fault.retry_after is not None:
                headers.append((b"retry-after", str(fault.retry_after).encode()))
            return await _write(send, Reply(fault.status, fault.body, tuple(headers)))
        if isinstance(fault, MalformedBody):
            return await _write(
                send, Reply(fault.status, fault.body, ((b"content-type", b"text/html"),))
            )
        if isinstance(fault, Hang):
            seconds = fault.seconds if fault.seconds is not None else self.config.hang_seconds
            ending = await self._hang(receive, seconds)
            if ending == "disconnected":
                # The client gave up: nothing left to answer.
                return None
            if ending == "closing":
                return await _write(send, _SHUTTING_DOWN)
            if not fault.accepted:  # an accepted message was handled (and counted) already
                reply = self.model.handle(method, path, scope["query_string"], body, content_type)
            return await _write(send, reply)
        if isinstance(fault, LoseAnswer):
            return await self._lose_answer(scope, receive, send)
        # DropConnection (RefuseConnection cannot happen on a connection already accepted,
        # so it drops too): announce an answer, then end the exchange before it is sent.
        assert isinstance(fault, DropConnection) or fault.kind == "refuse"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", _DROP_DECLARED_LENGTH)],
            }
        )
        return None

    async def _lose_answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Reset this request's connection (RST): the client reads ECONNRESET, no answer."""
        transport = self._transport_of(scope)
        if transport is None:  # not served by `running()`: end the exchange as a drop does
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-length", _DROP_DECLARED_LENGTH)],
                }
            )
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: closing sends a reset, as a crashed gateway or a middlebox would,
            # where a plain close would send an orderly end of stream.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
        # Returning before uvicorn has seen the connection lost would make it answer 500 on
        # the closed connection (and log it); its receive() says when it has.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(_disconnected(receive), 5)

    def _transport_of(self, scope: Scope) -> asyncio.Transport | None:
        """The transport of the connection `scope` came on, among the server's connections."""
        client = scope.get("client")
        if self._server is None or client is None:
            return None
        for connection in self._server.server_state.connections:
            if getattr(connection, "client", None) == tuple(client):
                transport: asyncio.Transport | None = getattr(connection, "transport", None)
                return transport
        return None

    def _delay(self) -> float:
        cfg = self.config
        delay = cfg.latency
        if cfg.latency_jitter > 0:
            delay += self._random.random() * cfg.latency_jitter
        if cfg.slow_rate > 0 and self._random.random() < cfg.slow_rate:
            delay += cfg.slow_latency
        return delay

    async def _hang(self, receive: Receive, seconds: float) -> str:
        """Wait `seconds`, or until the client disconnects or the server closes.

        Returns "disconnected", "closing", or "elapsed" (the hang lasted its time: a late
        answer is due).
        """
        assert self._closing is not None
        disconnected = asyncio.ensure_future(receive())
        closing = asyncio.ensure_future(self._closing.wait())
        done, pending = await asyncio.wait(
            {disconnected, closing}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        if disconnected in done:
            return "disconnected"
        return "closing" if closing in done else "elapsed"

    # -- delivery reports -----------------------------------------------------------------

    def _schedule_report(self, message: Message) -> None:
        assert message.callback_url is not None
        if not self.config.allow_remote_callbacks and not _is_loopback(message.callback_url):
            self.reports["skipped"] += 1
            return
        if len(self._reports_pending) >= self.config.max_pending_reports:
            self.reports["dropped"] += 1
            return
        status = self.model.delivery_status(message)
        task = asyncio.ensure_future(self._push_report(message, status))
        self._reports_pending.add(task)
        task.add_done_callback(self._reports_pending.discard)

    async def _push_report(self, message: Message, status: str) -> None:
        assert self._client is not None
        assert message.callback_url is not None
        await asyncio.sleep(self.config.dlr_delay)
        try:
            async with self._push_slots:
                response = await self._client.post(
                    message.callback_url, json=delivery_report(message, status)
                )
        except httpx.HTTPError:
            self.reports["failed"] += 1
            return
        self.reports["sent" if response.is_success else "failed"] += 1

    # -- running --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Emulator]:
        """Serve on `host:port` (0: a free port) for the duration of the `async with` block.

        Raises:
            OSError: the address cannot be bound.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = _listening_socket(family, host, port)
        bound_port = sock.getsockname()[1]
        url_host = f"[{host}]" if family == socket.AF_INET6 else host
        self.base_url = f"http://{url_host}:{bound_port}"
        config = uvicorn.Config(
            self,
            http=_http_implementation(),
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            server_header=False,
            # Hung requests are released at shutdown; this bounds anything else.
            timeout_graceful_shutdown=5,
            timeout_keep_alive=int(self.config.keep_alive),
            backlog=_BACKLOG,
        )
        config.load()
        logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
        server = uvicorn.Server(config)
        # What `Server.serve()` would set up; it is not used here because it also takes over
        # the process's signal handlers, which a test suite must keep.
        server.lifespan = config.lifespan_class(config)
        self._server = server
        self._closing = asyncio.Event()
        # Pushes wait for one of a few slots here, not in httpx's pool: a pool with a long
        # queue of requests walks it on every response (see the backends docs).
        self._push_slots = asyncio.Semaphore(_PUSHES_IN_FLIGHT)
        # Reports go to whatever callback URL each message named: httpx's own pool, any origin.
        limits = httpx.Limits(max_connections=_PUSHES_IN_FLIGHT)
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(limits=limits), timeout=5.0
        )
        main_loop: asyncio.Task[None] | None = None
        try:
            await server.startup(sockets=[sock])
            main_loop = asyncio.ensure_future(server.main_loop())
            yield self
        finally:
            server.should_exit = True
            self._closing.set()
            if main_loop is not None:
                await main_loop
                await server.shutdown(sockets=[sock])
            sock.close()
            for task in list(self._reports_pending):
                task.cancel()
            await asyncio.gather(*self._reports_pending, return_exceptions=True)
            await self._client.aclose()
            self._server = None

    async def wait_stopped(self) -> None:
        """Wait until `stop()` is called (or SIGTERM/SIGINT, under `run`)."""
        await self._stopped.wait()


def _listening_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket listening on `host:port`; its connections send at once.

    Raises:
        OSError: the address cannot be bound.
    """
    # The protocol must say TCP: a socket made with the default protocol (0) hands it on to
    # every connection it accepts, and asyncio turns Nagle's algorithm off (TCP_NODELAY)
    # only on sockets whose protocol is IPPROTO_TCP. With Nagle on, the body of each answer
    # waits for the client's delayed ACK of its headers: ~40 ms a request instead of ~1 ms.
    # (uvloop turns Nagle off on every TCP connection, whatever the protocol field says.)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # The option uvicorn's `Config.bind_socket()` sets: a restarted emulator may bind a
        # port whose last connections are still in TIME_WAIT. (It also makes its socket
        # inheritable, for worker processes; the emulator serves in its own process, and a
        # child that inherited the socket would hold the port after the emulator stopped.)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _write(send: Send, reply: Reply) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": reply.status,
            "headers": [(b"content-length", str(len(reply.body)).encode()), *reply.headers],
        }
    )
    await send({"type": "http.response.body", "body": reply.body})


@contextlib.asynccontextmanager
async def serve(
    config: EmulatorConfig | None = None,
    /,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] | None = None,
    **options: Any,
) -> AsyncIterator[Emulator]:
    """Run the emulator on a free loopback port for the duration of an `async with` block.

        async with serve(rate_503=0.1, seed=1) as emulator:
            sender = AsyncSender(..., base_url=emulator.base_url)

    Args:
        config: an `EmulatorConfig`; or give its fields as keyword `options`.
        host: the address to listen on (loopback).
        port: the port; 0 picks a free one.
        clock: the model's clock, for the lookups' lag (`time.monotonic` by default).

    Raises:
        TypeError: both `config` and `options` were given, or an unknown option.
        ValueError: an option out of range.
        OSError: the address cannot be bound.
    """
    if config is not None and options:
        raise TypeError("serve(): give a config or options, not both")
    emulator = Emulator(config if config is not None else EmulatorConfig(**options), clock=clock)
    async with emulator.running(host, port) as running:
        yield running


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - depends on the install
        return asyncio.new_event_loop
    new_event_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_event_loop


async def _run_foreground(config: EmulatorConfig, host: str, port: int, out: IO[str]) -> None:
    emulator = Emulator(config)
    async with emulator.running(host, port):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, emulator.stop)
        out.write(f"listening on {emulator.base_url}\n")
        out.flush()
        try:
            await emulator.wait_stopped()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def run(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    out: IO[str] | None = None,
) -> None:
    """Run the emulator in the foreground until SIGTERM or SIGINT.

    Prints exactly one line, `listening on http://HOST:PORT` (the real port when 0 was
    asked), to `out` (stdout) once it accepts connections. Uses uvloop when it is installed.

    Raises:
        OSError: the address cannot be bound.
    """
    stream = out if out is not None else sys.stdout
    main = _run_foreground(config or EmulatorConfig(), host, port, stream)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main)
    else:  # pragma: no cover - Python 3.10
        loop = _loop_factory()()
        try:
            loop.run_until_complete(main)
        finally:
            loop.close()
