"""Emulator subprocesses for the command-line tests (the commands run their own event loop)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from haorui_async.testing import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]


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


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """A healthy emulator."""
    with EmulatorProcess() as emulator:
        yield emulator.base_url


@pytest.fixture(scope="module")
def failing_emulator_url() -> Iterator[str]:
    """An emulator that answers every request 500."""
    with EmulatorProcess(["--rate-500", "1"]) as emulator:
        yield emulator.base_url
