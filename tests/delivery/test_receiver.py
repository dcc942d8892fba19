"""The ASGI receiver: over httpx.ASGITransport, and over a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import pytest

from haorui_async._delivery import DeliveryReport, DeliveryState
from haorui_async._receiver import DeliveryReportReceiver

from ._server import serving
from .conftest import Collector

REPORT = {"uid": "tv-719b8afb-test", "message_id": "22281907", "DLRStatus": "Delivered"}
PHONE = "56934449937"


@pytest.fixture
async def receiver(collector: Collector) -> AsyncIterator[DeliveryReportReceiver]:
    receiver = DeliveryReportReceiver(collector)
    yield receiver
    await receiver.aclose()


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


# -- unit tests over ASGITransport -----------------------------------------------------------


async def test_a_json_report_is_answered_200_and_handed_to_the_callback(
    receiver: DeliveryReportReceiver, collector: Collector
) -> None:
    async with client_for(receiver) as client:
        response = await client.post("/", json={**REPORT, "PhoneNumber": PHONE})
    assert response.status_code == 200
    await collector.wait_for(1)
    [report] = collector.reports
    assert (report.uid, report.message_id, report.state) == (
        "tv-719b8afb-test",
        "22281907",
        DeliveryState.DELIVERED,
    )


async def test_form_and_query_string_reports_are_accepted(
    receiver: DeliveryReportReceiver, collector: Collector
) -> None:
    async with client_for(receiver) as client:
        form = await client.post("/dlr", data={"uid": "f", "dlrstatus": "DND"})
        query = await client.get("/dlr", params={"uid": "q", "DLRStatus": "Pending"})
    assert (form.status_code, query.status_code) == (200, 200)
    await collector.wait_for(2)
    assert sorted((r.uid, r.status) for r in collector.reports) == [("f", "DND"), ("q", "Pending")]


async def test_a_malformed_report_gets_400_with_the_reason_and_the_next_one_still_arrives(
    receiver: DeliveryReportReceiver, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(receiver) as client:
        bad = await client.post("/", content=b"{oops", headers={"content-type": "application/json"})
        missing = await client.post("/", json={"uid": "u"})
        good = await client.post("/", json=REPORT)
    assert bad.status_code == 400
    assert bad.text.startswith("body: expected a JSON object")
    assert missing.status_code == 400
    assert missing.text.startswith("DLRStatus:")
    assert good.status_code == 200
    await collector.wait_for(1)
    assert [r.uid for r in collector.reports] == [REPORT["uid"]]
    assert any("malformed delivery report" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def test_other_methods_get_405_with_the_allowed_ones(
    receiver: DeliveryReportReceiver, collector: Collector, method: str
) -> None:
    async with client_for(receiver) as client:
        response = await client.request(method, "/", json=REPORT)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert receiver.pending == 0
    assert collector.reports == []


async def test_a_body_over_the_limit_gets_413(collector: Collector) -> None:
    receiver = DeliveryReportReceiver(collector, max_body_size=100)
    async with client_for(receiver) as client:
        response = await client.post("/", json={**REPORT, "Remarks": "x" * 200})
        small = await client.post("/", json=REPORT)
    assert (response.status_code, small.status_code) == (413, 200)
    await receiver.aclose()
    assert len(collector.reports) == 1


async def test_the_answer_does_not_wait_for_the_callback() -> None:
    release = asyncio.Event()
    finished: list[str | None] = []

    async def slow(report: DeliveryReport) -> None:
        await release.wait()
        finished.append(report.uid)

    receiver = DeliveryReportReceiver(slow)
    async with client_for(receiver) as client:
        response = await asyncio.wait_for(client.post("/", json=REPORT), 5)
    assert response.status_code == 200
    assert receiver.pending == 1
    assert finished == []
    release.set()
    await receiver.aclose()
    assert finished == [REPORT["uid"]]
    assert receiver.pending == 0


async def test_callback_failures_are_logged_as_warnings_without_the_phone_number_and_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivered: list[str | None] = []

    async def flaky(report: DeliveryReport) -> None:
        if report.uid == "boom":
            raise RuntimeError("database down")
        delivered.append(report.uid)

    receiver = DeliveryReportReceiver(flaky)
    caplog.set_level(logging.WARNING, logger="haorui_async")
    async with client_for(receiver) as client:
        first = await client.post("/", json={**REPORT, "uid": "boom", "PhoneNumber": PHONE})
        second = await client.post("/", json={**REPORT, "uid": "fine"})
    await receiver.aclose()
    assert (first.status_code, second.status_code) == (200, 200)
    assert delivered == ["fine"]
    [record] = [r for r in caplog.records if "callback failed" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "uid=boom" in record.getMessage()
    assert "message_id=22281907" in record.getMessage()
    assert "RuntimeError" in record.getMessage()
    assert PHONE not in record.getMessage()
    assert record.exc_info is not None


async def test_a_plain_function_works_as_the_callback() -> None:
    seen: list[str | None] = []
    receiver = DeliveryReportReceiver(lambda report: seen.append(report.uid))
    async with client_for(receiver) as client:
        response = await client.post("/", json=REPORT)
    await receiver.aclose()
    assert response.status_code == 200
    assert seen == [REPORT["uid"]]


async def test_past_max_pending_reports_get_503_so_the_gateway_pushes_them_again() -> None:
    release = asyncio.Event()

    async def stuck(report: DeliveryReport) -> None:
        await release.wait()

    receiver = DeliveryReportReceiver(stuck, max_pending=1)
    async with client_for(receiver) as client:
        first = await client.post("/", json=REPORT)
        second = await client.post("/", json=REPORT)
    assert (first.status_code, second.status_code) == (200, 503)
    assert second.headers["retry-after"] == "1"
    release.set()
    await receiver.aclose()


async def test_after_aclose_reports_get_503_and_aclose_is_idempotent(
    receiver: DeliveryReportReceiver, collector: Collector
) -> None:
    await receiver.aclose()
    await receiver.aclose()
    assert receiver.closed
    async with client_for(receiver) as client:
        response = await client.post("/", json=REPORT)
    assert response.status_code == 503
    assert collector.reports == []
    assert "closed" in repr(receiver)


async def test_aclose_cancels_callbacks_that_outlive_the_drain_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cancelled = asyncio.Event()

    async def forever(report: DeliveryReport) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    receiver = DeliveryReportReceiver(forever, drain_timeout=0.05)
    async with client_for(receiver) as client:
        assert (await client.post("/", json=REPORT)).status_code == 200
    await asyncio.sleep(0)
    await receiver.aclose()
    assert cancelled.is_set()
    assert receiver.pending == 0
    assert any("cancelled 1 delivery report" in r.getMessage() for r in caplog.records)
    # A cancelled callback is the receiver's doing, not a failure of the caller's code.
    assert not any("callback failed" in r.getMessage() for r in caplog.records)


async def test_a_client_that_goes_away_mid_body_gets_no_answer_and_no_callback(
    receiver: DeliveryReportReceiver, collector: Collector
) -> None:
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"uid": "u", ', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": [], "query_string": b""}
    await receiver(scope, receive, send)
    assert sent == []
    assert receiver.pending == 0
    assert collector.reports == []


async def test_websocket_scopes_are_refused(receiver: DeliveryReportReceiver) -> None:
    async def never() -> dict[str, Any]:
        raise AssertionError("not called")

    with pytest.raises(ValueError, match="websocket"):
        await receiver({"type": "websocket"}, never, never)  # type: ignore[arg-type]  # unused


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"on_report": "not callable"}, TypeError),
        ({"max_pending": 0}, ValueError),
        ({"max_body_size": True}, ValueError),
        ({"drain_timeout": -1.0}, ValueError),
        ({"drain_timeout": "10"}, ValueError),
    ],
)
def test_bad_options_are_refused_when_the_receiver_is_built(
    options: dict[str, Any], error: type[Exception]
) -> None:
    options.setdefault("on_report", print)
    with pytest.raises(error, match=next(iter(options)) if error is ValueError else "on_report"):
        DeliveryReportReceiver(**options)


async def test_mounted_in_starlette_under_a_path(collector: Collector) -> None:
    starlette_applications = pytest.importorskip("starlette.applications")
    receiver = DeliveryReportReceiver(collector)
    app = starlette_applications.Starlette()
    app.mount("/dlr", receiver)
    async with client_for(app) as client:
        response = await client.post("/dlr/", json=REPORT)
    await receiver.aclose()
    assert response.status_code == 200
    assert [r.uid for r in collector.reports] == [REPORT["uid"]]


# -- over a real uvicorn server on loopback -------------------------------------------------


@pytest.mark.integration
async def test_over_uvicorn_200_400_405_and_a_failing_callback_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    delivered: list[str | None] = []

    async def on_report(report: DeliveryReport) -> None:
        if report.uid == "boom":
            raise KeyError("no such row")
        delivered.append(report.uid)

    receiver = DeliveryReportReceiver(on_report)
    async with serving(receiver) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/", json={**REPORT, "uid": "boom"})).status_code == 200
        assert (await client.post("/", content=b"junk")).status_code == 400
        assert (await client.put("/", json=REPORT)).status_code == 405
        assert (await client.post("/", json={**REPORT, "uid": "ok"})).status_code == 200
    # Leaving `serving` shut uvicorn down, whose lifespan shutdown drained the callbacks.
    assert receiver.closed
    assert delivered == ["ok"]
    assert any("callback failed for uid=boom" in r.getMessage() for r in caplog.records)


@pytest.mark.integration
async def test_uvicorn_shutdown_waits_for_running_callbacks() -> None:
    finished: list[str | None] = []

    async def slow(report: DeliveryReport) -> None:
        await asyncio.sleep(0.2)
        finished.append(report.uid)

    receiver = DeliveryReportReceiver(slow)
    async with serving(receiver) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.post("/", json=REPORT)).status_code == 200
        assert finished == []
    assert finished == [REPORT["uid"]]


#: The load test's size: 1,000 reports, pushed over this many connections at once.
REPORTS = 1_000
CONNECTIONS = 20
#: The pushes take ~3 s on an idle 2-core machine: room for one four times slower and busy.
BUDGET = 45.0


async def push_reports(url: str, bodies: list[dict[str, str]]) -> list[int]:
    """Push every report, `CONNECTIONS` at a time; the HTTP statuses.

    A push waits for its turn here, not in httpx's pool: time spent queued in the pool counts
    against its pool timeout, so a thousand pushes queued at once end in `PoolTimeout` on a
    busy machine although the receiver answers every one (and the pool walks its whole queue
    on each answer, which makes the pushes three times slower).
    """
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    turns = asyncio.Semaphore(CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0) as client:

        async def push(body: dict[str, str]) -> int:
            async with turns:
                return (await client.post("/dlr", json=body)).status_code

        return await asyncio.gather(*(push(body) for body in bodies))


@pytest.mark.integration
@pytest.mark.slow
async def test_a_thousand_concurrent_reports_each_reach_the_callback_exactly_once(
    collector: Collector,
) -> None:
    receiver = DeliveryReportReceiver(collector)
    bodies = [
        {"uid": f"row-{n}", "message_id": str(2026083116353900000 + n), "DLRStatus": "Delivered"}
        for n in range(REPORTS)
    ]
    async with serving(receiver, http="auto") as url:
        statuses = await asyncio.wait_for(push_reports(url, bodies), BUDGET)
        await collector.wait_for(REPORTS)
    assert collections.Counter(statuses) == {200: REPORTS}
    counts = collections.Counter(r.uid for r in collector.reports)
    assert counts == collections.Counter(body["uid"] for body in bodies)
    assert {r.message_id for r in collector.reports} == {b["message_id"] for b in bodies}
