"""The rules the compiled modules keep (docs/architecture.md, "The compiled rooms"), read off
their source: what mypyc compiles differently from CPython must not be written there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
COMPILED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "hatch"
]["build"]["targets"]["wheel"]["hooks"]["mypyc"]["include"]


def tree_of(module: str) -> ast.Module:
    return ast.parse((ROOT / module).read_text(encoding="utf-8"), filename=module)


def test_the_compiled_modules_are_listed() -> None:
    assert "haorui_async/_sender_core.py" in COMPILED
    assert all((ROOT / module).is_file() for module in COMPILED)


@pytest.mark.parametrize("module", COMPILED)
def test_no_raise_from(module: str) -> None:
    """mypyc ignores `from`: `raise X from None` would show the exception being handled
    (which may carry the request), `raise X from exc` would name no cause. `caused_by()`."""
    found = [
        node.lineno
        for node in ast.walk(tree_of(module))
        if isinstance(node, ast.Raise) and node.cause is not None
    ]
    assert found == [], f"{module}: `raise ... from` at lines {found}; use caused_by()"


@pytest.mark.parametrize("module", COMPILED)
def test_no_await_in_an_except_or_finally_block(module: str) -> None:
    found = []
    for node in ast.walk(tree_of(module)):
        if isinstance(node, ast.Try):
            blocks = [*node.handlers, *node.finalbody]
            found += [
                inner.lineno
                for block in blocks
                for inner in ast.walk(block)
                if isinstance(inner, (ast.Await, ast.AsyncWith, ast.AsyncFor))
            ]
    assert found == [], f"{module}: an await in an except or finally block at lines {found}"
