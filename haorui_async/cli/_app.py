"""The click group; each command lives in a module of its own."""

from __future__ import annotations

import click

from .._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="haorui-async")
def app() -> None:
    """haorui-async: send SMS through the HAORUI gateway, or run its emulator."""


# Each command module adds itself to `app` when imported.
from . import _commands  # noqa: E402,F401
