"""Every client under test, one function each, behind one interface.

A client is an async context manager function `(url, concurrency) -> send`, registered with
`@client(...)`: it sets the client up as a user would, yields a `send()` coroutine function
that posts one SendSMS request and checks the gateway accepted it, and tears the client down.
Adding a client (a new SDK backend, another library) is one more decorated function here.

Two keyword options serve the `wild` part (`benchmarks/suite/wild`): `ssl_context=` for an
https URL (a context trusting the run's own CA), and `sized=True` to size every pool (the
SDK's `max_concurrency`, aiohttp's connector limit) to the concurrency instead of keeping
the library's default.

The libraries are imported inside each function, so a worker process loads only its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final, Literal, Protocol

import attrs

from haorui_async._defaults import DEFAULT_MAX_CONCURRENCY, SEND_SMS_PATH

from . import account

#: A str as ASCII JSON, quotes included.
_escape: Final = json.encoder.encode_basestring_ascii

__all__ = [
    "BOUND_CLIENT",
    "CLIENTS",
    "LOAD_CLIENTS",
    "BadAnswer",
    "ClientSpec",
    "Send",
    "client",
    "floor_session",
]

#: What a client hands the probes: one call, one message (its result is not read).
Send = Callable[[], Awaitable[object]]
Kind = Literal["sdk", "peer", "floor"]


class ClientFunction(Protocol):
    """What `@client` registers: an async generator function yielding `send`."""

    def __call__(
        self,
        url: str,
        concurrency: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sized: bool = False,
    ) -> AsyncIterator[Send]: ...


class ClientFactory(Protocol):
    """A registered client: `factory(url, concurrency, ssl_context=..., sized=...)` is an
    async context manager yielding `send`."""

    def __call__(
        self,
        url: str,
        concurrency: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        sized: bool = False,
    ) -> contextlib.AbstractAsyncContextManager[Send]: ...


class BadAnswer(Exception):
    """The server answered, but not with an accepted SendSMS (`status` other than "S")."""


@attrs.frozen
class ClientSpec:
    """One registered client.

    Attributes:
        name: its key on the command line and in the results (`sdk-httpx`, `aiohttp`, ...).
        label: how the table and the plot name it.
        kind: "sdk" (a ratio row is computed for it), "peer", or "floor".
        factory: the async context manager function `(url, concurrency) -> send`.
    """

    name: str
    label: str
    kind: Kind
    factory: ClientFactory


#: Every client, in the order of the table's columns.
CLIENTS: Final[dict[str, ClientSpec]] = {}


def client(name: str, label: str, kind: Kind = "peer") -> Callable[[ClientFunction], ClientFactory]:
    """Register an async generator function `(url, concurrency, *, ssl_context, sized) -> send`
    as a client."""

    def register(function: ClientFunction) -> ClientFactory:
        factory: ClientFactory = contextlib.asynccontextmanager(function)
        CLIENTS[name] = ClientSpec(name=name, label=label, kind=kind, factory=factory)
        return factory

    return register


def _check(decoded: Any) -> None:
    if not isinstance(decoded, dict) or decoded.get("status") != "S":
        raise BadAnswer(f"not an accepted SendSMS answer: {decoded!r:.200}")


# -- the SDK --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _sdk(
    url: str,
    backend: Literal["httpx", "fast"],
    *,
    ssl_context: ssl.SSLContext | None,
    max_concurrency: int | None,
) -> AsyncIterator[Send]:
    """`AsyncSender.send` on `backend`, every other default kept (its semaphore and its pool
    of `DEFAULT_MAX_CONCURRENCY`, unless `max_concurrency` sizes both)."""
    from haorui_async import AsyncSender

    async with AsyncSender(
        api_id=account.API_ID,
        api_password=account.API_PASSWORD,
        sender_id=account.SENDER_ID,
        base_url=url,
        backend=backend,
        ssl_context=ssl_context,
        max_concurrency=DEFAULT_MAX_CONCURRENCY if max_concurrency is None else max_concurrency,
    ) as sender:
        # `sender.send` itself, as a service awaits it: no coroutine of the suite's around it.
        yield functools.partial(sender.send, account.PHONENUMBER, account.TEXTMESSAGE)


@client("sdk-httpx", "haorui-async AsyncSender.send (httpx backend)", kind="sdk")
async def sdk_httpx(
    url: str, concurrency: int, *, ssl_context: ssl.SSLContext | None = None, sized: bool = False
) -> AsyncIterator[Send]:
    """The SDK as shipped: `AsyncSender` with its defaults (its own semaphore and pool)."""
    max_concurrency = concurrency if sized else None
    async with _sdk(url, "httpx", ssl_context=ssl_context, max_concurrency=max_concurrency) as send:
        yield send


@client("sdk-fast", "haorui-async AsyncSender.send (fast backend)", kind="sdk")
async def sdk_fast(
    url: str, concurrency: int, *, ssl_context: ssl.SSLContext | None = None, sized: bool = False
) -> AsyncIterator[Send]:
    """The SDK on its fast backend (`backend="fast"`: asyncio protocols), other defaults kept."""
    max_concurrency = concurrency if sized else None
    async with _sdk(url, "fast", ssl_context=ssl_context, max_concurrency=max_concurrency) as send:
        yield send


# -- hand-written peers ---------------------------------------------------------------------


@client("httpx-default", "httpx AsyncClient.post (defaults)")
async def httpx_default(
    url: str, concurrency: int, *, ssl_context: ssl.SSLContext | None = None, sized: bool = False
) -> AsyncIterator[Send]:
    """`httpx.AsyncClient().post(json=...)`, every httpx default kept (`sized` too)."""
    import httpx

    endpoint = url + SEND_SMS_PATH
    body = account.payload()
    verify: ssl.SSLContext | bool = True if ssl_context is None else ssl_context
    async with httpx.AsyncClient(verify=verify) as http:

        async def send() -> None:
            response = await http.post(endpoint, json=body)
            response.raise_for_status()
            _check(response.json())

        yield send


@client("httpx-pooled", "httpx AsyncClient.post (pool sized to C)")
async def httpx_pooled(
    url: str, concurrency: int, *, ssl_context: ssl.SSLContext | None = None, sized: bool = False
) -> AsyncIterator[Send]:
    """`httpx.AsyncClient` with `max_connections` and keep-alive sized to the concurrency."""
    import httpx

    endpoint = url + SEND_SMS_PATH
    body = account.payload()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    verify: ssl.SSLContext | bool = True if ssl_context is None else ssl_context
    async with httpx.AsyncClient(limits=limits, verify=verify) as http:

        async def send() -> None:
            response = await http.post(endpoint, json=body)
            response.raise_for_status()
            _check(response.json())

        yield send


@client("aiohttp", "aiohttp ClientSession.post")
async def aiohttp_session(
    url: str, concurrency: int, *, ssl_context: ssl.SSLContext | None = None, sized: bool = False
) -> AsyncIterator[Send]:
    """`aiohttp.ClientSession().post(json=...)`, every aiohttp default kept but, where
    `sized`, the connector's limit (100 by default) sized to the concurrency."""
    import aiohttp

    endpoint = url + SEND_SMS_PATH
    body = account.payload()
    # aiohttp's own defaults (limit=100, ssl=True) where nothing is asked for.
    connector = aiohttp.TCPConnector(
        limit=concurrency if sized else 100, ssl=True if ssl_context is None else ssl_context
    )
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> None:
            async with session.post(endpoint, json=body) as response:
                response.raise_for_status()
                _check(await response.json())

        yield send


# -- the floor ------------------------------------------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Write `request`, read the answer: `(status, body)`; the connection stays open."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head.partition(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = -1
        chunked = False
        for line in header_block.split(b"\r\n"):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            return status, await self._read_chunked()
        if length < 0:
            raise BadAnswer("the answer has neither Content-Length nor chunked encoding")
        return status, await self.reader.readexactly(length)

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


@contextlib.asynccontextmanager
async def floor_session(
    url: str, ssl_context: ssl.SSLContext | None = None, *, contract: bool = False
) -> AsyncIterator[Send]:
    """The minimal client: a LIFO of idle keep-alive connections, one prebuilt request.

    No pool limit, no timeouts, no retries: the least Python can do to post SendSMS, and so
    the floor every other client is compared with. An https `url` is verified with
    `ssl_context` (by default, the system's trusted authorities).

    `contract=True` adds, per message and at its least, what an SDK's contract asks of a
    send beyond the floor's: the number and the text checked, a fresh uid from the OS, the
    request written with them, and the answer's uid checked against it (a lower bound on the
    SDK's own work, for `benchmarks/cost_layers.py`).
    """
    if url.startswith("https://") and ssl_context is None:
        ssl_context = ssl.create_default_context()
    tls = ssl_context if url.startswith("https://") else None
    host_port = url.split("://", 1)[1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    body = account.payload_bytes()
    head = (
        f"POST {SEND_SMS_PATH} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n"
    )
    request = f"{head}Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body
    # The body up to the per-message fields (the account's, the same for every message).
    fixed = json.dumps(account.payload(), separators=(",", ":")).partition(',"phonenumber"')[0]
    idle: list[_Connection] = []
    opened: list[_Connection] = []

    async def send() -> None:
        uid = None
        if contract:
            phone, text = account.PHONENUMBER, account.TEXTMESSAGE
            if not (7 <= len(phone) <= 15 and phone.isascii() and phone.isdigit()):
                raise ValueError("phonenumber")
            if not text.strip():
                raise ValueError("textmessage")
            uid = os.urandom(16).hex()
            body = (
                f'{fixed},"phonenumber":{_escape(phone)},"textmessage":{_escape(text)},'
                f'"uid":"{uid}"}}'
            ).encode("ascii")
            exchanged = f"{head}Content-Length: {len(body)}\r\n\r\n".encode("ascii") + body
        else:
            exchanged = request
        if idle:
            connection = idle.pop()
        else:
            connection = _Connection(*await asyncio.open_connection(host, int(port), ssl=tls))
            opened.append(connection)
        status, answer = await connection.exchange(exchanged)
        # Only a connection whose answer was read whole is reused; a broken one is left
        # to the teardown, which closes every connection ever opened.
        idle.append(connection)
        if status != 200:
            raise BadAnswer(f"HTTP {status}")
        decoded = json.loads(answer)
        _check(decoded)
        if uid is not None and decoded.get("uid") != uid:
            raise BadAnswer(f"the answer is for another message: {decoded!r:.200}")

    try:
        yield send
    finally:
        for connection in opened:
            connection.writer.close()
        # Wait for the sockets to close while the loop still runs (no unclosed-transport
        # warnings); a connection the server already dropped may raise here.
        await asyncio.gather(*(c.writer.wait_closed() for c in opened), return_exceptions=True)


@client("floor", "asyncio streams, minimal keep-alive (the floor)", kind="floor")
async def floor(
    url: str, concurrency: int, *, ssl_context: ssl.SSLContext | None = None, sized: bool = False
) -> AsyncIterator[Send]:
    """The minimal keep-alive HTTP/1.1 client on asyncio streams (no pool limit to size)."""
    async with floor_session(url, ssl_context) as send:
        yield send


#: The floor keeping the SDK's contract at its least: a bound for the SDK, not a peer.
BOUND_CLIENT: Final = "floor-contract"


@client(BOUND_CLIENT, "the floor, and the least of the SDK's contract per message")
async def floor_contract(
    url: str, concurrency: int, *, ssl_context: ssl.SSLContext | None = None, sized: bool = False
) -> AsyncIterator[Send]:
    """The floor doing, per message, the least a send keeping the SDK's contract does
    (`floor_session(contract=True)`): what no SDK keeping that contract can cost less than,
    in the wild part's scenarios as in `benchmarks/cost_layers.py`."""
    async with floor_session(url, ssl_context, contract=True) as send:
        yield send


#: The clients of the load part by default: the bound is for the wild part, where the SDK's
#: CPU per message is set against it.
LOAD_CLIENTS: Final = tuple(name for name in CLIENTS if name != BOUND_CLIENT)
