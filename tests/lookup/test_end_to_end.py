"""Against the loopback emulator: every message accepted exactly once, with answers lost."""

from __future__ import annotations

import httpx
import pytest

from haorui_async import SMS, AsyncSender, RetryPolicy
from haorui_async.testing import serve
from haorui_async.testing._model import DEMO_API_ID, DEMO_API_PASSWORD

COUNT = 2_000
#: Far above the emulator's lag on loopback, far below a test's patience.
SETTLE = 0.2


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("backend", ["httpx", "fast"])
async def test_with_answers_lost_after_and_before_acceptance_every_uid_is_accepted_once(
    backend: str,
) -> None:
    # 30% of requests are accepted and their answer lost; 10% are dropped before acceptance.
    async with (
        serve(rate_lose_answer=0.3, rate_drop=0.1, record="messages", seed=7) as emulator,
        AsyncSender(
            api_id=DEMO_API_ID,
            api_password=DEMO_API_PASSWORD,
            sender_id="HAORUI",
            base_url=emulator.base_url,
            backend=backend,  # type: ignore[arg-type]  # the parameter
            max_concurrency=100,
            retry=RetryPolicy(attempts=8, backoff_base=0.01),
            reconcile_unknown=True,
            reconcile_settle=SETTLE,
            deadline=120.0,
        ) as sender,
    ):
        messages = [SMS("8613912345678", f"code {n}", uid=f"e2e-{n}") for n in range(COUNT)]
        report = await sender.send_all(messages, concurrency=100)
        async with httpx.AsyncClient() as client:
            stats = (await client.get(emulator.base_url + "/_emulator/stats")).json()
            uids = (await client.get(emulator.base_url + "/_emulator/uids")).json()
    assert report.counts["sent"] == COUNT, report.counts
    assert stats["duplicates"] == 0
    accepted: dict[str, int] = uids["uids"]
    assert accepted == {f"e2e-{n}": 1 for n in range(COUNT)}
    # The faults did happen: some sends were settled by a lookup, some sent again.
    reconciled = sum(1 for o in report.outcomes if o.result is not None and o.result.reconciled)
    resent = sum(1 for o in report.outcomes if o.result is not None and o.result.attempts > 1)
    assert reconciled > 0
    assert resent > 0
