from __future__ import annotations

import pytest

from haorui_async import SMS, NotSent, OutcomeUnknown, Rejected
from haorui_async._protocol import error_for_status, parse_retry_after, read_response

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),
        ("Tue, 14 Nov 2023 22:13:10 GMT", 0.0),
        ("Tue, 14 Nov 2023 22:13:30 -0000", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (408, NotSent),
        (429, NotSent),
        (503, NotSent),
        (400, Rejected),
        (302, Rejected),
        (501, Rejected),
        (505, Rejected),
        (500, OutcomeUnknown),
        (502, OutcomeUnknown),
        (504, OutcomeUnknown),
        (520, OutcomeUnknown),
    ],
)
def test_error_for_status(status: int, error: type[Exception]) -> None:
    exc = error_for_status(status, SMS("8613912345678", "hi"), attempts=1)
    assert type(exc) is error
    assert exc.status_code == status


def test_read_response_keeps_unknown_keys_and_lowercase_status() -> None:
    body = b'{"message_id": "0042", "status": " s ", "remarks": 7, "uid": 12, "new": true}'
    # The uid comes back as a number: still this message's.
    result = read_response(200, [], body, SMS("8613912345678", "hi", uid=12))
    assert (result.message_id, result.remarks, result.uid) == ("0042", "", "12")
    assert result.body["new"] is True


def test_read_response_status_f_without_remarks() -> None:
    from haorui_async import SubmissionFailed

    with pytest.raises(SubmissionFailed, match="no remarks") as info:
        read_response(200, [], b'{"status": "F"}', SMS("8613912345678", "hi"))
    assert info.value.remarks == ""


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # deep enough for a RecursionError in json.loads
        b'{"status": "S", "message_id": {"a": ' * 50_000 + b"1" + b"}" * 50_001,
        b"\xff\xfe not json",
        b'{"status": "S", "message_id": 1e999}',
        b'"S"',
    ],
)
def test_any_answer_that_does_not_parse_is_unknown_with_the_uid(body: bytes) -> None:
    sms = SMS("8613912345678", "hi", uid="u-1")
    with pytest.raises(OutcomeUnknown) as info:
        read_response(200, [], body, sms)
    assert info.value.uid == "u-1"
    assert info.value.may_have_been_sent


@pytest.mark.parametrize("status", ["S", "F"])
def test_an_answer_that_echoes_another_uid_is_unknown(status: str) -> None:
    # A stray answer on a kept-alive connection, taken for this message's.
    body = b'{"message_id": 7, "status": "%b", "remarks": "", "uid": "other"}' % status.encode()
    with pytest.raises(OutcomeUnknown, match="another message") as info:
        read_response(200, [], body, SMS("8613912345678", "hi", uid="mine"))
    assert info.value.uid == "mine"


def test_an_answer_that_echoes_no_uid_is_this_messages() -> None:
    body = b'{"message_id": 7, "status": "S", "remarks": "", "uid": null}'
    assert read_response(200, [], body, SMS("8613912345678", "hi", uid="mine")).uid is None


def test_the_status_is_named_once_in_the_error_text() -> None:
    exc = error_for_status(404, SMS("8613912345678", "hi"), attempts=1)
    assert str(exc).count("HTTP 404") == 1
