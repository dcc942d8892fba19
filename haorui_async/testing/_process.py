"""The emulator in a process of its own: `EmulatorProcess`.

    with EmulatorProcess(["--rate-503", "0.1"]) as emulator:        # or `async with`
        sender = AsyncSender(..., base_url=emulator.base_url)

It runs `python -m haorui_async.testing` on a free loopback port, waits until it prints its
`listening on` line, and stops it (SIGTERM, then SIGKILL) on the way out. The child imports
this very copy of the package, also from a checkout that is not installed. Client and server
then share neither an event loop nor the GIL: what a load test, or a test of a command that
runs its own event loop, needs. (`serve()` runs the same emulator inside the caller's loop.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final

import attrs

__all__ = ["EmulatorNotStarted", "EmulatorProcess"]

#: The emulator listens on loopback only: nothing it serves is meant to leave the machine.
LOOPBACK: Final = "127.0.0.1"
#: Start-up imports uvicorn (with uvloop and httptools): well under a second on an idle
#: machine, several seconds on a loaded 2-core one.
DEFAULT_STARTUP_TIMEOUT: Final = 30.0
#: After SIGTERM uvicorn closes its connections and exits at once; past this, SIGKILL.
STOP_TIMEOUT: Final = 10.0
#: What the emulator prints, followed by its base URL, once it accepts connections.
READY_PREFIX: Final = "listening on "
#: Where this package is imported from: the child must import this very copy, also from a
#: checkout that is not installed (then the working directory alone would not find it).
PACKAGE_ROOT: Final = str(Path(__file__).resolve().parents[2])


class EmulatorNotStarted(RuntimeError):
    """The emulator process exited, or printed no `listening on` line in time."""


@attrs.define(eq=False)
class EmulatorProcess:
    """`python -m haorui_async.testing` in a subprocess on a free loopback port.

    A context manager, `with` or `async with` (the async form waits in a thread, so the
    event loop goes on running): entering starts the emulator and waits until it listens,
    leaving stops it. `start()` and `stop()` do the same by hand; `stop()` may be called
    more than once.

    Attributes:
        options: the emulator's command-line options (`["--rate-500", "0.01", "--seed",
            "1"]`); `--host` and `--port` are set here.
        startup_timeout: how long it may take to say it listens, in seconds.

    Raises:
        EmulatorNotStarted: on start, when it exits (a bad option, uvicorn missing: the
            message quotes its error) or stays silent for `startup_timeout` seconds.
    """

    options: Sequence[str] = ()
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    _process: subprocess.Popen[str] | None = attrs.field(default=None, init=False)
    _stderr: IO[str] | None = attrs.field(default=None, init=False)
    _reader: threading.Thread | None = attrs.field(default=None, init=False)
    _ready: threading.Event = attrs.field(factory=threading.Event, init=False)
    _first_line: str = attrs.field(default="", init=False)
    _base_url: str | None = attrs.field(default=None, init=False)

    @property
    def command(self) -> list[str]:
        """The command line of the emulator process."""
        return [
            sys.executable,
            "-m",
            "haorui_async.testing",
            "--host",
            LOOPBACK,
            "--port",
            "0",
            *self.options,
        ]

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, the URL to give `AsyncSender(base_url=...)`.

        Raises:
            RuntimeError: the emulator is not listening (not started yet, or stopped).
        """
        if self._base_url is None:
            raise RuntimeError("the emulator process is not running: start it first")
        return self._base_url

    @property
    def running(self) -> bool:
        """Whether the emulator process was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start the emulator, wait until it listens; its base URL.

        Raises:
            RuntimeError: it was started already.
            EmulatorNotStarted: see the class.
        """
        self._spawn()
        try:
            self._wait_until_listening()
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `STOP_TIMEOUT` seconds."""
        process, self._process, self._base_url = self._process, None, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck emulator
                process.kill()
                process.wait()
        if self._reader is not None:
            # The process is gone, so its stdout is at its end and the reader returns.
            self._reader.join(STOP_TIMEOUT)
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()

    def __enter__(self) -> EmulatorProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> EmulatorProcess:
        self._spawn()
        try:
            await asyncio.to_thread(self._wait_until_listening)
        except BaseException:
            # Also when cancelled: the process is stopped, never left behind.
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _spawn(self) -> None:
        if self._process is not None:
            raise RuntimeError("the emulator process was started already")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
        # Its errors go to a file, read only to say why it did not start: a pipe nobody
        # reads could fill up and block it. The file lives as long as the process: stop()
        # closes it.
        self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._ready = threading.Event()
        self._first_line = ""
        self._process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
        )
        assert self._process.stdout is not None
        self._reader = threading.Thread(
            target=self._read_stdout, args=(self._process.stdout,), daemon=True
        )
        self._reader.start()

    def _read_stdout(self, stdout: IO[str]) -> None:
        """Keep the first line for `start()`, then read on to the end, so the emulator never
        blocks on a full pipe."""
        try:
            self._first_line = stdout.readline()
            self._ready.set()
            for _ in stdout:
                pass
        except (OSError, ValueError):  # pragma: no cover - stdout closed by stop()
            pass
        finally:
            self._ready.set()

    def _wait_until_listening(self) -> None:
        self._ready.wait(self.startup_timeout)
        line = self._first_line.strip()
        if line.startswith(READY_PREFIX):
            self._base_url = line.removeprefix(READY_PREFIX).rstrip("/")
            return
        if not self._ready.is_set():  # pragma: no cover - an emulator stuck at start-up
            why = f"no `listening on` line within {self.startup_timeout:g} s"
        elif line:  # pragma: no cover - a first line of another kind
            why = f"it printed {line!r}"
        else:
            why = f"it exited{self._exit_status()}"
        errors = self._error_output()
        raise EmulatorNotStarted(
            f"the emulator did not start: {why}" + (f": {errors}" if errors else "")
        )

    def _exit_status(self) -> str:
        """` with status N` once the process has exited (its stdout just ended), else ``."""
        process = self._process
        if process is None:  # pragma: no cover - stopped meanwhile
            return ""
        try:
            return f" with status {process.wait(STOP_TIMEOUT)}"
        except subprocess.TimeoutExpired:  # pragma: no cover - closed its stdout, still runs
            return ""

    def _error_output(self) -> str:
        """The last lines the process wrote to stderr, on one line."""
        if self._stderr is None:  # pragma: no cover - read before any start
            return ""
        self._stderr.flush()
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().splitlines() if line.strip()]
        return " | ".join(lines[-3:])[:500]
