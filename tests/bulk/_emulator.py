"""The loopback emulator in a subprocess, and what the bulk tests ask it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, EmulatorProcess

REPO = Path(__file__).resolve().parents[2]


def env_for(base_url: str) -> dict[str, str]:
    """The environment of a bulk command sending to `base_url` with the demo account."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAORUI_")}
    env.update(
        HAORUI_API_ID=DEMO_API_ID,
        HAORUI_API_PASSWORD=DEMO_API_PASSWORD,
        HAORUI_BASE_URL=base_url,
        PYTHONPATH=str(REPO),
    )
    return env


@contextmanager
def emulator_process(*options: str) -> Iterator[str]:
    """The emulator, recording every message, in a subprocess on a free loopback port; yield
    its base URL."""
    with EmulatorProcess(["--record", "messages", *options]) as emulator:
        yield emulator.base_url


def accepted_uids(base_url: str) -> Counter[str]:
    """How many times the emulator accepted each uid."""
    page = httpx.get(f"{base_url}/_emulator/messages", timeout=10).json()
    return Counter(m["uid"] for m in page["messages"])


def job_of(journal: Path) -> str:
    """The job id a bulk journal holds: part of the uids it generates."""
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        found = db.execute("SELECT value FROM meta WHERE key = 'job'").fetchone()
    return "" if found is None else str(found[0])
