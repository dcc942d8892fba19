"""The loopback emulator as a raw ASGI app around one `GatewayModel`.

No framework: per request the app reads the body, asks the model for the answer (or serves
the fault its `FaultPlan` scripts) and writes it, nothing else (no per-request log), so the
emulator is not what limits a benchmark. `Emulator.running()` serves it on a loopback socket;
the delivery reports are pushed by `_reports`, the socket and uvicorn are set up by `_listener`,
and `serve()` / `run()` are in `_server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any, Final

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
from ._listener import listening_socket, uvicorn_server
from ._lookups import Message
from ._model import GatewayModel
from ._reports import ReportPusher
from ._wire import STATS_PATH, Reply, is_lookup_path

__all__ = ["Emulator"]

Scope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[ASGIMessage]]
Send = Callable[[ASGIMessage], Awaitable[None]]

#: The declared length of a dropped answer: more than is ever sent, so the client sees the
#: connection end before the answer does.
_DROP_DECLARED_LENGTH: Final = b"64"
#: The answer to a request still hanging when the server stops.
_SHUTTING_DOWN: Final = Reply(503, b'{"detail":"the emulator is shutting down"}')


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
            URL, not allowed), "dropped" (too many pending). A push that got no answer or
            a 5xx is made again (`stats()["report_retries"]` counts those) before it fails.
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
        self._pusher = ReportPusher(cfg, self.model)
        self.reports = self._pusher.reports
        self._random = random.Random(cfg.seed)
        self._has_latency = cfg.latency > 0 or cfg.latency_jitter > 0 or cfg.slow_rate > 0
        self._closing: asyncio.Event | None = None
        self._stopped = asyncio.Event()
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
            "report_retries": self._pusher.retries,
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
                self._pusher.schedule(reply.accepted)
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

    # -- running --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[Emulator]:
        """Serve on `host:port` (0: a free port) for the duration of the `async with` block.

        Raises:
            OSError: the address cannot be bound.
        """
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = listening_socket(family, host, port)
        bound_port = sock.getsockname()[1]
        url_host = f"[{host}]" if family == socket.AF_INET6 else host
        self.base_url = f"http://{url_host}:{bound_port}"
        server = uvicorn_server(self, self.config.keep_alive)
        self._server = server
        self._closing = asyncio.Event()
        self._pusher.open()
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
            await self._pusher.aclose()
            self._server = None

    async def wait_stopped(self) -> None:
        """Wait until `stop()` is called (or SIGTERM/SIGINT, under `run`)."""
        await self._stopped.wait()


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
