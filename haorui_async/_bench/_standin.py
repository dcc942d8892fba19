"""A minimal SendSMS server: a raw ASGI app on uvicorn (uvloop, httptools).

Started as the emulator is (`python -m haorui_async._bench._standin --host 127.0.0.1 --port 0`
prints `listening on http://HOST:PORT` when ready; SIGTERM stops it), and used when the
package's emulator (`haorui_async.testing`) is not installed. It parses the JSON body and
answers the documented SendSMS JSON; it checks nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

__all__ = ["app", "main"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
ASGISend = Callable[[Message], Awaitable[None]]

_ids = itertools.count(26471304)


async def app(scope: Scope, receive: Receive, send: ASGISend) -> None:
    """Answer every POST /api/SendSMS with `status: "S"`, anything else with 404."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    answer: dict[str, Any]
    if scope["path"] != "/api/SendSMS":
        status, answer = 404, {"status": "F", "remarks": "not found"}
    else:
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            params = None
        if not isinstance(params, dict):
            status, answer = 400, {"status": "F", "remarks": "the body is not a JSON object"}
        else:
            status = 200
            answer = {
                "message_id": next(_ids),
                "status": "S",
                "remarks": "Message Submitted Sucessfully",
                "uid": params.get("uid"),
            }
    raw = json.dumps(answer).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


def _announce(sock: socket.socket) -> None:
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    sys.stdout.write(f"listening on http://{shown}:{bound_port}\n")
    sys.stdout.flush()


async def _serve(host: str, port: int) -> None:
    import uvicorn

    class _AnnouncingServer(uvicorn.Server):
        """Says `listening on ...` once the socket accepts connections."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and sockets:
                _announce(sockets[0])

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        loop="none",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )
    server = _AnnouncingServer(config)
    await server.serve(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> None:
    """Serve on `--host`/`--port` (0: any free port) until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m haorui_async._bench._standin")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the bench group
        asyncio.run(_serve(args.host, args.port))
    else:
        uvloop.run(_serve(args.host, args.port))


if __name__ == "__main__":  # pragma: no cover - the server process's entry
    main()
