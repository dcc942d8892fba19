"""The emulator's own command line (argparse: it must run with uvicorn alone, no click)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ._config import EmulatorConfig, option_specs

__all__ = ["build_parser", "config_from_options", "main"]


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


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run the emulator until SIGTERM or SIGINT."""
    parser = build_parser()
    options = vars(parser.parse_args(argv))
    try:
        config = config_from_options(options)
    except ValueError as exc:
        parser.error(str(exc))
    from ._server import run

    run(config, options["host"], options["port"])
