from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haorui_async import detect_encoding, is_gsm, text_info
from haorui_async._encoding import GSM_BASIC, GSM_EXTENSION

gsm_text = st.text(alphabet=GSM_BASIC + GSM_EXTENSION, min_size=1, max_size=1200)
ucs2_text = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=600).filter(
    lambda t: not is_gsm(t)
)


def at_the_part_limits(
    encoding: str, char: str, single: int, each: int
) -> list[tuple[str, str, int, int]]:
    """Texts of `char` (one unit) at both sides of the limit of one part (`single` units) and
    of two parts (`each` units a part: the rest of a part carries the header that joins them),
    with their encoding, units and parts."""
    return [
        (char * single, encoding, single, 1),
        (char * (single + 1), encoding, single + 1, 2),
        (char * 2 * each, encoding, 2 * each, 2),
        (char * (2 * each + 1), encoding, 2 * each + 1, 3),
    ]


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        *at_the_part_limits("T", "a", 160, 153),
        ("€" * 80, "T", 160, 1),
        ("€" * 81, "T", 162, 2),
        # 152 units, then a two-unit character that must not straddle the part boundary.
        ("a" * 152 + "€" + "a" * 10, "T", 164, 2),
        ("a" * 152 + "€" + "a" * 152, "T", 306, 3),
        *at_the_part_limits("U", "中", 70, 67),
        ("😀" * 35, "U", 70, 1),
        ("😀" * 36, "U", 72, 2),
        # 66 units then an emoji: the surrogate pair moves whole to the second part.
        ("中" * 66 + "😀" + "中" * 10, "U", 78, 2),
        ("中" * 66 + "😀" + "中" * 66, "U", 134, 3),
        ("", "T", 0, 0),
    ],
)
def test_text_info_boundaries(text: str, encoding: str, units: int, parts: int) -> None:
    info = text_info(text)
    assert (info.encoding, info.units, info.parts) == (encoding, units, parts)


def test_one_smart_quote_forces_unicode() -> None:
    assert detect_encoding("It\u2019s here") == "U"
    assert detect_encoding("It's here") == "T"
    assert detect_encoding("price: 5€ {ok}") == "T"


def test_backtick_is_not_gsm() -> None:
    assert not is_gsm("`")


def test_forcing_gsm_on_unicode_text_is_an_error() -> None:
    with pytest.raises(ValueError, match="not in the GSM 03.38 alphabet"):
        text_info("中", "T")


def test_unknown_encoding_is_an_error() -> None:
    with pytest.raises(ValueError, match="encoding must be"):
        text_info("hi", "X")  # type: ignore[arg-type]  # an invalid value on purpose


def test_forcing_unicode_counts_ucs2_units() -> None:
    assert text_info("abc", "U").units == 3


def _check_parts(units: int, parts: int, single: int, per_part: int) -> None:
    if units <= single:
        assert parts == 1
    else:
        # Each boundary wastes at most one unit (a two-unit character moved whole).
        assert (parts - 1) * (per_part - 1) < units <= parts * per_part


@given(gsm_text)
def test_gsm_parts_cover_the_units(text: str) -> None:
    info = text_info(text)
    assert info.encoding == "T"
    assert info.units == len(text) + sum(c in GSM_EXTENSION for c in text)
    _check_parts(info.units, info.parts, 160, 153)


@given(ucs2_text)
def test_ucs2_parts_cover_the_units(text: str) -> None:
    info = text_info(text)
    assert info.encoding == "U"
    assert info.units == len(text.encode("utf-16-le")) // 2
    _check_parts(info.units, info.parts, 70, 67)
