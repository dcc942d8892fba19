"""Real loopback servers for the backend conformance suite.

- `gateway_app`: a raw ASGI SendSMS gateway, served by uvicorn (h11 and httptools) and by
  hypercorn, each in a thread of its own. The path chooses the answer
  (`/<tag>/<behaviour>/api/SendSMS`), and the app records, per tag, the client address of
  every request, so a test can count requests and connections.
- `RawServer`: an `asyncio.start_server` server in the test's loop, for the faults ASGI
  cannot express (close or reset after reading the request, never answer, trickle).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import struct
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Final

import uvicorn

from haorui_async._backends._pool import Pool
from haorui_async._backends._wire import Wire
from haorui_async._defaults import MAX_ANSWER_BODY

HOST = "127.0.0.1"
#: How long a server may take to start or stop before the test fails instead of hanging.
START_TIMEOUT = 10.0
#: Servers close idle keep-alive connections after this many seconds: short, so that the
#: test of a connection closed by the server does not wait long.
SERVER_KEEPALIVE = 1.0
#: The `remarks` of the large answer: near the cap on the answer's body, within it.
LARGE_REMARKS = "x" * (MAX_ANSWER_BODY - 200)
#: The `remarks` of the answer past the cap: about 1 MB.
HUGE_REMARKS = "x" * 1_000_000

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    """The whole body of an ASGI HTTP request, however many messages it comes in."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


class Gateway:
    """The ASGI SendSMS gateway; `seen[tag]` lists the client address of each request."""

    def __init__(self) -> None:
        self.seen: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)

    def requests(self, tag: str) -> int:
        return len(self.seen[tag])

    def connections(self, tag: str) -> int:
        return len(set(self.seen[tag]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert scope["type"] == "http"
        body = await read_body(receive)
        _, tag, behaviour, *_ = scope["path"].split("/")
        client = scope.get("client") or ("?", 0)
        self.seen[tag].append((client[0], client[1]))
        params = json.loads(body) if body else dict(_query(scope["query_string"]))
        answer: dict[str, Any] = {
            "message_id": 26471304,
            "status": "S",
            "remarks": "Message Submitted Sucessfully",
            "uid": params.get("uid"),
        }
        status = 200
        if behaviour == "large":
            answer["remarks"] = LARGE_REMARKS
        elif behaviour == "huge":
            answer["remarks"] = HUGE_REMARKS
        elif behaviour.startswith("status"):
            status = int(behaviour.removeprefix("status"))
        payload = json.dumps(answer).encode()
        start: dict[str, Any] = {"type": "http.response.start", "status": status}
        if behaviour in ("chunked", "huge-chunked"):
            if behaviour == "huge-chunked":
                answer["remarks"] = HUGE_REMARKS
                payload = json.dumps(answer).encode()
            # No Content-Length and several body messages: the server frames it chunked.
            start["headers"] = [(b"content-type", b"application/json")]
            await send(start)
            third = len(payload) // 3
            for piece in (payload[:third], payload[third : 2 * third]):
                await send({"type": "http.response.body", "body": piece, "more_body": True})
            await send({"type": "http.response.body", "body": payload[2 * third :]})
            return
        start["headers"] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        await send(start)
        await send({"type": "http.response.body", "body": payload})


def _query(query: bytes) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query.decode())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(ready: Callable[[], bool], thread: threading.Thread, name: str) -> None:
    for _ in range(int(START_TIMEOUT / 0.01)):
        if ready() or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    if not ready():
        raise RuntimeError(f"{name} did not start")


@contextlib.contextmanager
def uvicorn_in_thread(app: Any, http: str, **options: Any) -> Iterator[str]:
    """Serve `app` with uvicorn (`http="h11"` or `"httptools"`) in a thread; yields the URL."""
    config = uvicorn.Config(
        app,
        host=HOST,
        port=0,
        http=http,
        loop="asyncio",
        ws="none",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=int(SERVER_KEEPALIVE),
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{http}", daemon=True)
    thread.start()
    try:
        _wait_for(lambda: server.started, thread, "uvicorn")
        port = server.servers[0].sockets[0].getsockname()[1]
        scheme = "https" if "ssl_certfile" in options else "http"
        yield f"{scheme}://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)


@contextlib.contextmanager
def hypercorn_in_thread(app: Any) -> Iterator[str]:
    """Serve `app` with hypercorn (HTTP/1.1 over h11) in a thread; yields the URL."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    port = free_port()
    config = Config()
    config.bind = [f"{HOST}:{port}"]
    config.keep_alive_timeout = SERVER_KEEPALIVE
    config.loglevel = "WARNING"
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()

    async def main() -> None:
        async def shutdown_trigger() -> None:
            started.set()
            await stop.wait()

        await serve(app, config, shutdown_trigger=shutdown_trigger, mode="asgi")

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        _wait_for(started.is_set, thread, "hypercorn")
        yield f"http://{HOST}:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_TIMEOUT)
        loop.close()


# -- the raw server, for faults -----------------------------------------------------------

Fault = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "RawServer"], Awaitable[None]]


class RawServer:
    """A loopback TCP server in the test's loop that reads HTTP requests and acts out a fault.

    Attributes:
        connections: connections accepted.
        requests: request heads (and bodies) read in full.
    """

    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.connections = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{HOST}:{port}"

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """Read one request, head and Content-Length body, and count it; return the body."""
        _, body = await self.read_head_and_body(reader)
        return body

    async def read_head_and_body(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        """Read one request and count it; return its head and its Content-Length body."""
        request = await read_head_and_body(reader)
        self.requests += 1
        return request

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self.fault(reader, writer, self)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except asyncio.CancelledError:
            # Only `serving()` cancels a handler, at the end of the test; a cancelled
            # handler task would make asyncio's stream callback log an error.
            pass
        finally:
            writer.close()
            self._tasks.discard(task)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[RawServer]:
        self._server = await asyncio.start_server(self._handle, HOST, 0)
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._server.wait_closed()


async def read_head_and_body(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """Read one request from `reader`: its head, and the body its Content-Length frames."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head, await reader.readexactly(length)


def answer_bytes(uid: str | None, *, close: bool = False) -> bytes:
    """A complete SendSMS success answer with Content-Length."""
    body = json.dumps(
        {"message_id": 1, "status": "S", "remarks": "ok", "uid": uid}, separators=(",", ":")
    ).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    if close:
        head += b"Connection: close\r\n"
    return head + b"Content-Length: %d\r\n\r\n" % len(body) + body


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


#: Loop iterations a test lets pass for a socket event to be handled (no wall time).
ROUNDS: Final = 1000


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run, a bounded number of iterations, until `condition` holds."""
    for _ in range(ROUNDS):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"not within {ROUNDS} loop iterations: {what}")


#: The timeouts of an exchange driven on a pool directly, and a bound on waiting for a
#: server: far above what loopback needs, so that a broken test fails instead of hanging.
POOL_TIMEOUTS: Final[dict[str, float | None]] = {"connect": 60.0, "read": 60.0, "write": 60.0}
BOUND: Final = 60.0


async def get(pool: Pool, path: str) -> bytes:
    """GET `path` on `pool` directly (within `BOUND`); the answer's body, its connection
    handed back."""
    request = Wire(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode("ascii"))
    answer = await asyncio.wait_for(pool.exchange(request, b"GET", POOL_TIMEOUTS, None), BOUND)
    answer.finish(keep=True)
    return answer.body


@contextlib.asynccontextmanager
async def server_process(script: str, *args: str, bound: float = BOUND) -> AsyncIterator[int]:
    """`script` (Python source that serves on 127.0.0.1 and prints its port) in a child
    process, so that its memory is not the test's; the port. Killed on the way out."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), bound)
        assert line, "the server did not start"
        yield int(line)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
