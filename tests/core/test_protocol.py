from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from haorui_async import SMS, InvalidMessage, NotSent, OutcomeUnknown, Rejected
from haorui_async._protocol import (
    RequestBuilder,
    _decode,
    build_params,
    error_for_status,
    parse_retry_after,
    read_response,
)
from haorui_async._secrets import Secret

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


# -- the POST body -------------------------------------------------------------------------

#: Text as callers write it: any character UTF-8 carries (lone surrogates are refused by SMS).
texts = st.text(st.characters(codec="utf-8"), min_size=1).filter(str.strip)
accounts = st.fixed_dictionaries(
    {
        "api_id": st.text(st.characters(codec="utf-8")),
        "api_password": st.text(st.characters(codec="utf-8")).map(Secret),
        "sms_type": st.sampled_from(["T", "P"]),
        "encoding": st.sampled_from(["T", "U", "auto"]),
        "sender_id": st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9]{1,11}", fullmatch=True)),
    }
)
messages = st.builds(
    SMS,
    st.from_regex(r"[1-9][0-9]{6,14}", fullmatch=True),
    texts,
    sms_type=st.sampled_from([None, "T", "P"]),
    encoding=st.sampled_from([None, "U", "auto"]),
    sender_id=st.one_of(st.none(), st.from_regex(r"[0-9]{1,15}", fullmatch=True)),
    uid=st.one_of(st.none(), st.from_regex(r"[\x21-\x7e]{1,100}", fullmatch=True)),
    callback_url=st.one_of(
        st.none(),
        st.from_regex(
            r"https?://[a-z]{1,9}\.example/[\x21-\x7e\u00e9\u4e2d]{0,30}", fullmatch=True
        ),
    ),
)


@given(messages, accounts)
def test_a_post_body_is_what_json_dumps_writes_of_the_parameters(
    sms: SMS, account: dict[str, Any]
) -> None:
    build = RequestBuilder(method="POST", path="/gw/api/SendSMS", **account)
    if sms.sender_id is None and account["sender_id"] is None:
        with pytest.raises(InvalidMessage, match="^sender_id: required"):
            build(sms)
        return
    request = build(sms)
    params = build_params(sms, **account)
    assert (request.method, request.target, request.body) == (
        "POST",
        b"/gw/api/SendSMS",
        json.dumps(params, separators=(",", ":")).encode("ascii"),
    )


@given(messages, accounts)
def test_a_get_carries_the_parameters_in_its_query(sms: SMS, account: dict[str, Any]) -> None:
    if sms.sender_id is None and account["sender_id"] is None:
        return
    request = RequestBuilder(method="GET", path="/gw/api/SendSMS", **account)(sms)
    path, _, query = request.target.decode("ascii").partition("?")
    assert (request.method, path, request.body) == ("GET", "/gw/api/SendSMS", b"")
    assert dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True)) == build_params(
        sms, **account
    )


def test_a_request_builder_hides_the_password() -> None:
    build = RequestBuilder(
        method="POST",
        path="/api/SendSMS",
        api_id="A1",
        api_password=Secret("hunter2"),
        sms_type="T",
        encoding="auto",
        sender_id="HAORUI",
    )
    request = build(SMS("8613912345678", "hi"))
    assert b'"api_password":"hunter2"' in request.body
    assert "hunter2" not in repr(build)
    assert "hunter2" not in repr(request)


# -- the answer's JSON ---------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
answer_bodies = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda value, before, after, codec: (before + json.dumps(value) + after).encode(codec),
        json_values,
        st.sampled_from(["", " ", "\n"]),
        st.sampled_from(["", " ", "\r\n", "x", "}"]),
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    ),
)


def loads_or_none(body: bytes) -> object:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@given(answer_bodies)
def test_the_answer_is_decoded_as_json_loads_decodes_it(body: bytes) -> None:
    assert _decode(body) == loads_or_none(body)
