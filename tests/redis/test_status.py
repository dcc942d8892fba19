"""What `campaign status` reads of a row, on a real redis-server: its outcome once its job
recorded one, "in_progress" while its job runs, "unknown" once its job is over without an
outcome, and never "unknown" for a job that recorded its outcome and ended while the
status was being read (the ledger's entries read before the job ended, its state after)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

import pytest
import redis.asyncio
from arq.constants import in_progress_key_prefix

from haorui_async.cli._campaign import _read_status
from haorui_async.redis._ledger import Entry, Ledger
from haorui_async.redis._queue import job_id

pytestmark = pytest.mark.integration

CAMPAIGN = "spring"
ROW = 3
UID = "u-3"
RECORD = {"row": ROW, "line": ROW + 1, "uid": UID, "kind": "sent", "message_id": "17"}


@pytest.fixture
async def ledger(redis_client: redis.asyncio.Redis) -> Ledger:
    ledger = Ledger(redis_client, CAMPAIGN)
    assert await ledger.add_row(ROW, UID)
    return ledger


async def job_running(ledger: Ledger) -> None:
    """What arq writes while a worker runs the job of `ROW`: its in-progress key."""
    key = in_progress_key_prefix + job_id(CAMPAIGN, ROW)
    await cast("Awaitable[bool]", ledger.redis.set(key, b"1", px=60_000))


async def test_a_row_without_an_entry_is_queued(ledger: Ledger) -> None:
    rows, lines = await _read_status(ledger)
    assert rows == {ROW: ("queued", UID)}
    assert lines[ROW]["state"] == "queued"


async def test_a_row_whose_job_runs_is_in_progress(ledger: Ledger) -> None:
    assert await ledger.begin(UID, ROW, ROW + 1) is None
    await job_running(ledger)
    rows, lines = await _read_status(ledger)
    assert rows == {ROW: ("in_progress", UID)}
    assert lines[ROW] == {"row": ROW, "uid": UID, "kind": None, "state": "in_progress"}


async def test_a_row_whose_job_ended_without_an_outcome_is_unknown(ledger: Ledger) -> None:
    assert await ledger.begin(UID, ROW, ROW + 1) is None  # attempting; no job in arq
    rows, lines = await _read_status(ledger)
    assert rows == {ROW: ("unknown", UID)}
    assert lines[ROW]["may_have_been_sent"] is True
    assert lines[ROW]["detail"] == "its job ended without recording an outcome"


async def test_a_row_with_an_outcome_has_its_outcome(ledger: Ledger) -> None:
    assert await ledger.begin(UID, ROW, ROW + 1) is None
    await ledger.finish(UID, "sent", RECORD)
    rows, lines = await _read_status(ledger)
    assert rows == {ROW: ("sent", UID)}
    assert lines[ROW] == RECORD


class WorkerFinishesAfterTheRead(Ledger):
    """A ledger whose entries are read just before the job of `ROW` records its outcome
    and ends (its in-progress key gone): a worker finishing while the status reads."""

    async def entries(self) -> list[Entry]:
        read = await super().entries()
        await self.finish(UID, "sent", RECORD)
        await cast(
            "Awaitable[int]", self.redis.delete(in_progress_key_prefix + job_id(CAMPAIGN, ROW))
        )
        return read


async def test_a_job_that_ends_while_the_status_reads_has_its_outcome_not_unknown(
    redis_client: redis.asyncio.Redis,
) -> None:
    ledger = WorkerFinishesAfterTheRead(redis_client, CAMPAIGN)
    assert await ledger.add_row(ROW, UID)
    assert await ledger.begin(UID, ROW, ROW + 1) is None
    await job_running(ledger)
    rows, lines = await _read_status(ledger)
    assert [entry.state for entry in await Ledger.entries(ledger)] == ["done"]
    assert rows == {ROW: ("sent", UID)}
    assert lines[ROW] == RECORD
