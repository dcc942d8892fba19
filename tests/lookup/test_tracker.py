"""Delivery reports that settle unknown outcomes: the tracker's token and its uids."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from haorui_async import SMS, AsyncSender
from haorui_async._receiver import DeliveryReportReceiver
from haorui_async._reconcile import TOKEN_PARAMETER, DeliveryTracker

BASE = "https://me.example/dlr"


def client_for(receiver: DeliveryReportReceiver) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=receiver), base_url="http://t")


def report(uid: str) -> dict[str, str]:
    return {"uid": uid, "message_id": "42", "DLRStatus": "Delivered"}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


async def test_the_sender_stamps_its_messages_with_the_trackers_url_and_records_them() -> None:
    tracker = DeliveryTracker(BASE)
    seen: list[dict[str, str]] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"message_id": 1, "status": "S", "uid": seen[-1]["uid"]})

    async with AsyncSender(
        api_id="A",
        api_password="p",
        sender_id="HAORUI",
        transport=httpx.MockTransport(gateway),
        tracker=tracker,
    ) as sender:
        await sender.send("8613912345678", "hi", uid="u-1")
        await sender.send_message(SMS("8613912345678", "own", uid="u-2", callback_url=BASE + "2"))
    assert seen[0]["callback_url"] == tracker.callback_url
    assert parse_qs(urlsplit(seen[0]["callback_url"]).query)[TOKEN_PARAMETER] == [tracker.token]
    assert seen[1]["callback_url"] == BASE + "2"
    assert tracker.knows("u-1")
    assert not tracker.knows("u-2")  # its reports go elsewhere: they cannot settle it here


@pytest.mark.parametrize("token", [None, "", "wrong", "x" * 64])
async def test_a_report_without_the_right_token_is_403_and_changes_nothing(
    token: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = DeliveryTracker(BASE)
    tracker.sent("u-1")
    applied: list[object] = []
    receiver = DeliveryReportReceiver(applied.append, tracker=tracker)
    query = "" if token is None else f"?{TOKEN_PARAMETER}={token}"
    caplog.set_level(logging.DEBUG)
    async with client_for(receiver) as client:
        answer = await client.post(f"/dlr{query}", json=report("u-1"))
    await receiver.aclose()
    assert answer.status_code == 403
    assert tracker.report_for("u-1") is None
    assert applied == []
    assert tracker.token not in caplog.text


async def test_a_report_for_a_uid_never_sent_is_dropped() -> None:
    tracker = DeliveryTracker(BASE)
    tracker.sent("u-1")
    applied: list[object] = []
    receiver = DeliveryReportReceiver(applied.append, tracker=tracker)
    assert tracker.callback_url is not None
    async with client_for(receiver) as client:
        answer = await client.post(path_of(tracker.callback_url), json=report("never-sent"))
    await receiver.aclose()
    assert answer.status_code == 200
    assert tracker.report_for("never-sent") is None
    assert applied == []


@pytest.mark.parametrize("form", ["json", "query"])
async def test_a_report_with_the_token_for_a_sent_uid_is_applied(form: str) -> None:
    tracker = DeliveryTracker(BASE)
    tracker.sent("u-1")
    applied: list[object] = []
    receiver = DeliveryReportReceiver(applied.append, tracker=tracker)
    assert tracker.callback_url is not None
    url = path_of(tracker.callback_url)
    async with client_for(receiver) as client:
        if form == "json":
            answer = await client.post(url, json=report("u-1"))
        else:
            answer = await client.get(url + "&" + urlencode(report("u-1")))
    await receiver.aclose()
    assert answer.status_code == 200
    found = tracker.report_for("u-1")
    assert found is not None
    assert found.message_id == "42"
    assert TOKEN_PARAMETER not in found.raw  # the token is not kept with the report
    assert len(applied) == 1


def test_the_token_is_never_in_the_trackers_repr() -> None:
    tracker = DeliveryTracker(BASE)
    assert tracker.token not in repr(tracker)
    assert DeliveryTracker(BASE).token != tracker.token
