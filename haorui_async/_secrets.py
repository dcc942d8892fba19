"""Keeping the API password out of reprs, exception texts and log records."""

from __future__ import annotations

import json
import logging
import re
import weakref
from typing import Final
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "Secret", "install_library_log_filter", "scrub"]

REDACTED: Final = "********"
# httpx logs every request's URL at INFO; in GET mode the password is in that URL.
_QUERY_PASSWORD: Final = re.compile(r"(api_password=)[^&\s\"'#]*")


class Secret:
    """A string that never shows itself: `repr()` and `str()` print asterisks.

    `reveal()` returns the value, for the one place that puts it on the wire.
    """

    __slots__ = ("__weakref__", "_forms", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        # The forms the value takes on the wire (as is, URL-encoded, JSON-escaped), and each
        # as a log record shows it: inside the repr of a str or of bytes (httpcore's DEBUG
        # records show headers as bytes).
        wire = {
            value,
            quote(value, safe=""),
            quote_plus(value),
            json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1],
        }
        forms = set(wire)
        for form in wire:
            forms.add(repr(form)[1:-1])
            forms.add(repr(form.encode("utf-8", "surrogatepass"))[2:-1])
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


#: The loggers of the libraries a caller's client or transport may send through: httpx logs
#: each request's URL at INFO; httpcore's children log at DEBUG what the server answered (a
#: redirect's Location may echo the URL). A filter on a logger does not apply to the records
#: of its children, so each is named.
_LIBRARY_LOGGERS: Final = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class _SecretFilter(logging.Filter):
    """Rewrites log records that carry a registered secret, or any `api_password=...`."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: weakref.WeakSet[Secret] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _QUERY_PASSWORD.sub(r"\1" + REDACTED, message)
        for secret in list(self.secrets):
            clean = secret.scrub(clean)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


_FILTER: Final = _SecretFilter()


def install_library_log_filter(secret: Secret) -> None:
    """Keep `secret` out of the records of httpx's and httpcore's loggers (idempotent)."""
    _FILTER.secrets.add(secret)
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
