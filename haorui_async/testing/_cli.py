"""The emulator's own command line (argparse: it must run with uvicorn alone, no click)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, Final

from ._config import EmulatorConfig, option_specs

__all__ = ["UVICORN_HINT", "build_parser", "config_from_options", "load_server", "main"]

#: What to install when uvicorn is missing: the advice `haorui_async.testing.serve` gives.
UVICORN_HINT: Final = "needs uvicorn: pip install 'haorui-async[emulator]'"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: `--host`, `--port` and one option per `EmulatorConfig` field."""
    parser = argparse.ArgumentParser(
        prog="python -m haorui_async.testing",
        description="Run the HAORUI gateway emulator in the foreground (loopback only).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks a free one")
    for spec in option_specs():
        if spec.is_flag:
            parser.add_argument(spec.flag, dest=spec.name, action="store_true", help=spec.help)
        else:
            parser.add_argument(
                spec.flag,
                dest=spec.name,
                type=spec.type,
                default=spec.default,
                choices=spec.choices,
                help=f"{spec.help} (default: {spec.default!r})",
            )
    return parser


def config_from_options(options: dict[str, Any]) -> EmulatorConfig:
    """An `EmulatorConfig` from parsed options (`host` and `port` ignored).

    Raises:
        ValueError: an option out of range.
    """
    names = {spec.name for spec in option_specs()}
    return EmulatorConfig(**{k: v for k, v in options.items() if k in names})


def load_server() -> Callable[[EmulatorConfig, str, int], None]:
    """The emulator's `run(config, host, port)`, imported with uvicorn only when asked for.

    Raises:
        ImportError: uvicorn (an optional extra) cannot be imported; the text says what to
            install and why the import failed.
    """
    try:
        from ._server import run
    except ImportError as exc:
        raise ImportError(f"{UVICORN_HINT} ({exc})") from exc
    return run


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the emulator until SIGTERM or SIGINT.

    Exits 2 with a message for a bad option or a missing uvicorn.
    """
    parser = build_parser()
    options = vars(parser.parse_args(argv))
    try:
        config = config_from_options(options)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        run = load_server()
    except ImportError as exc:
        parser.exit(2, f"{parser.prog} {exc}\n")
    run(config, options["host"], options["port"])
