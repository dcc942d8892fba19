"""What reading an answer allocates: about the answer's size, not a read buffer per read.

asyncio's selector loop reads for a plain `Protocol` with `recv(256 KiB)`: 256 KiB allocated
per read and shrunk to what came, which glibc often serves with an mmap, an mremap and a
munmap (more CPU than the exchange's own send and recv). The pool's connections read into the
pool's one buffer on asyncio's loops; uvloop reads into a buffer of its own. Either way, a
read allocates what came, which `tracemalloc` sees.

The server runs in a child process, so its own reads are not the client's allocations.
"""

from __future__ import annotations

import tracemalloc
from typing import Final

import pytest

from haorui_async._backends._transport import make_pool

from ._servers import HOST, get, server_process

pytestmark = pytest.mark.integration

#: Exchanges measured.
EXCHANGES: Final = 50
#: The most the exchanges may allocate at once (a read buffer of asyncio's would be 256 KiB).
MAX_PEAK: Final = 64 * 1024

#: The server, in a process of its own: it answers every request on a connection at once.
SERVER: Final = r"""
import asyncio

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

async def main():
    async def serve(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await asyncio.Event().wait()

asyncio.run(main())
"""


@pytest.mark.parametrize("parser", ["plain", "httptools"])
async def test_reading_answers_allocates_no_read_buffer_per_read(parser: str) -> None:
    async with server_process(SERVER) as port:
        pool, _, _ = make_pool(
            f"http://{HOST}:{port}",
            max_connections=1,
            keepalive_expiry=600.0,
            ssl_context=None,
            parser=parser,  # type: ignore[arg-type]  # one of the Parser names
        )
        try:
            assert await get(pool, "/one") == b"ok"  # the connection, imports, first uses
            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                bodies = [await get(pool, "/one") for _ in range(EXCHANGES)]
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        finally:
            await pool.aclose()
    assert bodies == [b"ok"] * EXCHANGES
    assert peak < MAX_PEAK, f"{peak / 1024:.0f} KiB allocated at once by {EXCHANGES} exchanges"
