"""Keeping the API password out of reprs, exception texts and log records."""

from __future__ import annotations

import json
import logging
import re
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "Secret", "install_httpx_log_filter", "scrub"]

REDACTED: Final = "********"
# httpx logs every request's URL at INFO; in GET mode the password is in that URL.
_QUERY_PASSWORD: Final = re.compile(r"(api_password=)[^&\s\"'#]*")


class Secret:
    """A string that never shows itself: `repr()` and `str()` print asterisks.

    `reveal()` returns the value, for the one place that puts it on the wire.
    """

    __slots__ = ("_forms", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        # The forms the value takes on the wire: as is, URL-encoded, JSON-escaped.
        forms = {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
        self._forms = tuple(sorted((f for f in forms if f), key=len, reverse=True))

    def reveal(self) -> str:
        return self._value

    def scrub(self, text: str) -> str:
        """Return `text` with every wire form of the secret replaced by asterisks."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return text

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


def scrub(text: str, secret: Secret) -> str:
    """Remove `secret` and any `api_password=...` query value from `text`."""
    return _QUERY_PASSWORD.sub(r"\1" + REDACTED, secret.scrub(text))


class _QueryPasswordFilter(logging.Filter):
    """Rewrites log records that carry `api_password=...` (httpx's request log in GET mode)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api_password=" in message:
            record.msg = _QUERY_PASSWORD.sub(r"\1" + REDACTED, message)
            record.args = None
        return True


_FILTER: Final = _QueryPasswordFilter()


def install_httpx_log_filter() -> None:
    """Make httpx's own request log safe to enable in GET mode (idempotent)."""
    for name in ("httpx", "httpcore"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
