"""What the compiled build (mypyc) reads off the source, and what it needs said differently.

`mypyc_attr(native_class=False)` keeps a class of a compiled module a Python class: the attrs
classes (`SMS`, `SendResult`), which attrs rebuilds after their definition. mypyc reads the
decorator where mypy sees it; at run time it is the identity, as `mypy_extensions`' own is,
so no install needs `mypy_extensions`.

`caused_by(exc, cause)` is `raise exc from cause` for the compiled modules: mypyc (2.4.1)
ignores `from`, so a compiled `raise X from None` neither hides the exception being handled
nor does `raise X from exc` name its cause. Raised as `raise caused_by(X, None)`, both builds
chain alike (a test holds the compiled modules to it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

__all__ = ["caused_by", "mypyc_attr"]

_C = TypeVar("_C")
_E = TypeVar("_E", bound=BaseException)


def caused_by(exc: _E, cause: BaseException | None) -> _E:
    """`exc`, chained as `raise exc from cause` chains it: its cause set, the exception being
    handled (its context) not shown."""
    exc.__cause__ = cause
    exc.__suppress_context__ = True
    return exc


if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr as mypyc_attr
else:

    def mypyc_attr(*attrs: str, **kwattrs: Any) -> Callable[[_C], _C]:
        return lambda cls: cls
