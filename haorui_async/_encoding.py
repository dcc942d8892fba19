"""SMS text encodings and segment counting (pure, no I/O).

The gateway takes `encoding` "T" (GSM 03.38 text) or "U" (UCS-2). A GSM message holds 160 units,
or 153 per part once concatenated; characters of the extension table take two units and are
never split across parts. A UCS-2 message holds 70 units, 67 per part; characters outside the
Basic Multilingual Plane (most emoji) take two units (a surrogate pair) and are never split.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import attrs

__all__ = ["GSM_BASIC", "GSM_EXTENSION", "TextInfo", "detect_encoding", "is_gsm", "text_info"]

#: The GSM 03.38 default alphabet (the escape character 0x1B excluded: it is not text).
GSM_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: each of these is sent as escape + character, two units.
GSM_EXTENSION: Final = "\f^{}\\[~]|€"

GSM_SINGLE_LIMIT: Final = 160
GSM_PART_LIMIT: Final = 153
UCS2_SINGLE_LIMIT: Final = 70
UCS2_PART_LIMIT: Final = 67

# A character class search runs in C: one pass over the text, no Python loop per character.
_NON_GSM: Final = re.compile("[^" + re.escape(GSM_BASIC + GSM_EXTENSION) + "]")
_GSM_EXTENSION_CHARS: Final = re.compile("[" + re.escape(GSM_EXTENSION) + "]")
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")

Encoding = Literal["T", "U"]


def is_gsm(text: str) -> bool:
    """Whether every character of `text` is in the GSM 03.38 alphabet or its extension table."""
    return _NON_GSM.search(text) is None


def detect_encoding(text: str) -> Encoding:
    """The cheapest encoding that carries `text` intact: "T" for GSM text, else "U"."""
    return "T" if _NON_GSM.search(text) is None else "U"


@attrs.frozen
class TextInfo:
    """How a text travels as SMS.

    Attributes:
        encoding: "T" (GSM 03.38) or "U" (UCS-2).
        units: the length in encoding units (septets for "T", 16-bit code units for "U").
        parts: how many SMS the text takes (each one billed).
        per_part: the units one part holds at this length (160/153 or 70/67).
    """

    encoding: Encoding
    units: int
    parts: int
    per_part: int


def _char_units(char: str, encoding: Encoding) -> int:
    if encoding == "T":
        return 2 if char in GSM_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def text_info(text: str, encoding: Literal["T", "U", "auto"] = "auto") -> TextInfo:
    """Report the encoding of `text` and how many SMS parts it takes.

    `encoding="auto"` chooses as the sender does. Asking for "T" with a character outside the
    GSM alphabet raises `ValueError`.
    """
    enc: Encoding = detect_encoding(text) if encoding == "auto" else encoding
    if enc == "T":
        bad = _NON_GSM.search(text)
        if bad is not None:
            raise ValueError(f"{bad.group()!r} is not in the GSM 03.38 alphabet")
        units = len(text) + len(_GSM_EXTENSION_CHARS.findall(text))
        single, per_part = GSM_SINGLE_LIMIT, GSM_PART_LIMIT
    elif enc == "U":
        units = len(text) + len(_ASTRAL.findall(text))
        single, per_part = UCS2_SINGLE_LIMIT, UCS2_PART_LIMIT
    else:
        raise ValueError(f"encoding must be 'T', 'U' or 'auto', not {encoding!r}")
    if units <= single:
        return TextInfo(encoding=enc, units=units, parts=1 if units else 0, per_part=single)
    # Concatenated: fill parts greedily; a two-unit character never straddles two parts.
    parts, used = 1, 0
    for char in text:
        width = _char_units(char, enc)
        if used + width > per_part:
            parts += 1
            used = 0
        used += width
    return TextInfo(encoding=enc, units=units, parts=parts, per_part=per_part)
