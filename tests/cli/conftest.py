"""Emulator subprocesses for the command-line tests (the commands run their own event loop)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_emulator(*arguments: str) -> tuple[subprocess.Popen[str], str]:
    """`python -m haorui_async.testing` on a free loopback port: the process and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "haorui_async.testing", "--port", "0", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("listening on "), line
    return process, line.strip().removeprefix("listening on ")


def without_modules(directory: Path, *names: str) -> dict[str, str]:
    """An environment in which `names` cannot be imported, as if they were not installed.

    A module of each name in `directory`, first on PYTHONPATH, raises the error that importing
    a missing one raises.
    """
    for name in names:
        text = f"No module named {name!r}"
        (directory / f"{name}.py").write_text(
            f"raise ModuleNotFoundError({text!r}, name={name!r})\n", encoding="utf-8"
        )
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(directory), str(ROOT)])}


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.communicate(timeout=20)


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """A healthy emulator."""
    process, url = start_emulator()
    yield url
    stop(process)


@pytest.fixture(scope="module")
def failing_emulator_url() -> Iterator[str]:
    """An emulator that answers every request 500."""
    process, url = start_emulator("--rate-500", "1")
    yield url
    stop(process)
