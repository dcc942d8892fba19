"""Imports every command module, so each registers itself on the `app` group."""

from __future__ import annotations

from . import (
    _bench,  # noqa: F401
    _bulk,  # noqa: F401
    _campaign,  # noqa: F401
    _demo,  # noqa: F401
    _emulator,  # noqa: F401
    _send,  # noqa: F401
)
