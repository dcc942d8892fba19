"""Every ```python block of `docs/*.md` and `README.md` runs, as a reader would run it.

Each block runs as a script of its own, in a fresh interpreter, with the environment a reader
would set: `HAORUI_API_ID`, `HAORUI_API_PASSWORD` and `HAORUI_BASE_URL`, the last pointing at
the loopback gateway emulator (`haorui_async.testing.serve`) that this module starts; its
account is the one the examples show (`API43404236`, password `secret`). Sockets
to any address but loopback fail, so no example reaches the real gateway.

An HTML comment right before a block tells this test what the block needs:

    <!-- example: requires starlette -->

skips the block (with the reason) where that module is not installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from haorui_async.testing import DEMO_API_ID, serve

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("_run_example.py")
#: The password the examples show (`api_password="secret"`): the emulator's account uses it,
#: so an example with explicit credentials runs as it is written.
EXAMPLE_PASSWORD = "secret"
#: One example's longest run: the slowest (a rate-limited burst) takes about two seconds.
EXAMPLE_TIMEOUT = 30.0

_BLOCK = re.compile(
    r"(?:<!--\s*example:\s*(?P<directive>[^>]*?)\s*-->\s*\n)?"
    r"^```python[^\n]*\n(?P<code>.*?)^```\s*$",
    re.MULTILINE | re.DOTALL,
)


@attrs.frozen
class Example:
    path: Path
    line: int
    code: str
    requires: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples_in(path: Path) -> list[Example]:
    """The ```python blocks of one Markdown file, with what their comments require."""
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _BLOCK.finditer(text):
        directive = (match.group("directive") or "").split()
        if directive and directive[0] != "requires":
            raise ValueError(f"{path}: unknown example directive {directive!r}")
        line = text.count("\n", 0, match.start("code")) + 1
        found.append(Example(path, line, match.group("code"), tuple(directive[1:])))
    return found


def all_examples() -> list[Example]:
    paths = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    return [example for path in paths if path.exists() for example in examples_in(path)]


EXAMPLES = all_examples()


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    """The loopback emulator, in a thread of its own, for the whole module."""
    started = threading.Event()
    stop = threading.Event()
    url: list[str] = []

    async def run() -> None:
        async with serve(accounts={DEMO_API_ID: EXAMPLE_PASSWORD}) as emulator:
            url.append(emulator.base_url)
            started.set()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="docs-emulator")
    thread.start()
    try:
        assert started.wait(10), "the emulator did not start"
        yield url[0]
    finally:
        stop.set()
        thread.join(10)


def test_the_docs_have_examples_and_every_page_is_scanned() -> None:
    pages = {example.path.name for example in EXAMPLES}
    assert {"index.md", "outcomes.md", "delivery-reports.md", "README.md"} <= pages


def test_directives_are_read_and_unknown_ones_refused(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- example: requires a b -->\n```python\nx = 1\n```\n")
    [example] = examples_in(page)
    assert (example.requires, example.code, example.line) == (("a", "b"), "x = 1\n", 3)
    page.write_text("<!-- example: skip -->\n```python\nx = 1\n```\n")
    with pytest.raises(ValueError, match="skip"):
        examples_in(page)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda example: example.name)
def test_example_runs(example: Example, emulator_url: str, tmp_path: Path) -> None:
    for module in example.requires:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{example.name} needs {module}, which is not installed")
    script = tmp_path / "example.py"
    script.write_text(example.code, encoding="utf-8")
    env = {
        **os.environ,
        "HAORUI_API_ID": DEMO_API_ID,
        "HAORUI_API_PASSWORD": EXAMPLE_PASSWORD,
        "HAORUI_BASE_URL": emulator_url,
        "PYTHONWARNINGS": "error",
    }
    env.pop("COVERAGE_PROCESS_START", None)
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{example.name} failed:\n{done.stdout}\n{done.stderr}"


def test_examples_run_with_sockets_limited_to_loopback(tmp_path: Path) -> None:
    from ._run_example import is_loopback

    assert is_loopback(("127.0.0.1", 80))
    assert is_loopback(("::1", 80, 0, 0))
    assert is_loopback(("localhost", 80))
    assert is_loopback("/tmp/socket")
    assert not is_loopback(("192.0.2.1", 80))
    assert not is_loopback(("api.haorui.com", 443))
    script = tmp_path / "probe.py"
    script.write_text("import socket\nprint(socket.socket.connect.__name__)\n")
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(script)],
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT,
        check=True,
    )
    assert done.stdout.strip() == "_guarded_connect"
