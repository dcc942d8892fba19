"""TLS inside the pool's own connections (`_tls_wire.TLSWire`), not asyncio's `ssl=` layer.

asyncio's TLS layer keeps a zero-filled 256 KiB buffer per connection; the pool's connections
run TLS over memory BIOs on a plain TCP transport instead. These tests check that the memory
of a TLS connection stays far below that buffer (hundreds of connections held open at once
against a server in another process, so only the client's memory is counted), that asyncio's
layer is not in the path on either loop, and the TLS-specific ends of a connection: the
server's close_notify on an idle connection, and the client's own close_notify.

Nothing is timed: the server holds its answers until every connection's request has come,
and the waits are for events, each with a bound far above what loopback needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import ssl
from pathlib import Path
from typing import Final

import pytest
import trustme

from haorui_async._backends._tls_wire import TLSWire
from haorui_async._backends._transport import make_pool

from ._servers import BOUND, HOST, get, read_head_and_body, server_process, until

pytestmark = pytest.mark.integration

#: TLS connections held open at once.
CONNECTIONS: Final = 256
#: The most a TLS connection may add to the client's RSS. asyncio's TLS layer alone is 256 KiB
#: per connection (measured ~310 KiB in all); the pool's own TLS, ~40-50 KiB (OpenSSL's state
#: and buffers, the connection, the exchange).
MAX_BYTES_PER_CONNECTION: Final = 128 * 1024

#: The server, in a process of its own: its TLS memory is not the client's. It answers a
#: request for /hold only once `count` of them are pending, every other request at once.
SERVER: Final = r"""
import asyncio, ssl, sys

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

async def main(chain, count):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain)
    held = []

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"GET /hold "):
                    held.append(writer)
                    if len(held) == count:
                        for waiting in held:
                            waiting.write(ANSWER)
                        held.clear()
                else:
                    writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def chain(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "server.pem"
    ca.issue_cert(HOST).private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc/self/statm")
async def test_a_tls_connection_costs_far_less_than_asyncios_buffer(
    chain: str, trusting_context: ssl.SSLContext
) -> None:
    async with server_process(SERVER, chain, str(CONNECTIONS)) as port:
        pool, _, _ = make_pool(
            f"https://{HOST}:{port}",
            max_connections=CONNECTIONS,
            keepalive_expiry=600.0,
            ssl_context=trusting_context,
            parser="plain",
        )
        try:
            assert await get(pool, "/warm") == b"ok"  # imports, the context's first use
            gc.collect()
            before = resident_bytes()
            bodies = await asyncio.gather(*(get(pool, "/hold") for _ in range(CONNECTIONS)))
            # Every connection is open (idle in the pool) and holds whatever it holds.
            gc.collect()
            grown = resident_bytes() - before
            open_now = pool.connections
            transports = [conn._transport for conn in pool._idle]
        finally:
            await pool.aclose()
    assert bodies == [b"ok"] * CONNECTIONS
    assert open_now == CONNECTIONS  # each request held its own connection
    per_connection = grown / CONNECTIONS
    assert per_connection < MAX_BYTES_PER_CONNECTION, (
        f"{per_connection / 1024:.0f} KiB of RSS per TLS connection"
    )
    # asyncio's TLS transports say "ssl_object"; the pool's plain TCP ones do not.
    assert all(transport.get_extra_info("ssl_object") is None for transport in transports)


async def test_the_servers_close_notify_retires_an_idle_connection(
    ca: trustme.CA, trusting_context: ssl.SSLContext
) -> None:
    closed = asyncio.Event()
    connections = 0

    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            await read_head_and_body(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            writer.close()  # close_notify, then FIN
            await writer.wait_closed()
        closed.set()

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    server = await asyncio.start_server(answer_then_close, HOST, 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    pool, _, _ = make_pool(
        f"https://{HOST}:{port}",
        max_connections=1,
        keepalive_expiry=600.0,
        ssl_context=trusting_context,
        parser="plain",
    )
    try:
        assert await get(pool, "/one") == b"ok"
        await asyncio.wait_for(closed.wait(), BOUND)
        await until(lambda: pool.connections == 0, "the close_notify seen: connection retired")
        # The next request goes on a new connection, and is answered.
        assert await get(pool, "/two") == b"ok"
    finally:
        await pool.aclose()
        server.close()
        await server.wait_closed()
    assert connections == 2


def test_the_clients_close_notify_is_a_clean_close_for_the_server(
    ca: trustme.CA, trusting_context: ssl.SSLContext
) -> None:
    """Sans I/O: a `TLSWire` and a server `SSLObject` pass bytes by hand."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = context.wrap_bio(incoming, outgoing, server_side=True)
    client = TLSWire(trusting_context, HOST)

    to_server = client.start()
    while not client.handshaken:
        incoming.write(to_server)
        with contextlib.suppress(ssl.SSLWantReadError):
            server.do_handshake()
        assert client.receive(outgoing.read()) == b""
        to_server = client.outgoing()
    incoming.write(to_server + client.encrypt(b"request"))
    assert server.read(100) == b"request"
    server.write(b"answer")
    assert client.receive(outgoing.read()) == b"answer"

    incoming.write(client.close_notify())
    assert server.read(100) == b""  # close_notify: a clean end, not a truncation
    server.unwrap()
    assert client.receive(outgoing.read()) == b""
    assert client.peer_closed


def test_a_certificate_the_context_does_not_trust_names_the_failure(ca: trustme.CA) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(HOST).configure_cert(context)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = context.wrap_bio(incoming, outgoing, server_side=True)
    client = TLSWire(ssl.create_default_context(), HOST)  # trusts the system's CAs only

    incoming.write(client.start())
    with contextlib.suppress(ssl.SSLWantReadError):
        server.do_handshake()
    with pytest.raises(ssl.SSLCertVerificationError, match="CERTIFICATE_VERIFY_FAILED"):
        client.receive(outgoing.read())
    assert not client.handshaken
