"""The command line of `python benchmarks/run.py`: the suite's options, sizes and output."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import attrs
import click

from . import runner
from .clients import CLIENTS

__all__ = ["INSTALL_HINT", "LOAD_MODULES", "RESULTS_DIR", "main", "missing_modules"]

#: What the load part imports beyond the SDK: the peer it is measured against, the plot, and
#: the emulator's server. Checked before it starts, not minutes later at the first use.
LOAD_MODULES: Final = ("aiohttp", "matplotlib", "uvicorn")
INSTALL_HINT: Final = (
    "run it with `nox -s bench`, or install the bench dependency group: "
    "pip install -e '.[fast]' --group bench"
)
#: Where the results go by default: `benchmarks/results`, beside `run.py`.
RESULTS_DIR: Final = Path(__file__).resolve().parents[1] / "results"


class MissingModules(click.ClickException):
    """A module the suite needs cannot be imported: exit 2 before anything runs."""

    exit_code = 2


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
@click.option("--full", is_flag=True, help="Longer measurements and more rounds (minutes more).")
@click.option(
    "-c",
    "--concurrency",
    "concurrencies",
    type=click.IntRange(min=1),
    multiple=True,
    help="Sends in flight; repeat for several. Default: 1, 10, 100, 1000.",
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
    type=click.Choice(["load", "micro", "bulk"]),
    multiple=True,
    help="What to run; repeat for several. Default: all three.",
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
    help="Where to write throughput.json/.md/.png (default: benchmarks/results).",
)
@click.option("--list", "list_clients", is_flag=True, help="List the clients and exit.")
def main(
    full: bool,
    concurrencies: tuple[int, ...],
    clients: tuple[str, ...],
    parts: tuple[str, ...],
    rounds: int | None,
    seconds: float | None,
    count: int | None,
    no_wrk: bool,
    out: Path,
    list_clients: bool,
) -> None:
    """Measure SendSMS throughput of the SDK and of hand-written clients, in one run.

    The emulator runs in its own process on 127.0.0.1; each client runs in a fresh process per
    round and concurrency. Writes a JSON of raw results, a markdown table with ratios and a
    plot. The load part needs aiohttp, matplotlib and uvicorn (the bench dependency group;
    without them: exit 2 before anything runs).
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
    parts = parts or runner.PARTS
    missing = missing_modules(LOAD_MODULES) if "load" in parts else []
    if missing:
        raise MissingModules(
            f"the load part of the benchmark needs {', '.join(missing)}: {INSTALL_HINT}"
        )
    sizes = runner.FULL_SIZES if full else runner.DEFAULT_SIZES
    if rounds is not None:
        sizes = attrs.evolve(sizes, rounds=rounds)
    if seconds is not None:
        sizes = attrs.evolve(sizes, seconds=seconds)
    if count is not None:
        sizes = attrs.evolve(sizes, count=count)
    results = runner.run_benchmark(
        out,
        sizes=sizes,
        clients=clients or tuple(CLIENTS),
        concurrencies=concurrencies or runner.DEFAULT_CONCURRENCY,
        parts=parts,
        use_wrk=not no_wrk,
        progress=click.echo,
    )
    click.echo("")
    click.echo((out / runner.MARKDOWN_NAME).read_text(encoding="utf-8"))
    click.echo("Written: " + ", ".join(results["files"]))
