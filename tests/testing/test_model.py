"""The gateway model with plain values: validation, answers, records (no I/O)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest

from haorui_async.testing import (
    DEMO_API_ID,
    DEMO_API_PASSWORD,
    GatewayModel,
    delivery_report,
)
from haorui_async.testing._model import FIRST_MESSAGE_ID

PATH = "/api/SendSMS"


def params(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "api_id": DEMO_API_ID,
        "api_password": DEMO_API_PASSWORD,
        "sms_type": "T",
        "encoding": "T",
        "sender_id": "HAORUI",
        "phonenumber": "8613912345678",
        "textmessage": "hello",
        "uid": "u-1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def post(model: GatewayModel, **changes: Any) -> dict[str, Any]:
    reply = model.handle("POST", PATH, b"", json.dumps(params(**changes)).encode())
    assert reply.status == 200
    answer: dict[str, Any] = json.loads(reply.body)
    return answer


def test_a_valid_post_is_accepted_with_the_documented_answer() -> None:
    model = GatewayModel()
    answer = post(model)
    assert answer == {
        "message_id": FIRST_MESSAGE_ID,
        "status": "S",
        "remarks": "Message Submitted Sucessfully",
        "uid": "u-1",
    }
    assert set(answer) == {"message_id", "status", "remarks", "uid"}
    assert model.messages[0].textmessage == "hello"
    assert model.messages[0].method == "POST"


def test_a_valid_get_is_accepted_from_the_query_string() -> None:
    model = GatewayModel()
    reply = model.handle("GET", PATH, urlencode(params()).encode())
    assert json.loads(reply.body)["status"] == "S"
    assert reply.accepted is not None
    assert reply.accepted.method == "GET"


def test_a_form_encoded_post_is_accepted() -> None:
    model = GatewayModel()
    reply = model.handle(
        "POST", PATH, b"", urlencode(params()).encode(), "application/x-www-form-urlencoded"
    )
    assert json.loads(reply.body)["status"] == "S"


def test_message_ids_increase_by_one() -> None:
    model = GatewayModel(first_message_id=7)
    ids = [post(model, uid=f"u{i}")["message_id"] for i in range(3)]
    assert ids == [7, 8, 9]


def test_uid_is_null_in_the_answer_when_absent() -> None:
    model = GatewayModel()
    answer = post(model, uid=None)
    assert answer["uid"] is None
    assert model.uids == {}


def test_a_numeric_json_phonenumber_is_taken_as_its_digits() -> None:
    model = GatewayModel()
    assert post(model, phonenumber=8613912345678)["status"] == "S"
    assert model.messages[0].phonenumber == "8613912345678"


@pytest.mark.parametrize(
    "name",
    ["api_id", "api_password", "sms_type", "encoding", "sender_id", "phonenumber", "textmessage"],
)
def test_each_missing_required_parameter_fails_with_status_f(name: str) -> None:
    model = GatewayModel()
    answer = post(model, **{name: None})
    assert answer["status"] == "F"
    assert name in answer["remarks"]
    assert answer["uid"] == "u-1"
    assert model.accepted == 0
    assert model.failed == 1


def test_a_blank_required_parameter_counts_as_missing() -> None:
    answer = post(GatewayModel(), textmessage="   ")
    assert answer["remarks"] == "Missing parameter: textmessage"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("sms_type", "X"),
        ("encoding", "Z"),
        ("sender_id", "WAY-TOO-LONG-SENDER"),
        ("phonenumber", "+8613912345678"),
        ("phonenumber", "0139123"),
        ("callback_url", "ftp://example.invalid/x"),
        ("callback_url", "http://[::1"),
        ("textmessage", ["a", "list"]),
    ],
)
def test_a_malformed_parameter_fails_with_status_f(name: str, value: object) -> None:
    answer = post(GatewayModel(), **{name: value})
    assert answer["status"] == "F"
    assert name in answer["remarks"]


def test_flash_encodings_and_lower_case_types_are_accepted() -> None:
    model = GatewayModel()
    assert post(model, encoding="UFS", sms_type="p")["status"] == "S"
    assert model.messages[0].sms_type == "P"


def test_unknown_credentials_fail_with_status_f() -> None:
    model = GatewayModel()
    answer = post(model, api_password="wrong")
    assert answer == {
        "message_id": None,
        "status": "F",
        "remarks": "Invalid API credentials",
        "uid": "u-1",
    }


def test_configured_accounts_replace_the_demo_account() -> None:
    model = GatewayModel({"API1": "pw1"})
    assert post(model)["status"] == "F"
    assert post(model, api_id="API1", api_password="pw1")["status"] == "S"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
def test_a_post_body_that_is_not_a_json_object_fails_with_status_f(body: bytes) -> None:
    reply = GatewayModel().handle("POST", PATH, b"", body)
    assert json.loads(reply.body)["status"] == "F"


def test_a_form_body_that_is_not_utf8_fails_with_status_f() -> None:
    reply = GatewayModel().handle(
        "POST", PATH, b"", b"\xff\xfe", "application/x-www-form-urlencoded"
    )
    assert json.loads(reply.body)["status"] == "F"


def test_other_methods_and_paths_are_refused() -> None:
    model = GatewayModel()
    assert model.handle("PUT", PATH).status == 405
    assert model.handle("GET", "/api/Nothing").status == 404
    assert model.requests == 0


def test_the_path_is_case_insensitive() -> None:
    reply = GatewayModel().handle("GET", "/API/sendsms", urlencode(params()))
    assert json.loads(reply.body)["status"] == "S"


def test_counts_per_uid_and_duplicates_are_kept() -> None:
    model = GatewayModel()
    post(model, uid="a")
    post(model, uid="a")
    post(model, uid="b")
    assert model.count_for_uid("a") == 2
    assert model.count_for_uid("missing") == 0
    assert model.duplicates == 1
    assert [m.message_id for m in model.messages_for_uid("a")] == [
        FIRST_MESSAGE_ID,
        FIRST_MESSAGE_ID + 1,
    ]
    assert model.stats() == {
        "requests": 3,
        "accepted": 3,
        "failed": 0,
        "duplicates": 1,
        "distinct_uids": 2,
        "lookups": 0,
        "balance_checks": 0,
        "record": "messages",
    }


def test_record_uids_keeps_counts_but_no_messages() -> None:
    model = GatewayModel(record="uids")
    post(model, uid="a")
    post(model, uid="a")
    assert model.messages == []
    assert model.count_for_uid("a") == 2
    assert model.duplicates == 1


def test_record_totals_keeps_no_state_per_message() -> None:
    model = GatewayModel(record="totals")
    body = json.dumps(params()).encode()
    for _ in range(20_000):
        model.handle("POST", PATH, b"", body)
    assert model.accepted == 20_000
    assert model.messages == []
    assert len(model.uids) == 0


def test_an_unknown_record_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="record"):
        GatewayModel(record="everything")  # type: ignore[arg-type]


def test_reset_forgets_messages_but_ids_keep_increasing() -> None:
    model = GatewayModel()
    post(model)
    model.reset()
    assert model.accepted == 0
    assert model.messages == []
    assert post(model)["message_id"] == FIRST_MESSAGE_ID + 1


def test_the_stats_and_messages_endpoints_answer_json() -> None:
    model = GatewayModel()
    post(model, uid="a")
    post(model, uid="b")
    stats = json.loads(model.handle("GET", "/_emulator/stats").body)
    assert stats["accepted"] == 2
    page = json.loads(model.handle("GET", "/_emulator/messages", b"uid=b").body)
    assert [m["uid"] for m in page["messages"]] == ["b"]
    everything = json.loads(model.handle("GET", "/_emulator/messages").body)
    assert len(everything["messages"]) == 2
    assert "api_password" not in everything["messages"][0]


def test_a_delivery_report_has_the_family_format() -> None:
    model = GatewayModel()
    reply = model.handle("POST", PATH, b"", json.dumps(params()).encode())
    assert reply.accepted is not None
    assert delivery_report(reply.accepted, "Failed") == {
        "uid": "u-1",
        "message_id": str(FIRST_MESSAGE_ID),
        "DLRStatus": "Failed",
        "PhoneNumber": "8613912345678",
    }
