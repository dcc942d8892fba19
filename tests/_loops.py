"""The event loops the loopback suites run every test on: asyncio's own, and uvloop.

uvloop is what uvicorn and FastAPI apps run on, and its sockets differ from asyncio's in what
they report and when. pytest-asyncio asks each directory's `conftest.py` for the loops through
its `pytest_asyncio_loop_factories` hook (overriding the `event_loop_policy` fixture is
deprecated in pytest-asyncio 1.x, and its warning is an error under `filterwarnings = error`),
so a directory runs on both loops by importing the hook below into its `conftest.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Final

import pytest
import uvloop

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

LOOPS: Final[Mapping[str, LoopFactory]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": uvloop.new_event_loop,
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, LoopFactory]:
    """Run every test of the directory whose `conftest.py` imports this on each of `LOOPS`."""
    return LOOPS
