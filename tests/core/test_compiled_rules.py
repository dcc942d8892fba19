"""The rules the compiled modules keep (docs/architecture.md, "The compiled rooms"), read off
their source: what mypyc compiles differently from CPython must not be written there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import haorui_async

# The compiled build is Python 3.11+ (docs/architecture.md): its rules are read there.
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
COMPILED: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
    "hatch"
]["build"]["targets"]["wheel"]["hooks"]["mypyc"]["include"]
#: Where the package's source is: the checkout's, or beside a compiled build's extensions
#: (`nox -s compiled` runs the tests from a copy with no source beside them).
SOURCE = Path(haorui_async.__file__).resolve().parents[1]


def tree_of(module: str) -> ast.Module:
    return ast.parse((SOURCE / module).read_text(encoding="utf-8"), filename=module)


def test_the_compiled_modules_are_listed() -> None:
    assert "haorui_async/_sender_core.py" in COMPILED
    assert all((SOURCE / module).is_file() for module in COMPILED)


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
def test_no_async_with_but_timeout_at_and_no_async_for(module: str) -> None:
    """Compiled, `async with` awaits `__aexit__` inside mypyc's own exception handler: one
    that suspends there shows the body's exception as the context of another task's. Only
    `timeout_at`, whose exit never suspends, is used; `async for` is not."""
    found = []
    for node in ast.walk(tree_of(module)):
        if isinstance(node, ast.AsyncFor):
            found.append(node.lineno)
        elif isinstance(node, ast.AsyncWith):
            for item in node.items:
                call = item.context_expr
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id == "timeout_at"
                ):
                    found.append(node.lineno)
    assert found == [], f"{module}: async with/for at lines {found}"


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
