"""A real uvicorn server on a loopback port, in the test's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

#: Loopback only: tests never listen on or connect to any other address.
HOST = "127.0.0.1"
#: How long a server may take to start before the test fails instead of hanging.
START_TIMEOUT = 10.0


def _server(app: Any, **options: Any) -> uvicorn.Server:
    options = {"http": "h11", **options}
    config = uvicorn.Config(
        app, host=HOST, port=0, log_level="warning", access_log=False, ws="none", **options
    )
    return uvicorn.Server(config)


def _url(server: uvicorn.Server) -> str:
    port = server.servers[0].sockets[0].getsockname()[1]
    return f"http://{HOST}:{port}"


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn in the running event loop; yields the base URL.

    On exit the server shuts down, which sends the ASGI lifespan shutdown to `app`.
    """
    server = _server(app, **options)
    task = asyncio.get_running_loop().create_task(server.serve())
    for _ in range(int(START_TIMEOUT / 0.01)):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        server.should_exit = True
        await task
        raise RuntimeError("uvicorn did not start")
    try:
        yield _url(server)
    finally:
        server.should_exit = True
        await task
