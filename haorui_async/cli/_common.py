"""What every command shares: credentials, exit codes, printing results."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click

from .. import _defaults as defaults
from .._exceptions import InvalidMessage, NotSent, OutcomeUnknown, SendError

#: Exit codes of the commands that send.
EXIT_SENT: Final = 0
EXIT_FAILED: Final = 1  # the gateway refused it, or it provably was not sent
EXIT_BAD_INPUT: Final = 2  # bad input or configuration: nothing was sent (click uses 2 too)
EXIT_UNKNOWN: Final = 3  # it may have been sent: check before sending again
EXIT_INTERRUPTED: Final = 130  # stopped by a signal before the end (the shell's 128 + SIGINT)

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(error: BaseException | None) -> int:
    """The exit code for a send that ended with `error` (None: sent)."""
    if error is None:
        return EXIT_SENT
    if isinstance(error, OutcomeUnknown):
        return EXIT_UNKNOWN
    if isinstance(error, (InvalidMessage, ValueError)):
        return EXIT_BAD_INPUT
    if isinstance(error, (SendError, NotSent)):
        return EXIT_FAILED
    return EXIT_FAILED


def read_credentials_file(path: Path) -> dict[str, str]:
    """Read `KEY=value` lines (`HAORUI_API_ID`, `HAORUI_API_PASSWORD`, `HAORUI_BASE_URL`).

    Blank lines and lines starting with `#` are skipped; values may be quoted.
    """
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise click.BadParameter(
                f"line {number}: expected KEY=value", param_hint="--credentials-file"
            )
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def credentials(credentials_file: Path | None) -> dict[str, str | None]:
    """`api_id`, `api_password` and `base_url` from the file, else the environment.

    The password is never taken from the command line, where `ps` shows it to every user.
    """
    file_values = read_credentials_file(credentials_file) if credentials_file else {}

    def pick(env: str) -> str | None:
        return file_values.get(env) or os.environ.get(env) or None

    return {
        "api_id": pick(defaults.ENV_API_ID),
        "api_password": pick(defaults.ENV_API_PASSWORD),
        "base_url": pick(defaults.ENV_BASE_URL),
    }


def credentials_option(function: F) -> F:
    """The `--credentials-file` option."""
    return click.option(
        "--credentials-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help=(
            "File of KEY=value lines: HAORUI_API_ID, HAORUI_API_PASSWORD, HAORUI_BASE_URL. "
            "Without it, the environment variables of those names are used."
        ),
    )(function)
