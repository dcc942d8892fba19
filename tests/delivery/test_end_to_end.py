"""End to end: the loopback emulator pushes delivery reports to a receiver served by uvicorn."""

from __future__ import annotations

import asyncio
import collections

import pytest

from haorui_async import AsyncSender
from haorui_async._delivery import DeliveryState
from haorui_async._receiver import DeliveryReportReceiver
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, DEMO_SENDER_ID, serve

from ._server import serving
from .conftest import Collector

MESSAGES = 1_000
#: Sends in flight: the sender, the emulator, its pushes and the receiver share one event loop
#: here, so the sends are kept few; the reports still arrive in a burst (`DLR_DELAY`).
SENDS_IN_FLIGHT = 20
#: The emulator holds every report this long, so most of the 1,000 are pushed at once.
DLR_DELAY = 1.0
#: The whole exchange must end well inside the per-test timeout on a shared 2-core machine.
BUDGET = 45.0


@pytest.mark.integration
@pytest.mark.slow
async def test_emulator_pushes_a_thousand_reports_and_each_reaches_the_callback_exactly_once(
    collector: Collector,
) -> None:
    receiver = DeliveryReportReceiver(collector)
    async with (
        serving(receiver, http="auto") as receiver_url,
        serve(dlr_delay=DLR_DELAY) as emulator,
    ):
        callback_url = receiver_url + "/dlr"
        async with AsyncSender(
            api_id=DEMO_API_ID,
            api_password=DEMO_API_PASSWORD,
            sender_id=DEMO_SENDER_ID,
            base_url=emulator.base_url,
            max_concurrency=SENDS_IN_FLIGHT,
        ) as sender:
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        sender.send(
                            "8613912345678", f"code {n}", uid=f"row-{n}", callback_url=callback_url
                        )
                        for n in range(MESSAGES)
                    )
                ),
                BUDGET,
            )
        await collector.wait_for(MESSAGES, timeout=BUDGET)

        # Every push has been answered once the emulator has counted each one's fate.
        for _ in range(int(BUDGET / 0.05)):
            if sum(emulator.reports.values()) >= MESSAGES:
                break
            await asyncio.sleep(0.05)
        assert dict(emulator.reports) == {"sent": MESSAGES}
    counts = collections.Counter(report.uid for report in collector.reports)
    assert counts == collections.Counter(f"row-{n}" for n in range(MESSAGES))
    sent_ids = {result.uid: result.message_id for result in results}
    assert {r.uid: r.message_id for r in collector.reports} == sent_ids
    assert {r.state for r in collector.reports} == {DeliveryState.DELIVERED}
