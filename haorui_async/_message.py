"""`SMS`: one message, validated when it is built, before anything is sent (pure, no I/O)."""

from __future__ import annotations

import os
import re
from typing import Any, Final
from urllib.parse import urlsplit

import attrs

from ._encoding import _NON_GSM
from ._exceptions import InvalidMessage
from ._native import caused_by, mypyc_attr

__all__ = [
    "SMS",
    "check_encoding",
    "check_sender_id",
    "check_sms_type",
    "new_uid",
    "normalize_phonenumber",
]

_PHONE_PUNCTUATION: Final = re.compile(r"[\s\-.()/]+")
_DIGITS: Final = re.compile(r"[0-9]{7,15}")
_ALNUM_SENDER: Final = re.compile(r"[A-Za-z0-9]{1,11}")
_NUMERIC_SENDER: Final = re.compile(r"[0-9]{1,15}")
_UID: Final = re.compile(r"[\x21-\x7e]{1,100}")
#: 255 parts is the most a concatenated SMS can have; 153 GSM units each.
MAX_TEXT_LENGTH: Final = 255 * 153
SMS_TYPES: Final = frozenset({"P", "T"})
ENCODINGS: Final = frozenset({"T", "U", "auto"})


def new_uid() -> str:
    """A fresh random `uid` (32 hex digits) for a message that was given none.

    From the OS's generator: no caller's `random.seed()`, fork or restored snapshot of a
    process makes two messages share one (the ledgers and reconciliation key on it).
    """
    return os.urandom(16).hex()


def normalize_phonenumber(value: object) -> str:
    """Return the gateway's form of a phone number: country code and number, digits only.

    `"+86 139-1234-5678"`, `"(86) 139 1234 5678"`, the same in full-width digits and
    `8613912345678` all become `"8613912345678"`. Raises `InvalidMessage` naming
    `phonenumber` for anything else.
    """
    if (
        type(value) is str
        and 7 <= len(value) <= 15
        and value.isdigit()
        and value.isascii()
        and value[0] != "0"
    ):
        return value  # the gateway's form already (most numbers, so checked first)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidMessage("phonenumber", value, "expected a string of digits")
    digits = _PHONE_PUNCTUATION.sub("", value)
    if digits.startswith("+"):
        digits = digits[1:]
    if not digits.isascii() and digits.isdecimal():
        # Digits of another script (full-width, Arabic-Indic, ...): the same number.
        digits = "".join(str(int(digit)) for digit in digits)
    if not _DIGITS.fullmatch(digits):
        raise InvalidMessage(
            "phonenumber", value, "expected country code and number, 7 to 15 digits"
        )
    if digits[0] == "0":
        raise InvalidMessage(
            "phonenumber", value, "must start with the country code (no leading 0 or 00)"
        )
    return digits


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidMessage("textmessage", value, "expected a string")
    if not value.strip():
        raise InvalidMessage("textmessage", value, "must not be empty")
    if len(value) > MAX_TEXT_LENGTH:
        raise InvalidMessage(
            "textmessage", f"<{len(value)} characters>", f"at most {MAX_TEXT_LENGTH} characters"
        )
    if not value.isascii():  # (ASCII is always UTF-8)
        _check_encodable("textmessage", value)
    return value


def _check_encodable(field: str, value: str) -> None:
    """Both request forms carry UTF-8: a lone surrogate cannot go out in either."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise caused_by(
            InvalidMessage(
                field,
                value,
                f"character {exc.start} ({value[exc.start]!r}) cannot be encoded as UTF-8 "
                "(a lone surrogate)",
            ),
            None,
        )


def _choice(field: str, value: object, choices: frozenset[str]) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        folded = value if value == "auto" else value.upper()
        if folded in choices:
            return folded
    raise InvalidMessage(field, value, f"expected one of {sorted(choices)}")


def check_sms_type(value: object) -> str | None:
    return _choice("sms_type", value, SMS_TYPES)


def check_encoding(value: object) -> str | None:
    return _choice("encoding", value, ENCODINGS)


def check_sender_id(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and (
        _ALNUM_SENDER.fullmatch(value) or _NUMERIC_SENDER.fullmatch(value)
    ):
        return value
    raise InvalidMessage(
        "sender_id", value, "expected 1-11 letters or digits, or a number of up to 15 digits"
    )


def _uid(value: object) -> str:
    if value is None:
        return new_uid()
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _UID.fullmatch(value):
        return value
    raise InvalidMessage("uid", value, "expected 1-100 printable ASCII characters, no spaces")


def check_callback_url(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parts = urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None and parts.scheme in ("http", "https") and parts.hostname:
            _check_encodable("callback_url", value)
            return value
    raise InvalidMessage("callback_url", value, "expected an absolute http:// or https:// URL")


@mypyc_attr(native_class=False)
@attrs.frozen
class SMS:
    """One SMS, validated when it is built: bad input raises `InvalidMessage` naming the field.

    Fields left as None take the sender's defaults when the message is sent. A message built
    without a `uid` gets a random one, so every message can be matched to its outcome and its
    delivery report, also when that outcome is unknown.

    Attributes:
        phonenumber: country code and number, digits only (normalised from `+86 139-...`).
        textmessage: the text; not empty.
        sms_type: "P" (promotional) or "T" (transactional), or None for the sender's default.
        encoding: "T" (GSM text), "U" (Unicode) or "auto", or None for the sender's default.
        sender_id: 1-11 letters/digits or up to 15 digits, or None for the sender's default.
        uid: the caller's id for the message, echoed by the gateway and in delivery reports.
        callback_url: where delivery reports for this message are pushed.
    """

    phonenumber: str = attrs.field(converter=normalize_phonenumber)
    textmessage: str = attrs.field(converter=_text)
    # The optional fields are checked (and normalised) in `__attrs_post_init__`, and only
    # when given: most messages leave them to the sender, and a converter is a call each.
    sms_type: str | None = attrs.field(default=None, kw_only=True)
    encoding: str | None = attrs.field(default=None, kw_only=True)
    sender_id: str | None = attrs.field(default=None, kw_only=True)
    uid: str = attrs.field(default=None, kw_only=True, converter=_uid)
    callback_url: str | None = attrs.field(default=None, kw_only=True)

    def __attrs_post_init__(self) -> None:
        # The fields as given, unchecked: read through `Any`, since compiled (mypyc) a read
        # of a field declared `str | None` raises TypeError on an int before the check below
        # can name the field.
        given: Any = self
        if given.sms_type is not None:
            object.__setattr__(self, "sms_type", check_sms_type(given.sms_type))
        if given.encoding is not None:
            object.__setattr__(self, "encoding", check_encoding(given.encoding))
        if given.sender_id is not None:
            check_sender_id(given.sender_id)
        if given.callback_url is not None:
            check_callback_url(given.callback_url)
        if self.encoding == "T":
            bad = _NON_GSM.search(self.textmessage)
            if bad is not None:
                raise InvalidMessage(
                    "textmessage",
                    bad.group(),
                    "encoding 'T' (GSM) cannot carry this character; use 'U' or 'auto'",
                )
