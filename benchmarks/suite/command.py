"""The command line of `python benchmarks/run.py`: the suite's options, sizes and output."""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import attrs
import click

from . import runner
from .clients import CLIENTS, LOAD_CLIENTS
from .wild import runner as wild_runner
from .wild import scenarios as wild_scenarios
from .wild.nginx import NginxMissing, ensure_nginx

__all__ = [
    "INSTALL_HINT",
    "LOAD_MODULES",
    "PARTS",
    "RESULTS_DIR",
    "WILD_MODULES",
    "main",
    "missing_modules",
]

#: What the load part imports beyond the SDK: the peer it is measured against, the plot, and
#: the emulator's server. Checked before it starts, not minutes later at the first use.
LOAD_MODULES: Final = ("aiohttp", "matplotlib", "uvicorn")
#: What the wild part imports: the peer, the plot, the local CA (uvloop where a scenario
#: runs on it).
WILD_MODULES: Final = ("aiohttp", "matplotlib", "trustme")
#: Every part, in the order they run.
PARTS: Final = (*runner.PARTS, "wild")
INSTALL_HINT: Final = (
    "run it with `nox -s bench`, or install the bench dependency group: "
    "pip install -e '.[fast]' --group bench"
)
#: Where the results go by default: `benchmarks/results`, beside `run.py`.
RESULTS_DIR: Final = Path(__file__).resolve().parents[1] / "results"


class MissingModules(click.ClickException):
    """A module the suite needs cannot be imported: exit 2 before anything runs."""

    exit_code = 2


class MissingServer(click.ClickException):
    """nginx or its echo module is missing for the wild part: exit 2 before anything runs."""

    exit_code = 2


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # SIGTERM ends the run as Ctrl-C would: the servers it started (nginx, the emulator)
    # are stopped by their context managers instead of being left running.
    sys.exit(128 + signum)


def missing_modules(names: Iterable[str]) -> list[str]:
    """The modules of `names` that cannot be imported (imported for real, as the run would)."""
    missing = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--full",
    is_flag=True,
    help="Longer measurements and more rounds (minutes more; the wild part: much more).",
)
@click.option(
    "-c",
    "--concurrency",
    "concurrencies",
    type=click.IntRange(min=1),
    multiple=True,
    help="Sends in flight of the load part; repeat for several. Default: 1, 10, 100, 1000.",
)
@click.option(
    "--client",
    "clients",
    multiple=True,
    help="A client to run; repeat for several. Default: every client (see --list).",
)
@click.option(
    "--part",
    "parts",
    type=click.Choice(PARTS),
    multiple=True,
    help="What to run; repeat for several. Default: all four (wild: nginx, TLS, latency, "
    "CPU per message, uvloop, cold start; writes wild.md).",
)
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    help="A scenario of the wild part, by name or glob (e.g. 'tls-*-uvloop', '*' for the "
    "whole matrix); repeat for several. Default: the issue's targets' scenarios.",
)
@click.option("--rounds", type=click.IntRange(min=1), default=None, help="Rounds of every client.")
@click.option(
    "--seconds",
    type=click.FloatRange(min=0.05),
    default=None,
    help="Time bound of one measurement, in seconds.",
)
@click.option(
    "--count", type=click.IntRange(min=1), default=None, help="Message bound of one measurement."
)
@click.option("--no-wrk", is_flag=True, help="Do not measure the server's ceiling with wrk.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=RESULTS_DIR,
    help="Where to write throughput.* and wild.* (default: benchmarks/results).",
)
@click.option("--list", "list_clients", is_flag=True, help="List the clients and exit.")
def main(
    full: bool,
    concurrencies: tuple[int, ...],
    clients: tuple[str, ...],
    parts: tuple[str, ...],
    scenarios: tuple[str, ...],
    rounds: int | None,
    seconds: float | None,
    count: int | None,
    no_wrk: bool,
    out: Path,
    list_clients: bool,
) -> None:
    """Measure SendSMS throughput of the SDK and of hand-written clients, in one run.

    The load part: the emulator in its own process on 127.0.0.1, each client in a fresh
    process per round and concurrency; writes a JSON of raw results, a markdown table with
    ratios and a plot. The wild part: nginx on 127.0.0.1 (plain, TLS, 100 ms latency), C up
    to 3,000, asyncio and uvloop, CPU per message, RSS, cold start; writes wild.json/.md and
    a plot per scenario. Missing needs (aiohttp, matplotlib, uvicorn, trustme; nginx and its
    echo module, installed with apt-get when root): exit 2 before anything runs.
    """
    if list_clients:
        for spec in CLIENTS.values():
            click.echo(f"{spec.name:<16} {spec.label}")
        return
    unknown = sorted(set(clients) - set(CLIENTS))
    if unknown:
        raise click.BadParameter(
            f"unknown: {', '.join(unknown)} (known: {', '.join(CLIENTS)})", param_hint="--client"
        )
    parts = parts or PARTS
    chosen = None
    if "wild" in parts:
        try:
            chosen = wild_scenarios.select(scenarios) if scenarios else None
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--scenario") from None
    needed = list(LOAD_MODULES) if "load" in parts else []
    if "wild" in parts:
        needed += WILD_MODULES
        if any(s.loop == "uvloop" for s in chosen or wild_runner.default_scenarios()):
            needed.append("uvloop")
    missing = missing_modules(dict.fromkeys(needed))
    if missing:
        raise MissingModules(f"the benchmark needs {', '.join(missing)}: {INSTALL_HINT}")
    install = None
    if "wild" in parts:
        try:
            install, how = ensure_nginx()
        except NginxMissing as exc:
            raise MissingServer(str(exc)) from None
        click.echo(how)
    sizes = runner.FULL_SIZES if full else runner.DEFAULT_SIZES
    wild_sizes = wild_scenarios.FULL_SIZES if full else wild_scenarios.DEFAULT_SIZES
    if rounds is not None:
        sizes = attrs.evolve(sizes, rounds=rounds)
        wild_sizes = attrs.evolve(wild_sizes, rounds=rounds)
    if seconds is not None:
        sizes = attrs.evolve(sizes, seconds=seconds)
        wild_sizes = attrs.evolve(wild_sizes, seconds=seconds)
    if count is not None:
        sizes = attrs.evolve(sizes, count=count)
        wild_sizes = attrs.evolve(wild_sizes, count=count)
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        written: list[str] = []
        classic = [p for p in parts if p in runner.PARTS]
        if classic:
            results = runner.run_benchmark(
                out,
                sizes=sizes,
                clients=clients or LOAD_CLIENTS,
                concurrencies=concurrencies or runner.DEFAULT_CONCURRENCY,
                parts=classic,
                use_wrk=not no_wrk,
                progress=click.echo,
            )
            click.echo("")
            click.echo((out / runner.MARKDOWN_NAME).read_text(encoding="utf-8"))
            written += results["files"]
        if "wild" in parts:
            wild = wild_runner.run_wild(
                out,
                sizes=wild_sizes,
                scenarios=chosen,
                clients=clients or wild_scenarios.WILD_CLIENTS,
                use_wrk=not no_wrk,
                # Raw httpx where it only waits out its time bound: in --full, or when asked for.
                trim=not full and not clients,
                install=install,
                progress=click.echo,
            )
            click.echo("")
            click.echo((out / wild_runner.MARKDOWN_NAME).read_text(encoding="utf-8"))
            written += wild["files"]
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo("Written: " + ", ".join(written))
