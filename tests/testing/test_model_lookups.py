"""The gateway model's lookups with plain values: GetDeliveryStatus and CheckBalance (no I/O).

Each answer is also read with the SDK's own pure readers, so the model and the SDK agree on
the family's format.
"""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from haorui_async._lookup import read_balance, read_delivery_status
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, GatewayModel
from haorui_async.testing._model import COST_PER_PART, FIRST_MESSAGE_ID

from .test_model import post

STATUS_PATH = "/api/GetDeliveryStatus"
BALANCE_PATH = "/api/CheckBalance"
NOT_FOUND = {"status": "F", "remarks": "Record not found"}


class Clock:
    """A clock that moves only when told: the lag is tested without waiting."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def credentials(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"api_id": DEMO_API_ID, "api_password": DEMO_API_PASSWORD}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def look_up(model: GatewayModel, **params: Any) -> tuple[int, dict[str, Any]]:
    reply = model.handle("POST", STATUS_PATH, b"", json.dumps(credentials(**params)).encode())
    answer: dict[str, Any] = json.loads(reply.body)
    return reply.status, answer


def test_a_lookup_by_uid_answers_the_familys_record() -> None:
    model = GatewayModel()
    post(model, uid="u-1", textmessage="hello")
    status, record = look_up(model, uid="u-1")
    assert status == 200
    sent = record.pop("SentDateUTC")
    assert record == {
        "message_id": str(FIRST_MESSAGE_ID),
        "uid": "u-1",
        "PhoneNumber": "8613912345678",
        "SMSMessage": "hello",
        "MessageType": "T",
        "MessageLength": 5,
        "MessageParts": 1,
        "ClientCost": COST_PER_PART,
        "DLRStatus": "Delivered",
        "SMSID": str(FIRST_MESSAGE_ID),
        "ErrorCode": "000",
        "ErrorDescription": "",
        "Remarks": "",
    }
    when = datetime.datetime.fromisoformat(sent.replace("Z", "+00:00"))
    assert when.tzinfo is not None


def test_the_sdk_reads_the_record_as_found() -> None:
    model = GatewayModel()
    post(model, uid="u-1", textmessage="x" * 161)
    reply = model.handle("POST", STATUS_PATH, b"", json.dumps(credentials(uid="u-1")).encode())
    found = read_delivery_status(reply.status, reply.body, uid="u-1")
    assert found is not None
    assert found.message_id == str(FIRST_MESSAGE_ID)
    assert found.state == "delivered"
    assert found.parts == 2
    assert found.cost == decimal.Decimal(2 * COST_PER_PART)
    assert found.sent_at is not None


def test_a_lookup_by_message_id_finds_a_message_without_uid() -> None:
    model = GatewayModel()
    message_id = post(model, uid=None)["message_id"]
    record = look_up(model, message_id=str(message_id))[1]
    assert record["message_id"] == str(message_id)
    assert record["uid"] is None
    # A JSON number is read as its digits, as SendSMS reads numbers.
    assert look_up(model, message_id=message_id)[1]["message_id"] == str(message_id)


def test_a_lookup_by_get_reads_the_query_string() -> None:
    model = GatewayModel()
    post(model, uid="g")
    reply = model.handle("GET", STATUS_PATH.lower(), urlencode(credentials(uid="g")))
    assert json.loads(reply.body)["uid"] == "g"


@pytest.mark.parametrize(
    "params",
    [
        {"uid": "never-sent"},
        {"message_id": "1"},
        {"message_id": "not-a-number"},
        {"message_id": "١٢"},
        {"message_id": str(FIRST_MESSAGE_ID), "uid": "another-uid"},
    ],
)
def test_a_lookup_of_an_unknown_message_is_record_not_found(params: dict[str, str]) -> None:
    model = GatewayModel()
    post(model, uid="u-1")
    reply = model.handle("POST", STATUS_PATH, b"", json.dumps(credentials(**params)).encode())
    assert (reply.status, json.loads(reply.body)) == (200, NOT_FOUND)
    assert read_delivery_status(reply.status, reply.body, uid=params.get("uid")) is None


def test_with_both_ids_a_lookup_needs_both_to_match() -> None:
    model = GatewayModel()
    message_id = post(model, uid="u-1")["message_id"]
    assert look_up(model, uid="u-1", message_id=str(message_id))[1]["uid"] == "u-1"


def test_a_message_is_not_found_until_the_lag_has_passed() -> None:
    clock = Clock()
    model = GatewayModel(lookup_lag=5.0, clock=clock)
    post(model, uid="late")
    clock.now += 4.999
    assert look_up(model, uid="late")[1] == NOT_FOUND
    clock.now += 0.001
    assert look_up(model, uid="late")[1]["uid"] == "late"


def test_a_duplicated_uid_answers_its_first_acceptance() -> None:
    model = GatewayModel()
    first = post(model, uid="dup", textmessage="first")["message_id"]
    post(model, uid="dup", textmessage="second")
    record = look_up(model, uid="dup")[1]
    assert record["message_id"] == str(first)
    assert record["SMSMessage"] == "first"


@pytest.mark.parametrize(
    ("params", "remarks"),
    [
        ({"api_password": "wrong"}, "Invalid API credentials"),
        ({"api_id": None}, "Missing parameter: api_id"),
        ({"api_password": "  "}, "Missing parameter: api_password"),
    ],
)
def test_lookups_check_credentials_as_send_sms_does(params: dict[str, Any], remarks: str) -> None:
    model = GatewayModel()
    post(model, uid="u-1")
    expected = {"message_id": None, "status": "F", "remarks": remarks, "uid": "u-1"}
    assert look_up(model, uid="u-1", **params) == (200, expected)
    assert post(model, **params) == expected
    balance = json.loads(model.handle("POST", BALANCE_PATH, b"", json.dumps(params).encode()).body)
    assert balance["status"] == "F"


def test_a_lookup_body_that_is_not_json_is_refused_as_send_sms_refuses_it() -> None:
    reply = GatewayModel().handle("POST", STATUS_PATH, b"", b"not json")
    assert json.loads(reply.body)["remarks"] == "Invalid request: the body is not a JSON object"


def test_a_lookup_without_uid_or_message_id_is_refused() -> None:
    answer = look_up(GatewayModel())[1]
    assert answer["status"] == "F"
    assert answer["remarks"] == "Missing parameter: message_id or uid"


@pytest.mark.parametrize("record", ["uids", "totals"])
def test_without_messages_kept_a_lookup_answers_501_never_not_found(record: Any) -> None:
    # "Not found" would tell a reconciling client that an accepted message was not: unsafe.
    model = GatewayModel(record=record)
    post(model, uid="u-1")
    status, answer = look_up(model, uid="u-1")
    assert status == 501
    assert "record='messages'" in answer["detail"]


def test_lookups_are_counted_apart_from_send_sms_requests() -> None:
    model = GatewayModel()
    post(model, uid="u-1")
    look_up(model, uid="u-1")
    look_up(model, uid="u-2", api_password="wrong")
    model.handle("GET", BALANCE_PATH, urlencode(credentials()))
    stats = model.stats()
    assert (stats["requests"], stats["accepted"], stats["failed"]) == (1, 1, 0)
    assert (stats["lookups"], stats["balance_checks"]) == (2, 1)
    model.reset()
    assert (model.lookups, model.balance_checks) == (0, 0)
    assert look_up(model, uid="u-1")[1] == NOT_FOUND


def test_other_methods_on_the_lookup_paths_are_refused() -> None:
    model = GatewayModel()
    assert model.handle("DELETE", STATUS_PATH).status == 405
    assert model.handle("PUT", BALANCE_PATH).status == 405


def test_the_balance_is_the_familys_example_by_default() -> None:
    reply = GatewayModel().handle("GET", BALANCE_PATH, urlencode(credentials()))
    assert json.loads(reply.body) == {"BalanceAmount": 1000, "CurrenceCode": "UGX"}
    balance = read_balance(reply.status, reply.body)
    assert (balance.amount, balance.currency) == (decimal.Decimal(1000), "UGX")


def test_the_balance_and_currency_are_configurable() -> None:
    model = GatewayModel(balance=12.34, currency="USD")
    reply = model.handle("POST", BALANCE_PATH, b"", json.dumps(credentials()).encode())
    assert reply.body == b'{"BalanceAmount":12.34,"CurrenceCode":"USD"}'
    assert read_balance(reply.status, reply.body).amount == decimal.Decimal("12.34")


def test_each_message_keeps_one_delivery_status_for_its_report_and_its_lookups() -> None:
    model = GatewayModel(dlr_statuses=(("Delivered", 1), ("Failed", 1)), seed=3)
    for i in range(40):
        post(model, uid=f"m{i}")
    statuses = [model.delivery_status(m) for m in model.messages]
    assert set(statuses) == {"Delivered", "Failed"}
    again = GatewayModel(dlr_statuses=(("Delivered", 1), ("Failed", 1)), seed=3)
    for message in model.messages:
        assert again.delivery_status(message) == model.delivery_status(message)
        assert look_up(model, uid=message.uid)[1]["DLRStatus"] == model.delivery_status(message)


def test_a_status_of_weight_zero_is_never_drawn() -> None:
    model = GatewayModel(dlr_statuses=(("Delivered", 0), ("Failed", 1)))
    post(model)
    assert look_up(model, uid="u-1")[1]["DLRStatus"] == "Failed"


@pytest.mark.parametrize(
    "options",
    [
        {"lookup_lag": -1.0},
        {"balance": float("inf")},
        {"balance": float("nan")},
        {"dlr_statuses": (("Delivered", 0),)},
    ],
)
def test_bad_lookup_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(options))):
        GatewayModel(**options)


def test_the_uids_endpoint_lists_counts_per_uid_in_every_mode_that_keeps_them() -> None:
    model = GatewayModel(record="uids")
    post(model, uid="a")
    post(model, uid="a")
    post(model, uid="b")
    page = json.loads(model.handle("GET", "/_emulator/uids").body)
    assert page == {"record": "uids", "uids": {"a": 2, "b": 1}}


def test_a_messages_page_shows_when_each_message_was_accepted_on_the_models_clock() -> None:
    now = [100.0]
    model = GatewayModel(clock=lambda: now[0])
    post(model)
    now[0] = 101.5
    post(model)
    page = json.loads(model.handle("GET", "/_emulator/messages").body)
    assert [m["accepted_at"] for m in page["messages"]] == [100.0, 101.5]
    # ... and only there: a lookup's record carries no clock reading.
    assert "accepted_at" not in model.messages[0].to_json()
