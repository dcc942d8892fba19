from __future__ import annotations

import os
import pickle
import random
import subprocess
import sys
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haorui_async import SMS, InvalidMessage, new_uid, normalize_phonenumber

digits = st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True)


@given(digits, st.sampled_from(["+", "", "+ "]), st.sampled_from([" ", "-", ".", ""]))
def test_phonenumber_is_normalised_to_digits(number: str, prefix: str, sep: str) -> None:
    decorated = prefix + sep.join([number[:2], number[2:5], number[5:]])
    assert normalize_phonenumber(decorated) == number


@pytest.mark.parametrize(
    ("given_number", "expected"),
    [
        ("+86 139-1234-5678", "8613912345678"),
        ("(86) 139 1234 5678", "8613912345678"),
        (8613912345678, "8613912345678"),
        ("1234567", "1234567"),
        ("123456789012345", "123456789012345"),
        (
            "\uff18\uff16\uff11\uff13\uff19\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
            "8613912345678",
        ),
        (
            "+\u0668\u0666 \u0661\u0663\u0669\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",
            "8613912345678",
        ),
    ],
    ids=[
        "spaces-dashes",
        "parentheses",
        "int",
        "7-digits",
        "15-digits",
        "full-width",
        "arabic-indic",
    ],
)
def test_phonenumber_forms(given_number: str | int, expected: str) -> None:
    assert SMS(given_number, "hi").phonenumber == expected


@given(st.from_regex(r"[1-9][0-9]{0,5}|[1-9][0-9]{15,20}", fullmatch=True))
def test_phonenumber_length_outside_7_to_15_digits_is_rejected(number: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        SMS(number, "hi")
    assert info.value.field == "phonenumber"
    assert number in str(info.value)


@pytest.mark.parametrize(
    "number",
    # Superscript digits are digits to `str.isdigit` and `\d`, but no number's.
    ["0086139123456", "013912345678", "86139x2345678", "", None, True, "\u00b2" * 10],
)
def test_bad_phonenumbers_name_the_field(number: object) -> None:
    with pytest.raises(InvalidMessage, match="^phonenumber: "):
        SMS(number, "hi")


@pytest.mark.parametrize("text", ["", "   ", None, 5, "x" * (255 * 153 + 1)])
def test_bad_text_names_the_field(text: object) -> None:
    with pytest.raises(InvalidMessage, match="^textmessage: "):
        SMS("8613912345678", text)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sms_type", "X"),
        ("sms_type", 1),
        ("encoding", "UTF8"),
        ("sender_id", "TOO-LONG-SENDER"),
        ("sender_id", "ABCDEFGHIJKL"),
        ("sender_id", "1234567890123456"),
        ("sender_id", ""),
        ("uid", "has space"),
        ("uid", ""),
        ("uid", "x" * 101),
        ("uid", 1.5),
        ("callback_url", "ftp://example.test/dlr"),
        ("callback_url", "/relative/path"),
        ("callback_url", "http://[::1"),
        ("callback_url", 3),
    ],
)
def test_bad_optional_fields_name_the_field(field: str, value: object) -> None:
    with pytest.raises(InvalidMessage) as info:
        SMS("8613912345678", "hi", **cast("dict[str, Any]", {field: value}))
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")
    assert isinstance(info.value, ValueError)


def test_good_optional_fields_are_kept_and_folded() -> None:
    sms = SMS(
        "8613912345678",
        "hi",
        sms_type="p",
        encoding="u",
        sender_id="HAORUI",
        uid=42,
        callback_url="https://example.test/dlr?x=1",
    )
    assert (sms.sms_type, sms.encoding, sms.sender_id, sms.uid) == ("P", "U", "HAORUI", "42")
    assert SMS("8613912345678", "hi", sender_id="123456789012345").sender_id == "123456789012345"
    assert SMS("8613912345678", "hi", encoding="auto").encoding == "auto"


def test_a_message_without_uid_gets_a_fresh_one() -> None:
    first, second = SMS("8613912345678", "hi"), SMS("8613912345678", "hi")
    assert len(first.uid) == 32
    assert first.uid != second.uid


def test_gsm_encoding_refuses_characters_it_cannot_carry() -> None:
    with pytest.raises(InvalidMessage, match="^textmessage: encoding 'T'"):
        SMS("8613912345678", "你好", encoding="T")


def test_sms_is_frozen() -> None:
    sms = SMS("8613912345678", "hi")
    with pytest.raises(AttributeError):
        sms.textmessage = "changed"  # type: ignore[misc]  # frozen on purpose


def test_invalid_message_pickles() -> None:
    err = InvalidMessage("uid", "a b", "no spaces")
    again = pickle.loads(pickle.dumps(err))
    assert (again.field, again.value, again.reason, str(again)) == (
        "uid",
        "a b",
        "no spaces",
        str(err),
    )


@pytest.mark.parametrize("field", ["textmessage", "callback_url"])
def test_text_that_cannot_be_encoded_is_invalid_naming_the_field(field: str) -> None:
    # A lone surrogate: neither the JSON body (POST) nor the query string (GET) can carry it.
    values = {"textmessage": "code \ud800 1234", "callback_url": "https://cb.test/\udfff"}
    kwargs = {"textmessage": "hi", field: values[field]}
    with pytest.raises(InvalidMessage, match="UTF-8") as info:
        SMS("8613912345678", **kwargs)
    assert info.value.field == field


def test_uids_ignore_the_callers_random_seed() -> None:
    random.seed(7)
    first = new_uid()
    random.seed(7)
    assert new_uid() != first


#: Forks in an interpreter of its own: this one may run threads (a server of another
#: test), where fork() is unsafe, and Python 3.12 warns of it.
FORK_TWICE = """
import os
from haorui_async import new_uid
new_uid()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, new_uid().encode())
    os._exit(0)
os.close(write)
child = os.read(read, 64).decode()
os.waitpid(pid, 0)
print(child, new_uid())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_a_forked_child_draws_other_uids_than_its_parent() -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_TWICE], capture_output=True, text=True, timeout=60, check=True
    )
    child, parent = done.stdout.split()
    assert len(child) == len(parent) == 32
    assert child != parent
