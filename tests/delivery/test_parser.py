"""Reading delivery reports: recorded samples, every wire form, and generated junk."""

from __future__ import annotations

import json
import pickle
from typing import Any
from urllib.parse import urlencode

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haorui_async import HaoruiError
from haorui_async._delivery import (
    DeliveryReport,
    DeliveryState,
    InvalidDeliveryReport,
    parse_delivery_report,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

#: The report quoted in API.md, as the gateway family pushes it.
API_MD_SAMPLE = (
    b'{"uid": "tv-719b8afb-test", "message_id": "22281907", "DLRStatus": "Delivered", '
    b'"PhoneNumber": "56934449937"}'
)

#: Recorded shapes: (body, content type, query string, expected fields of the report).
SAMPLES: list[tuple[bytes, str | None, str, dict[str, Any]]] = [
    (
        API_MD_SAMPLE,
        JSON,
        "",
        {
            "uid": "tv-719b8afb-test",
            "message_id": "22281907",
            "status": "Delivered",
            "state": DeliveryState.DELIVERED,
            "phonenumber": "56934449937",
        },
    ),
    (
        # Every documented field, a 19-digit message id as a JSON number.
        b'{"uid": "row-42", "message_id": 2026083116353908975, "DLRStatus": "Undeliverable",'
        b' "PhoneNumber": "8613912345678", "SMSID": "a1b2c3", "ErrorCode": 34,'
        b' "ErrorDescription": "Absent subscriber", "ClientCost": 0.05, "Remarks": "x"}',
        "application/json; charset=utf-8",
        "",
        {
            "uid": "row-42",
            "message_id": "2026083116353908975",
            "status": "Undeliverable",
            "state": DeliveryState.FAILED,
            "phonenumber": "8613912345678",
            "sms_id": "a1b2c3",
            "error_code": "34",
            "error_description": "Absent subscriber",
            "client_cost": "0.05",
            "remarks": "x",
        },
    ),
    (
        # Lower-case names, as some clients send them.
        b'{"uid": "u1", "message_id": "7", "dlrstatus": "pending", "phonenumber": "56934449937"}',
        JSON,
        "",
        {"uid": "u1", "message_id": "7", "status": "pending", "state": DeliveryState.PENDING},
    ),
    (
        # A form body.
        b"uid=u2&message_id=2026083116353908975&DLRStatus=DND&PhoneNumber=56934449937"
        b"&ErrorCode=&ErrorDescription=Do+not+disturb",
        FORM,
        "",
        {
            "uid": "u2",
            "message_id": "2026083116353908975",
            "status": "DND",
            "state": DeliveryState.FAILED,
            "error_code": None,
            "error_description": "Do not disturb",
        },
    ),
    (
        # A GET push: everything in the query string.
        b"",
        None,
        "uid=u3&message_id=99&DLRStatus=Acknowledged&phone_number=56934449937",
        {
            "uid": "u3",
            "message_id": "99",
            "status": "Acknowledged",
            "state": DeliveryState.PENDING,
            "phonenumber": "56934449937",
        },
    ),
    (
        # JSON without a Content-Type; the caller's own token in the callback URL's query.
        b'{"message_id": "8", "DLRStatus": "Expired"}',
        None,
        "token=abc",
        {"uid": None, "message_id": "8", "status": "Expired", "state": DeliveryState.FAILED},
    ),
    (
        # A word this SDK does not know passes through.
        b'{"uid": "u4", "DLRStatus": "Buffered"}',
        JSON,
        "",
        {"uid": "u4", "message_id": None, "status": "Buffered", "state": DeliveryState.UNKNOWN},
    ),
    (
        # A form body sent as text/plain: read as a form.
        b"uid=u5&DLRStatus=Rejected",
        "text/plain",
        "",
        {"uid": "u5", "status": "Rejected", "state": DeliveryState.FAILED},
    ),
]


@pytest.mark.parametrize(("body", "content_type", "query", "expected"), SAMPLES)
def test_recorded_samples_are_read_field_by_field(
    body: bytes, content_type: str | None, query: str, expected: dict[str, Any]
) -> None:
    report = parse_delivery_report(body, content_type, query)
    assert {name: getattr(report, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("word", "state"),
    [
        ("Delivered", DeliveryState.DELIVERED),
        ("Failed", DeliveryState.FAILED),
        ("Undeliverable", DeliveryState.FAILED),
        ("Rejected", DeliveryState.FAILED),
        ("Expired", DeliveryState.FAILED),
        ("DND", DeliveryState.FAILED),
        ("Pending", DeliveryState.PENDING),
        ("Accepted", DeliveryState.PENDING),
        ("Acknowledged", DeliveryState.PENDING),
        ("Unknown", DeliveryState.UNKNOWN),
        ("SomethingNew", DeliveryState.UNKNOWN),
        (" delivered ", DeliveryState.DELIVERED),
        ("dnd", DeliveryState.FAILED),
    ],
)
def test_every_documented_status_word_has_its_state(word: str, state: DeliveryState) -> None:
    report = DeliveryReport.from_json({"DLRStatus": word, "uid": "u"})
    assert report.state is state
    assert report.status == word.strip()
    assert report.final is (state in (DeliveryState.DELIVERED, DeliveryState.FAILED))


def test_state_compares_equal_to_its_plain_word() -> None:
    assert DeliveryReport(status="Delivered", uid="u").state == "delivered"


def test_a_report_built_directly_derives_its_state_and_validates_its_fields() -> None:
    assert DeliveryReport(status="Expired", message_id="1").state is DeliveryState.FAILED
    with pytest.raises(TypeError, match="message_id"):
        DeliveryReport(status="Delivered", message_id=1)  # type: ignore[arg-type]  # the point


def test_a_19_digit_message_id_survives_exactly_as_number_and_as_string() -> None:
    for value in (2026083116353908975, "2026083116353908975", 123456789012345678901234567890):
        report = DeliveryReport.from_json({"message_id": value, "DLRStatus": "Delivered"})
        assert report.message_id == str(value)


def test_a_float_message_id_is_refused_because_it_may_have_lost_digits() -> None:
    with pytest.raises(InvalidDeliveryReport, match="message_id") as info:
        parse_delivery_report(b'{"message_id": 2.026083116353909e18, "DLRStatus": "x"}', JSON)
    assert info.value.field == "message_id"


def test_raw_keeps_every_field_under_its_original_name() -> None:
    report = parse_delivery_report(API_MD_SAMPLE[:-1] + b', "Extra": [1, 2]}', JSON, "token=t")
    assert report.raw["PhoneNumber"] == "56934449937"
    assert report.raw["Extra"] == [1, 2]
    assert report.raw["token"] == "t"


def test_the_body_wins_over_the_query_string() -> None:
    report = parse_delivery_report(b"uid=body&DLRStatus=Delivered", FORM, "UID=query&x=1")
    assert report.uid == "body"


def test_a_field_given_twice_alike_is_accepted() -> None:
    report = parse_delivery_report(b"uid=a&UID=a&DLRStatus=Delivered", FORM)
    assert report.uid == "a"


def test_form_body_in_the_charset_it_declares() -> None:
    body = "uid=u&DLRStatus=Delivered&Remarks=d%E9j%E0".encode("ascii")
    report = parse_delivery_report(body, "application/x-www-form-urlencoded; charset=latin-1")
    assert report.remarks == "déjà"


def test_a_blank_status_is_an_unknown_word_not_a_missing_field() -> None:
    report = DeliveryReport.from_json({"DLRStatus": " ", "uid": "u"})
    assert report.status == ""
    assert report.state is DeliveryState.UNKNOWN


def test_a_numeric_status_passes_through_as_its_text() -> None:
    report = DeliveryReport.from_json({"DLRStatus": 2, "message_id": 5})
    assert (report.status, report.state) == ("2", DeliveryState.UNKNOWN)


MALFORMED: list[tuple[bytes, str | None, str, str]] = [
    # (body, content type, query string, the field the error names)
    (b"", None, "", "body"),
    (b"   ", JSON, "", "body"),
    (b"{not json", JSON, "", "body"),
    (b"[1, 2]", JSON, "", "body"),
    (b'"Delivered"', JSON, "", "body"),
    (b"\xff\xfe\x00{", JSON, "", "body"),
    (b"[" * 100_000, JSON, "", "body"),
    (b'{"message_id": "1"}', JSON, "", "DLRStatus"),
    (b'{"DLRStatus": "Delivered"}', JSON, "", "message_id"),
    (b'{"DLRStatus": "Delivered", "uid": "", "message_id": " "}', JSON, "", "message_id"),
    (b'{"DLRStatus": "Delivered", "uid": true}', JSON, "", "uid"),
    (b'{"DLRStatus": ["Delivered"], "uid": "u"}', JSON, "", "DLRStatus"),
    (b'{"DLRStatus": "Delivered", "uid": "u", "PhoneNumber": {"a": 1}}', JSON, "", "PhoneNumber"),
    (b'{"DLRStatus": "Delivered", "uid": "u", "ClientCost": NaN}', JSON, "", "ClientCost"),
    (b'{"DLRStatus": "Delivered", "uid": "a", "UID": "b"}', JSON, "", "uid"),
    (b"uid=a&uid=b&DLRStatus=Delivered", FORM, "", "uid"),
    (b"uid=%ff&DLRStatus=Delivered", FORM, "", "body"),
    (b"uid=\xff&DLRStatus=Delivered", FORM, "", "body"),
    (b"uid=u&DLRStatus=Delivered", "application/x-www-form-urlencoded; charset=nope", "", "body"),
    (b"", None, "uid=%ff&DLRStatus=x", "query string"),
    (b"", None, "token=only", "DLRStatus"),
]


@pytest.mark.parametrize(("body", "content_type", "query", "field"), MALFORMED)
def test_malformed_input_raises_the_documented_error_naming_the_field(
    body: bytes, content_type: str | None, query: str, field: str
) -> None:
    with pytest.raises(InvalidDeliveryReport) as info:
        parse_delivery_report(body, content_type, query)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_invalid_delivery_report_belongs_to_the_sdk_tree_and_to_value_error() -> None:
    assert issubclass(InvalidDeliveryReport, HaoruiError)
    assert issubclass(InvalidDeliveryReport, ValueError)


def test_invalid_delivery_report_cuts_long_values_short_and_pickles() -> None:
    err = InvalidDeliveryReport("body", b"x" * 10_000, "expected a JSON object")
    assert len(str(err)) < 200
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.field, copy.value, copy.reason) == (err.field, err.value, err.reason)
    assert InvalidDeliveryReport("uid", "y" * 500, "r").value == "y" * 80 + "..."
    assert InvalidDeliveryReport("body", {"big": 1}, "r").value == "dict"
    assert str(InvalidDeliveryReport("body", object(), "r").value).startswith("<object")


@pytest.mark.parametrize("fields", [[("DLRStatus", "x")], "uid=u", None, {1: "x"}])
def test_from_json_refuses_anything_but_a_mapping_with_string_keys(fields: Any) -> None:
    with pytest.raises(InvalidDeliveryReport) as info:
        DeliveryReport.from_json(fields)
    assert info.value.field == "body"


def test_reports_are_frozen_and_compare_by_fields_not_raw() -> None:
    a = DeliveryReport.from_json({"uid": "u", "DLRStatus": "Delivered", "x": 1})
    b = DeliveryReport.from_json({"UID": "u", "dlr_status": "Delivered"})
    assert a == b
    assert hash(a) == hash(b)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        a.uid = "v"  # type: ignore[misc]  # the point of the test


# -- generated input: nothing escapes but the documented error --------------------------------

FIELD_NAMES = [
    "uid",
    "message_id",
    "DLRStatus",
    "PhoneNumber",
    "SMSID",
    "ErrorCode",
    "ErrorDescription",
    "ClientCost",
    "Remarks",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["Delivered", "DND", "Pending", ""]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _case_variants(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper(), name.replace("_", "")])


field_names = st.sampled_from(FIELD_NAMES).flatmap(_case_variants) | st.text(max_size=12)
content_types = st.sampled_from(
    [None, JSON, FORM, "text/plain", "", "application/json; charset=latin-1", "x/y; charset=zz"]
)


def _parses_or_raises_documented(
    body: bytes, content_type: str | None, query: bytes | str = b""
) -> None:
    try:
        report = parse_delivery_report(body, content_type, query)
    except InvalidDeliveryReport as exc:
        error: InvalidDeliveryReport = exc
        assert error.field
    else:
        assert isinstance(report.status, str)
        assert report.uid is not None or report.message_id is not None


#: Hypothesis fails an example that takes over 200 ms, which a plain parse can on a busy
#: machine; these tests are about what is raised, not how fast.
UNTIMED = settings(deadline=None)


@UNTIMED
@given(body=st.binary(max_size=300), content_type=content_types, query=st.binary(max_size=60))
def test_random_bytes_raise_nothing_but_invalid_delivery_report(
    body: bytes, content_type: str | None, query: bytes
) -> None:
    _parses_or_raises_documented(body, content_type, query)


@UNTIMED
@given(value=json_values, content_type=content_types)
def test_random_json_raises_nothing_but_invalid_delivery_report(
    value: object, content_type: str | None
) -> None:
    _parses_or_raises_documented(json.dumps(value).encode(), content_type)


@UNTIMED
@given(fields=st.dictionaries(field_names, json_values, max_size=12))
def test_random_mappings_raise_nothing_but_invalid_delivery_report(fields: dict[str, Any]) -> None:
    try:
        report = DeliveryReport.from_json(fields)
    except InvalidDeliveryReport as exc:
        error: InvalidDeliveryReport = exc
        assert error.field
    else:
        assert report.raw == fields


@UNTIMED
@given(
    fields=st.dictionaries(field_names, st.text(max_size=20), max_size=12),
    content_type=st.sampled_from([FORM, None]),
)
def test_random_forms_raise_nothing_but_invalid_delivery_report(
    fields: dict[str, str], content_type: str | None
) -> None:
    body = urlencode(fields).encode()
    _parses_or_raises_documented(body, content_type)
    _parses_or_raises_documented(b"", None, body)


@UNTIMED
@given(
    message_id=st.integers(min_value=0, max_value=10**30),
    uid=st.from_regex(r"[A-Za-z0-9-]{1,40}", fullmatch=True),
    status=st.text(min_size=1, max_size=20).filter(str.strip),
    names=st.permutations(["uid", "message_id", "DLRStatus"]).map(
        lambda order: [n.lower() if i % 2 else n.upper() for i, n in enumerate(order)]
    ),
    as_form=st.booleans(),
)
def test_valid_reports_round_trip_in_any_name_case_and_wire_form(
    message_id: int, uid: str, status: str, names: list[str], as_form: bool
) -> None:
    values = {"uid": uid, "message_id": str(message_id), "dlrstatus": status}
    fields = {name: values[name.lower()] for name in names}
    if as_form:
        report = parse_delivery_report(urlencode(fields).encode(), FORM)
    else:
        report = parse_delivery_report(json.dumps(fields).encode(), JSON)
    assert (report.uid, report.message_id, report.status) == (uid, str(message_id), status.strip())
    assert report.state is DeliveryState.from_status(status)
