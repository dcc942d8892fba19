"""The turns a `RedisRateLimiter` granted, as the Redis server ran them: its MONITOR stream,
which shows each command a script runs, read while the workers send.

What the limiter promises is when turns start: in any window of T seconds, at most
`rate * T + burst` of them. A test that counted only the gateway's arrivals would measure the
machine too: a worker starved of CPU sends its turns late, and late turns arrive together.
These are read off the limiter's own script as it ran (the `TIME` it read, the `tat` it
wrote), so they hold however slow the machine is.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import Final

#: What the MONITOR stream is told last, so that the reader knows it has everything before.
_SENTINEL: Final = "haorui-test-monitor-end"
_LINE: Final = re.compile(r"^\+(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$")
_ARG: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')


class Monitor:
    """Every command the Redis server on `port` runs from `start()` to `stop()`, scripts'
    own included: MONITOR's lines, read on a thread into memory."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = None
        self._data = bytearray()
        self._ended = threading.Event()

    def start(self) -> Monitor:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.sendall(b"MONITOR\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            part = sock.recv(64)
            assert part, "redis-server closed the MONITOR connection"
            reply += part
        assert reply == b"+OK\r\n", reply
        self._sock = sock
        threading.Thread(target=self._read, name="redis-monitor", daemon=True).start()
        return self

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        sentinel = _SENTINEL.encode()
        sock.settimeout(None)
        while True:
            try:
                part = sock.recv(1 << 16)
            except OSError:  # closed by `close()`
                break
            if not part:
                break
            self._data += part
            if sentinel in self._data[-len(part) - len(sentinel) :]:
                break
        self._ended.set()

    def stop(self, timeout: float = 60.0) -> list[str]:
        """Every line seen (MONITOR's own format), up to a command sent now."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(f"ECHO {_SENTINEL}\r\n".encode())
            sock.recv(64)
        ended = self._ended.wait(timeout)
        self.close()
        assert ended, f"the MONITOR stream did not show the end within {timeout}s"
        # What follows the last line break is not a whole line (the end of the last read).
        return self._data.decode("utf-8", "replace").split("\r\n")[:-1]

    def close(self) -> None:
        """Stop reading (also where `stop()` was never reached)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def granted_turns(lines: Sequence[str], key: str) -> list[float]:
    """The start of each turn the limiter at `key` granted, in seconds of the Redis server's
    clock, in the order granted.

    A turn starts at `max(now, tat - tolerance, paused_until)` (the limiter's script): `now`
    is the `TIME` its call read, `tat` what the call before wrote (or `now` where there was
    none, or the key had expired), the tolerance the call's own argument; the call writes the
    next `tat`, `max(tat, start) + interval`. A start past the last `tat` (the first turn,
    one after a quiet spell, one after the key expired: it expires a second after its `tat`)
    is read off what the call wrote, exactly; one within it, from MONITOR's stamp of the
    `TIME` line (at most a scheduler tick late). That each `tat` written is the one the
    script must have written checks that the stream was read right.
    """
    turns: list[float] = []
    tat: float | None = None
    paused = 0.0
    reserving = False
    interval = tolerance = now = 0.0
    for line in lines:
        match = _LINE.match(line)
        if match is None:
            continue
        at, client, rest = match.groups()
        args = _ARG.findall(rest)
        if client != "lua":
            # A call of a script: the limiter's reserve names its key and three numbers.
            reserving = len(args) == 7 and args[0].upper() == "EVALSHA" and args[2:4] == ["1", key]
            if reserving:
                interval, tolerance = float(args[4]), float(args[5])
            continue
        command = args[0].upper() if args else ""
        if command == "TIME":
            now = float(at) * 1_000_000
        elif command == "HSET" and args[1] == key and args[2] == "paused_until":
            paused = float(args[3])
        elif command == "HSET" and args[1] == key and args[2] == "tat" and reserving:
            written = float(args[3])
            if tat is None or written - interval > tat + 1:
                # Past the last slot: at `now` (or the pause's end), which the script wrote
                # as `start + interval`, exactly.
                start = written - interval
                assert tat is None or start >= max(paused, tat - tolerance) - 1, line
            else:
                # Within the last slot: the script wrote `tat + interval`, and the turn
                # started at `max(now, tat - tolerance)`. MONITOR stamps the TIME line just
                # after the script reads TIME: `now` may be late by a scheduler tick, never
                # early, so this start may be too.
                assert abs(written - (tat + interval)) <= 1, (
                    f"the limiter wrote tat={written}, the stream read says "
                    f"{tat + interval}: {line}"
                )
                start = max(now, tat - tolerance, paused)
            turns.append(start / 1_000_000)
            tat = written
    return turns


def monotonic_to_wall() -> float:
    """What to add to a `time.monotonic()` reading (of any process on this machine) to put
    it on the wall clock, which Redis's `TIME` reads."""
    return time.time() - time.monotonic()
