"""`haorui-async emulator`: the gateway emulator in the foreground (what
`python -m haorui_async.testing` runs, with the same options)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import click

from ..testing._cli import config_from_options, load_server
from ..testing._config import option_specs
from ..testing._process import EmulatorNotStarted, EmulatorProcess
from ._app import app
from ._common import BadInput


def emulator_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """One click option per `EmulatorConfig` field: the table `python -m` also builds from."""
    for spec in reversed(option_specs()):
        if spec.is_flag:
            function = click.option(spec.flag, spec.name, is_flag=True, help=spec.help)(function)
        else:
            kind: Any = click.Choice(spec.choices) if spec.choices else spec.type
            function = click.option(
                spec.flag,
                spec.name,
                type=kind,
                default=spec.default,
                show_default=True,
                help=spec.help,
            )(function)
    return function


@asynccontextmanager
async def emulator_process(options: Sequence[str] = ()) -> AsyncIterator[str]:
    """The emulator in a subprocess on a free loopback port (`EmulatorProcess`), for a
    command that sends to it: yields its base URL.

    Raises:
        click.ClickException: it did not start; the message says why.
    """
    try:
        async with EmulatorProcess(options) as emulator:
            yield emulator.base_url
    except EmulatorNotStarted as exc:
        raise click.ClickException(str(exc)) from None


@app.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=0, show_default=True, help="Port; 0 picks a free one.")
@emulator_options
def emulator(host: str, port: int, **options: Any) -> None:
    """Run the HAORUI gateway emulator in the foreground until Ctrl-C or SIGTERM.

    Prints `listening on http://HOST:PORT` once it accepts connections. It accepts the demo
    account API43404236 / demo-password. Needs uvicorn (the [cli] or [emulator] extra).
    """
    try:
        config = config_from_options(options)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        run = load_server()
    except ImportError as exc:
        raise BadInput(f"haorui-async emulator {exc}") from None
    run(config, host, port)
