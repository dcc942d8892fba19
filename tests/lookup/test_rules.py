"""The lookup rule, over a table of answer shapes: found, not found, or unknown."""

from __future__ import annotations

import datetime
import decimal
import json

import pytest

from haorui_async._delivery import DeliveryState
from haorui_async._lookup import (
    LookupFailed,
    balance_request,
    delivery_status_request,
    read_balance,
    read_delivery_status,
)
from haorui_async._secrets import Secret

RECORD = {
    "message_id": "2026083116353908975",
    "uid": "u-1",
    "PhoneNumber": "8613912345678",
    "DLRStatus": "Delivered",
    "MessageParts": 2,
    "ClientCost": "0.0325",
    "ErrorCode": "000",
    "SentDateUTC": "2026-08-31T16:35:39",
}


def body(value: object) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    ("answer", "found"),
    [
        (RECORD, True),
        ([RECORD], True),
        ([{"message_id": "1", "uid": "other", "DLRStatus": "Delivered"}, RECORD], True),
        ({**RECORD, "uid": None}, True),  # a record naming no uid answers the query
        ({k.lower(): v for k, v in RECORD.items()}, True),
        ({"status": "F", "remarks": "Record not found"}, False),
        ({}, False),
        ([], False),
        ({**RECORD, "uid": "other"}, False),  # another message's record
        ({k: v for k, v in RECORD.items() if k != "DLRStatus"}, False),
        ({k: v for k, v in RECORD.items() if k != "message_id"}, False),
        ("Record not found", False),
        ([1, "x", None], False),
        ({**RECORD, "message_id": 1.5}, False),  # a float id lost digits: not a record
    ],
)
def test_a_lookup_finds_the_message_only_in_a_record_for_it(answer: object, found: bool) -> None:
    status = read_delivery_status(200, body(answer), uid="u-1")
    assert (status is not None) is found
    if status is not None:
        assert status.message_id == "2026083116353908975"
        assert status.uid == "u-1"


def test_a_lookup_by_message_id_wants_that_message_id() -> None:
    assert read_delivery_status(200, body(RECORD), message_id="2026083116353908975") is not None
    assert read_delivery_status(200, body(RECORD), message_id="1") is None


@pytest.mark.parametrize(
    ("status_code", "answer"),
    [(500, b"{}"), (503, b""), (404, b"{}"), (200, b"<html>"), (200, b"[" * 100_000)],
)
def test_an_answer_that_cannot_tell_is_unknown(status_code: int, answer: bytes) -> None:
    with pytest.raises(LookupFailed):
        read_delivery_status(status_code, answer, uid="u-1")


def test_a_found_record_is_read_exactly() -> None:
    status = read_delivery_status(200, body(RECORD), uid="u-1")
    assert status is not None
    assert status.state is DeliveryState.DELIVERED
    assert (status.parts, status.cost) == (2, decimal.Decimal("0.0325"))
    assert status.sent_at == datetime.datetime(
        2026, 8, 31, 16, 35, 39, tzinfo=datetime.timezone.utc
    )
    assert status.raw == RECORD


@pytest.mark.parametrize(
    ("answer", "amount", "currency"),
    [
        ({"BalanceAmount": 1000, "CurrenceCode": "UGX"}, "1000", "UGX"),
        ({"balanceamount": "12.50", "CurrencyCode": "USD"}, "12.50", "USD"),
        ({"BalanceAmount": 0.1}, "0.1", None),
    ],
)
def test_a_balance_is_an_exact_decimal(answer: object, amount: str, currency: str | None) -> None:
    balance = read_balance(200, body(answer))
    assert (balance.amount, balance.currency) == (decimal.Decimal(amount), currency)


@pytest.mark.parametrize("answer", [b"{}", b"[]", b'{"BalanceAmount": "lots"}', b"nope"])
def test_a_balance_answer_without_an_amount_is_unknown(answer: bytes) -> None:
    with pytest.raises(LookupFailed):
        read_balance(200, answer)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_lookup_requests_carry_the_credentials_and_the_keys(method: str) -> None:
    secret = Secret("p@ss")
    request = delivery_status_request(
        method=method, path="/api/GetDeliveryStatus", api_id="A", api_password=secret, uid="u 1"
    )
    wire = request.target + request.body
    assert b"GetDeliveryStatus" in request.target
    assert (b"u+1" in wire) if method == "GET" else (b'"uid":"u 1"' in wire)
    balance = balance_request(
        method=method, path="/api/CheckBalance", api_id="A", api_password=secret
    )
    assert balance.method == method
    assert balance.target.startswith(b"/api/CheckBalance")
    balance_wire = balance.target + balance.body
    assert (b"api_id=A" in balance_wire) if method == "GET" else (b'"api_id":"A"' in balance_wire)
    with pytest.raises(ValueError, match="uid, message_id"):
        delivery_status_request(method=method, path="/x", api_id="A", api_password=secret)
