"""Run one documentation example as a script, allowed to reach loopback addresses only.

    python _run_example.py EXAMPLE.py

Every socket connection to an address that is not loopback fails with `ConnectionRefusedError`
before it is attempted, so an example that would reach the real gateway fails instead.
"""

from __future__ import annotations

import ipaddress
import runpy
import socket
import sys
from typing import Any


def is_loopback(address: Any) -> bool:
    """Whether a socket address (a path, or a (host, port, ...) tuple) is local to the machine."""
    if not isinstance(address, tuple):
        return True  # a Unix socket path
    host = str(address[0]).split("%")[0]
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if not is_loopback(address):
        raise ConnectionRefusedError(f"documentation examples may reach loopback only: {address}")
    _connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if not is_loopback(address):
        raise ConnectionRefusedError(f"documentation examples may reach loopback only: {address}")
    return _connect_ex(self, address)


if __name__ == "__main__":
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign, assignment]  # the guard
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign, assignment]  # the guard
    runpy.run_path(sys.argv[1], run_name="__main__")
