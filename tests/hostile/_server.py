"""A scripted HTTP/1.1 gateway for the hostile tests: asyncio streams, in a thread of its own.

A test gives `ScriptedServer` a *behaviour*, a coroutine `behaviour(conn, request)` that the
server runs in its own event loop once per request it has read, to act the answer out on
`conn` (a `Connection`): answer, trickle bytes, pour a huge body, close, reset... The requests
of one connection are acted out one after the other; meanwhile the connection's reader keeps
reading, so the server sees the client close or reset the connection at once, even in the
middle of an answer.

The server records, under one lock, every request it read (`RequestRecord`) and the life of
every connection (`ConnectionRecord`), and tells the test what happened through `Signal`s:
events set in the server's thread and awaited in the test's loop, with a generous timeout,
instead of sleeping. `await server.until(predicate, what)` waits for any condition over the
records.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "HOST",
    "WAIT",
    "Behaviour",
    "Connection",
    "ConnectionRecord",
    "RequestRecord",
    "ScriptedServer",
    "Serve",
    "Signal",
    "answer_bytes",
    "answer_json",
    "response_head",
]

HOST: Final = "127.0.0.1"
#: The longest a test waits for something to happen: generous for a busy 2-core machine, and
#: well under pytest's 60 s per test, so a failure says what did not happen.
WAIT: Final = 20.0
#: How long the server may take to start or to stop.
START_TIMEOUT: Final = 10.0
#: The server's send buffers, the kernel's and asyncio's: small, so that what the server has
#: written is close to what reached the client (its own receive buffer aside).
SEND_BUFFER: Final = 64 * 1024
#: A request head longer than this is not the SDK's (its heads are a few hundred bytes).
MAX_REQUEST_HEAD: Final = 64 * 1024
#: The `message_id` of the documented answers, counted up per answer by `Connection.answer`.
MESSAGE_ID: Final = 26471304

Behaviour = Callable[["Connection", "RequestRecord"], Awaitable[None]]
#: The `serve` fixture: `serve(behaviour, tls=False)` starts a server, stopped after the test.
Serve = Callable[..., "ScriptedServer"]


# -- signals --------------------------------------------------------------------------------


class Signal:
    """A one-shot event, set from any thread, awaited from any event loop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._event = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def __repr__(self) -> str:
        return f"<Signal {self.name!r} {'set' if self.is_set() else 'not set'}>"

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            # A closed loop has nobody left waiting.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, timeout: float = WAIT) -> None:
        """Return once the signal is set; raise AssertionError naming it after `timeout` s."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._event.is_set():
                return
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"{self.name}: did not happen within {timeout} s") from None
        finally:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove(entry)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# -- records --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    """One request the server read in full (head and Content-Length body)."""

    connection: int
    """The id of the connection it came on (its index in `ScriptedServer.connections`)."""
    index: int
    """Its place among that connection's requests, from 0."""
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    uid: str | None
    """The SendSMS `uid` it carried (JSON body or query string), if any."""
    at: float
    """`time.monotonic()` when it was read."""

    def header(self, name: str) -> str | None:
        """The value of the first header called `name` (any case), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass(eq=False)
class ConnectionRecord:
    """The life of one connection, as the server saw it."""

    id: int
    opened_at: float
    requests: list[RequestRecord] = field(default_factory=list)
    bytes_written: int = 0
    """Bytes the server handed to the kernel (what asyncio still held is not counted)."""
    ended_by: str | None = None
    """Who ended it: "client" (EOF), "client-reset", "server", "server-reset", "shutdown",
    "tls-failed"; None while it is open."""
    peer_closed: Signal = field(init=False)
    """Set when the client closed or reset the connection (not when the server did)."""
    closed: Signal = field(init=False)
    """Set once the server's socket is closed, whoever ended the connection."""

    def __post_init__(self) -> None:
        self.peer_closed = Signal(f"the client closing connection {self.id}")
        self.closed = Signal(f"connection {self.id} closing")


# -- wire helpers (pure) --------------------------------------------------------------------


def answer_json(uid: str | None, message_id: int = MESSAGE_ID, **extra: object) -> bytes:
    """The documented success answer's JSON, echoing `uid`."""
    answer = {
        "message_id": message_id,
        "status": "S",
        "remarks": "Message Submitted Sucessfully",
        "uid": uid,
        **extra,
    }
    return json.dumps(answer, separators=(",", ":")).encode()


def response_head(
    *,
    content_length: int | None,
    headers: Sequence[tuple[str, str]] = (),
    status: str = "200 OK",
    close: bool = False,
) -> bytes:
    """A response head: status line, Content-Type, Content-Length (unless None), `headers`."""
    lines = [f"HTTP/1.1 {status}", "Content-Type: application/json"]
    if content_length is not None:
        lines.append(f"Content-Length: {content_length}")
    if close:
        lines.append("Connection: close")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer_bytes(
    uid: str | None,
    *,
    message_id: int = MESSAGE_ID,
    body: bytes | None = None,
    headers: Sequence[tuple[str, str]] = (),
    close: bool = False,
) -> bytes:
    """A whole answer with Content-Length: the documented JSON for `uid`, or `body`."""
    if body is None:
        body = answer_json(uid, message_id)
    return response_head(content_length=len(body), headers=headers, close=close) + body


def _parse_request(head: bytes, body: bytes, connection: int, index: int) -> RequestRecord:
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = tuple(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in header_lines if line)
    )
    params: dict[str, object] = dict(parse_qsl(urlsplit(target).query))
    with contextlib.suppress(ValueError):
        decoded = json.loads(body) if body else None
        if isinstance(decoded, dict):
            params.update(decoded)
    uid = params.get("uid")
    return RequestRecord(
        connection=connection,
        index=index,
        method=method,
        target=target,
        headers=headers,
        body=body,
        uid=uid if isinstance(uid, str) else None,
        at=time.monotonic(),
    )


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


# -- one connection -------------------------------------------------------------------------


class Connection:
    """The server's end of one connection: what a behaviour acts on.

    Every method that writes returns False (and writes nothing more) once the connection has
    ended, whoever ended it, so a behaviour needs no error handling of its own.
    """

    def __init__(
        self,
        server: ScriptedServer,
        record: ConnectionRecord,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.record = record
        self._reader = reader
        self._writer = writer
        self._written = 0
        self._ended = asyncio.Event()
        self._requests: asyncio.Queue[RequestRecord | None] = asyncio.Queue()

    @property
    def ended(self) -> bool:
        return self.record.ended_by is not None

    async def send(self, data: bytes) -> bool:
        """Write `data` and wait until the socket took it; False once the connection ended."""
        if self.ended:
            return False
        self._writer.write(data)
        self._written += len(data)
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            return False  # the reader sees the same loss and records it
        self._count_written()
        return not self.ended

    async def answer(
        self,
        uid: str | None,
        *,
        headers: Sequence[tuple[str, str]] = (),
        close: bool = False,
    ) -> bool:
        """Send the documented success answer for `uid` (a fresh `message_id` each time)."""
        message_id = self.server.next_message_id()
        return await self.send(
            answer_bytes(uid, message_id=message_id, headers=headers, close=close)
        )

    async def trickle(self, data: bytes, every: float = 0.02) -> int:
        """Send `data` one byte at a time, `every` seconds apart; returns the bytes sent."""
        sent = 0
        for offset in range(len(data)):
            if not await self.send(data[offset : offset + 1]):
                break
            sent += 1
            await self.pause(every)
        return sent

    async def pour(self, pieces: Iterable[bytes]) -> bool:
        """Send `pieces` one after the other as fast as the client takes them."""
        for piece in pieces:
            if not await self.send(piece):
                return False
        return True

    async def pause(self, seconds: float) -> None:
        """Wait `seconds`, or less if the connection ends meanwhile."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ended.wait(), seconds)

    async def wait_ended(self) -> None:
        """Wait until the connection ends (the client closes it, or the server stops)."""
        await self._ended.wait()

    async def close(self) -> None:
        """Close gracefully: what was written is flushed, then a FIN."""
        await self._end("server")

    async def reset(self) -> None:
        """Close with a TCP reset: SO_LINGER (1, 0), then close; unsent bytes are dropped."""
        if not self.ended:
            sock = self._writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self._end("server-reset", abort=True)

    # -- the server's side --------------------------------------------------------------------

    def _count_written(self) -> None:
        unsent = self._writer.transport.get_write_buffer_size()
        with self.server.lock:
            self.record.bytes_written = self._written - unsent
            self.server.changed()

    async def _end(self, how: str, *, abort: bool = False, by_peer: bool = False) -> None:
        """End the connection (once): record who ended it, close the socket, signal it."""
        if not self.ended:
            # A graceful close still sends what asyncio holds; an abort drops it.
            unsent = self._writer.transport.get_write_buffer_size() if abort else 0
            with self.server.lock:
                self.record.bytes_written = self._written - unsent
                self.record.ended_by = how
                self.server.changed()
            if by_peer:
                self.record.peer_closed.set()
            self._ended.set()
            if abort:
                self._writer.transport.abort()
            else:
                self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self.record.closed.set()
        with self.server.lock:
            self.server.changed()

    async def _read_requests(self) -> None:
        """Read requests until the client stops; queue each for the behaviour."""
        how = "client"
        try:
            for index in itertools.count():
                head = await self._reader.readuntil(b"\r\n\r\n")
                body = await self._reader.readexactly(_content_length(head))
                request = _parse_request(head, body, self.record.id, index)
                self.server.record_request(self.record, request)
                self._requests.put_nowait(request)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            how = "client"  # EOF, or bytes that are no request: the client is done
        except (ConnectionError, OSError):
            how = "client-reset"
        self._requests.put_nowait(None)
        await self._end(how, abort=True, by_peer=True)

    async def _act(self) -> None:
        """Act out the behaviour for each request, in turn, until the connection ends."""
        while not self.ended:
            request = await self._requests.get()
            if request is None or self.ended:
                return
            self.server.begin(request)
            try:
                await self.server.behaviour(self, request)
            except (ConnectionError, OSError):
                pass  # the client went away mid-answer: the reader records it
            except Exception:
                self.server.errors.append(traceback.format_exc())
                await self._end("server", abort=True)
            finally:
                self.server.finish(request)


# -- the server -----------------------------------------------------------------------------


class ScriptedServer:
    """An HTTP/1.1 server on 127.0.0.1 whose every answer a behaviour scripts.

    Use `start()` and `stop()` (or `with`). All the records may be read from any thread.

    Attributes:
        url: the base URL to give the SDK (http or https).
        errors: tracebacks of behaviours that raised (a bug in the test): fixtures assert
            there are none.
        loop_errors: what the server's event loop reported (e.g. failed TLS handshakes).
    """

    def __init__(self, behaviour: Behaviour, *, tls: ssl.SSLContext | None = None) -> None:
        self.behaviour = behaviour
        self.tls = tls
        self.lock = threading.RLock()
        self.errors: list[str] = []
        self.loop_errors: list[str] = []
        self._connections: list[ConnectionRecord] = []
        self._requests: list[RequestRecord] = []
        self._in_flight = 0
        self._watchers: list[tuple[Callable[[], bool], Signal]] = []
        self._message_ids = itertools.count(MESSAGE_ID)
        self._loop = asyncio.SelectorEventLoop()
        self._loop.set_exception_handler(self._on_loop_error)
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="scripted-gateway", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> ScriptedServer:
        self._thread.start()
        # Python 3.10's StreamWriter has no start_tls: there the listening socket does the
        # handshake, before `_accept` (a failed one is then not recorded as a connection, only
        # in `loop_errors`).
        listening_tls = self.tls if sys.version_info < (3, 11) else None
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._accept, HOST, 0, limit=MAX_REQUEST_HEAD, ssl=listening_tls),
            self._loop,
        )
        self._server = started.result(START_TIMEOUT)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"{'https' if self.tls else 'http'}://{HOST}:{port}"
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and its thread."""
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(START_TIMEOUT)
            self._server = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT)
        if not self._loop.is_closed() and not self._thread.is_alive():
            self._loop.close()

    # -- what the test reads ------------------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionRecord]:
        with self.lock:
            return list(self._connections)

    @property
    def requests(self) -> list[RequestRecord]:
        with self.lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        """Requests read whose behaviour has not finished."""
        with self.lock:
            return self._in_flight

    async def until(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        """Wait until `predicate()` holds (checked at every change of the records)."""
        signal = Signal(what)
        watcher = (predicate, signal)
        with self.lock:
            if predicate():
                return
            self._watchers.append(watcher)
        try:
            await signal.wait(timeout)
        finally:
            with self.lock, contextlib.suppress(ValueError):
                self._watchers.remove(watcher)

    async def connection(self, index: int) -> ConnectionRecord:
        """The `index`-th connection accepted, once there is one."""
        await self.until(lambda: len(self._connections) > index, f"connection {index} opening")
        return self.connections[index]

    async def all_closed(self) -> None:
        """Wait until every connection accepted so far is closed."""
        await self.until(
            lambda: all(c.closed.is_set() for c in self._connections),
            "every connection closing",
        )

    # -- bookkeeping, from the server's thread ------------------------------------------------

    def changed(self) -> None:
        """Wake the watchers whose condition now holds (call with the lock held)."""
        for predicate, signal in self._watchers:
            if predicate():
                signal.set()

    def next_message_id(self) -> int:
        return next(self._message_ids)

    def record_request(self, connection: ConnectionRecord, request: RequestRecord) -> None:
        with self.lock:
            connection.requests.append(request)
            self._requests.append(request)
            self.changed()

    def begin(self, request: RequestRecord) -> None:
        with self.lock:
            self._in_flight += 1
            self.changed()

    def finish(self, request: RequestRecord) -> None:
        with self.lock:
            self._in_flight -= 1
            self.changed()

    def _on_loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        self.loop_errors.append(str(context.get("message")))

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        writer.transport.set_write_buffer_limits(high=SEND_BUFFER)
        with self.lock:
            record = ConnectionRecord(id=len(self._connections), opened_at=time.monotonic())
            self._connections.append(record)
            self.changed()
        conn = Connection(self, record, reader, writer)
        reading: asyncio.Task[None] | None = None
        try:
            if self.tls is not None and not await self._handshake(writer):
                await conn._end("tls-failed", abort=True)
                return
            reading = asyncio.create_task(conn._read_requests())
            await conn._act()
            await conn._end("server")
        except asyncio.CancelledError:
            # Only `stop()` cancels a connection: its socket is closed all the same.
            await conn._end("shutdown", abort=True)
        finally:
            if reading is not None:
                reading.cancel()
                await asyncio.gather(reading, return_exceptions=True)
            self._tasks.discard(task)

    async def _handshake(self, writer: asyncio.StreamWriter) -> bool:
        assert self.tls is not None
        if sys.version_info < (3, 11):
            return True  # the listening socket did the handshake (see `start`)
        try:
            await writer.start_tls(self.tls)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError):
            return False  # the client gave up mid-handshake
        return True

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        # Let the transports' close callbacks run, so that no socket outlives the loop.
        for _ in range(5):
            await asyncio.sleep(0)
