"""The socket and the uvicorn server under the emulator, set up for a test suite.

`listening_socket()` is a TCP socket whose connections send at once (no Nagle delay);
`uvicorn_server()` is a uvicorn server that is started and stopped by its caller, so it
leaves the process's signal handlers alone, and that does not log the emulator's deliberate
dropped answers.
"""

from __future__ import annotations

import logging
import socket
from typing import Any, Final

import uvicorn

__all__ = ["listening_socket", "uvicorn_server"]

#: Connections the kernel queues before they are accepted: uvicorn's default, so a benchmark
#: opening hundreds of connections at once is not refused.
_BACKLOG: Final = 2048
#: What uvicorn logs when an app ends a response half-way: here that is the deliberate
#: "drop the connection after reading the request" fault, not a bug worth a log line.
_DROP_LOG_MESSAGE: Final = "ASGI callable returned without completing response."


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


def listening_socket(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
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


def uvicorn_server(app: Any, keep_alive: float) -> uvicorn.Server:
    """A uvicorn server for `app`, to drive with `startup()`, `main_loop()`, `shutdown()`."""
    config = uvicorn.Config(
        app,
        http=_http_implementation(),
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        server_header=False,
        # Hung requests are released at shutdown; this bounds anything else.
        timeout_graceful_shutdown=5,
        timeout_keep_alive=int(keep_alive),
        backlog=_BACKLOG,
    )
    config.load()
    logging.getLogger("uvicorn.error").addFilter(_DROP_FILTER)
    server = uvicorn.Server(config)
    # What `Server.serve()` would set up; it is not used here because it also takes over
    # the process's signal handlers, which a test suite must keep.
    server.lifespan = config.lifespan_class(config)
    return server
