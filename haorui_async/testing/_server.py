"""Running the loopback emulator: in a test's `async with`, or in the foreground.

- `serve(**options)`: an async context manager that runs the emulator on a free loopback port.
- `run(config, host, port)`: the emulator in the foreground until SIGTERM or SIGINT; what
  `python -m haorui_async.testing` and `haorui-async emulator` run.

The emulator itself (the ASGI app, `Emulator`) is in `_app`; it is importable from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import IO, Any

from ._app import Emulator
from ._config import EmulatorConfig

# The name the socket helper had when it lived here (the test suite's conftest imports it).

__all__ = ["Emulator", "run", "serve"]


@contextlib.asynccontextmanager
async def serve(
    config: EmulatorConfig | None = None,
    /,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] | None = None,
    **options: Any,
) -> AsyncIterator[Emulator]:
    """Run the emulator on a free loopback port for the duration of an `async with` block.

        async with serve(rate_503=0.1, seed=1) as emulator:
            sender = AsyncSender(..., base_url=emulator.base_url)

    Args:
        config: an `EmulatorConfig`; or give its fields as keyword `options`.
        host: the address to listen on (loopback).
        port: the port; 0 picks a free one.
        clock: the model's clock, for the lookups' lag (`time.monotonic` by default).

    Raises:
        TypeError: both `config` and `options` were given, or an unknown option.
        ValueError: an option out of range.
        OSError: the address cannot be bound.
    """
    if config is not None and options:
        raise TypeError("serve(): give a config or options, not both")
    emulator = Emulator(config if config is not None else EmulatorConfig(**options), clock=clock)
    async with emulator.running(host, port) as running:
        yield running


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - depends on the install
        return asyncio.new_event_loop
    new_event_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return new_event_loop


async def _run_foreground(config: EmulatorConfig, host: str, port: int, out: IO[str]) -> None:
    emulator = Emulator(config)
    async with emulator.running(host, port):
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, emulator.stop)
        out.write(f"listening on {emulator.base_url}\n")
        out.flush()
        try:
            await emulator.wait_stopped()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def run(
    config: EmulatorConfig | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    out: IO[str] | None = None,
) -> None:
    """Run the emulator in the foreground until SIGTERM or SIGINT.

    Prints exactly one line, `listening on http://HOST:PORT` (the real port when 0 was
    asked), to `out` (stdout) once it accepts connections. Uses uvloop when it is installed.

    Raises:
        OSError: the address cannot be bound.
    """
    stream = out if out is not None else sys.stdout
    main = _run_foreground(config or EmulatorConfig(), host, port, stream)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main)
    else:  # pragma: no cover - Python 3.10
        loop = _loop_factory()()
        try:
            loop.run_until_complete(main)
        finally:
            loop.close()
