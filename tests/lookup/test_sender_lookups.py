"""`AsyncSender.get_delivery_status()` and `check_balance()` at the HTTP boundary."""

from __future__ import annotations

import decimal
import json
import logging
import traceback

import httpx
import pytest

from haorui_async import AsyncSender, RetryPolicy
from haorui_async._lookup import LookupFailed

PASSWORD = "lo0k/up+p@ss"
RECORD = {"message_id": "77", "uid": "u-1", "DLRStatus": "Delivered"}


def sender(handler: httpx.MockTransport, **options: object) -> AsyncSender:
    async def no_sleep(seconds: float) -> None:
        return None

    return AsyncSender(
        api_id="A",
        api_password=PASSWORD,
        sender_id="HAORUI",
        transport=handler,
        retry=RetryPolicy(attempts=3),
        sleep=no_sleep,
        **options,  # type: ignore[arg-type]  # test options
    )


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_a_lookup_asks_the_family_endpoint_with_the_senders_method(method: str) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=RECORD)

    async with sender(httpx.MockTransport(handler), method=method) as s:
        status = await s.get_delivery_status(uid="u-1")
    assert status is not None
    assert status.message_id == "77"
    assert [(r.method, r.url.path) for r in seen] == [(method, "/api/GetDeliveryStatus")]


async def test_a_lookup_is_retried_on_any_failure_and_then_found() -> None:
    answers: list[httpx.Response | Exception] = [
        httpx.ReadTimeout("slow"),
        httpx.Response(500),
        httpx.Response(200, json=RECORD),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with sender(httpx.MockTransport(handler)) as s:
        status = await s.get_delivery_status(uid="u-1")
    assert status is not None


async def test_a_lookup_that_keeps_failing_is_lookup_failed_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"refused {request.url}")

    caplog.set_level(logging.DEBUG)
    async with sender(httpx.MockTransport(handler), method="GET") as s:
        with pytest.raises(LookupFailed) as info:
            await s.check_balance()
    text = "".join(traceback.format_exception(info.value)) + repr(info.value) + caplog.text
    assert "refused" in text
    for form in (PASSWORD, "lo0k%2Fup%2Bp%40ss"):
        assert form not in text


async def test_not_found_is_none_and_the_balance_is_exact() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("CheckBalance"):
            return httpx.Response(200, json={"BalanceAmount": "10.05", "CurrenceCode": "UGX"})
        params = json.loads(request.content)
        assert params["message_id"] == "77"
        return httpx.Response(200, json={"status": "F", "remarks": "Record not found"})

    async with sender(httpx.MockTransport(handler)) as s:
        assert await s.get_delivery_status(message_id="77") is None
        balance = await s.check_balance()
    assert balance.amount == decimal.Decimal("10.05")
