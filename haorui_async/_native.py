"""What the compiled build (mypyc) reads off the source, and pure Python ignores.

`mypyc_attr(native_class=False)` keeps a class of a compiled module a Python class: the attrs
classes (`SMS`, `SendResult`), which attrs rebuilds after their definition. mypyc reads the
decorator where mypy sees it; at run time it is the identity, as `mypy_extensions`' own is,
so no install needs `mypy_extensions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["mypyc_attr"]

_C = TypeVar("_C")

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr
else:

    def mypyc_attr(*attrs: str, **kwattrs: Any) -> Callable[[_C], _C]:
        return lambda cls: cls
