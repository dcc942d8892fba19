"""The `haorui-async` command line (the optional `[cli]` extra: click and rich)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    """Entry point of the `haorui-async` console script."""
    try:
        from ._app import app
    except ImportError as exc:  # pragma: no cover - depends on the install
        sys.stderr.write(
            f"haorui-async: the command line needs the [cli] extra ({exc}).\n"
            "Install it with: pip install 'haorui-async[cli]'\n"
        )
        raise SystemExit(2) from None
    app()
