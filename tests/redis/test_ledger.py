"""`Ledger` on a real redis-server: `begin` atomic across clients, what each transition
leaves in the entry, the rows enqueued, the campaign's input file, the server's clock."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable
from typing import cast

import pytest
import redis.asyncio

from haorui_async._exceptions import ConfigurationError
from haorui_async.redis._ledger import ATTEMPTING, DEFAULT_PREFIX, DONE, Ledger

from ._server import RedisServer

pytestmark = pytest.mark.integration

#: Seconds between the server's clock read by the test and by a script: one round trip or
#: two on a busy machine.
CLOCK_SLACK = 2.0
RECORD = {"row": 3, "line": 4, "uid": "u-1", "kind": "sent", "message_id": "17"}


@pytest.fixture
async def ledger(redis_client: redis.asyncio.Redis) -> Ledger:
    return Ledger(redis_client, "spring")


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[list[redis.asyncio.Redis]]:
    """Five clients of the same server: five workers' worth of ledgers."""
    made = [redis.asyncio.Redis.from_url(redis_server.url) for _ in range(5)]
    await made[0].flushdb()
    try:
        yield made
    finally:
        for client in made:
            await client.aclose()


async def test_begin_lets_exactly_one_of_many_concurrent_callers_send(
    clients: list[redis.asyncio.Redis],
) -> None:
    ledgers = [Ledger(client, "spring") for client in clients]
    found = await asyncio.gather(*(ledgers[n % 5].begin("u-1", 3, 4) for n in range(50)))
    assert sum(entry is None for entry in found) == 1
    # Every other caller got the entry the first one wrote, and no other was written.
    others = [entry for entry in found if entry is not None]
    assert len(others) == 49
    assert {(e.uid, e.state, e.row, e.line) for e in others} == {("u-1", ATTEMPTING, 3, 4)}
    assert len({e.attempted_at for e in others}) == 1
    assert len(await ledgers[0].entries()) == 1


async def test_begin_of_another_uid_is_independent(ledger: Ledger) -> None:
    assert await ledger.begin("u-1", 1, 2) is None
    assert await ledger.begin("u-2", 2, 3) is None
    assert [entry.uid for entry in await ledger.entries()] == ["u-1", "u-2"]


async def test_an_entry_begun_is_attempting_at_the_servers_time(ledger: Ledger) -> None:
    before = await ledger.now()
    assert await ledger.begin("u-1", 3, 4) is None
    after = await ledger.now()
    entry = await ledger.entry("u-1")
    assert entry is not None
    assert entry.attempted_at is not None
    assert (entry.uid, entry.state, entry.row, entry.line) == ("u-1", ATTEMPTING, 3, 4)
    # The server's clock, with the resolution of the script's JSON (14 digits: 0.1 ms).
    assert before - 1e-3 <= entry.attempted_at <= after + 1e-3
    assert entry.kind is None
    assert entry.record is None
    assert entry.ended_at is None
    assert entry.missed_at is None


async def test_times_come_from_the_server_not_the_callers_clock(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller whose wall clock is decades off still writes the server's times.
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    server_now = await ledger.now()
    assert server_now > 1_600_000_000  # the server's clock, not the caller's (1970)
    await ledger.begin("u-1", 3, 4)
    await ledger.ended_unknown("u-1")
    await ledger.missed("u-1")
    entry = await ledger.entry("u-1")
    assert entry is not None
    for moment in (entry.attempted_at, entry.ended_at, entry.missed_at):
        assert moment is not None
        assert abs(moment - server_now) < CLOCK_SLACK


async def test_now_is_the_servers_time_command(
    ledger: Ledger, redis_client: redis.asyncio.Redis
) -> None:
    seconds, micros = await cast("Awaitable[tuple[int, int]]", redis_client.time())
    assert abs(await ledger.now() - (seconds + micros / 1e6)) < CLOCK_SLACK


async def test_ended_unknown_then_missed_record_when_each_happened(ledger: Ledger) -> None:
    await ledger.begin("u-1", 3, 4)
    begun = await ledger.entry("u-1")
    await ledger.ended_unknown("u-1")
    ended = await ledger.entry("u-1")
    await ledger.missed("u-1")
    missed = await ledger.entry("u-1")
    assert begun is not None
    assert ended is not None
    assert missed is not None
    assert begun.attempted_at is not None
    assert ended.state == ATTEMPTING
    assert ended.missed_at is None
    assert ended.attempted_at == begun.attempted_at
    assert ended.ended_at is not None
    assert ended.ended_at >= begun.attempted_at
    assert missed.state == ATTEMPTING
    assert missed.ended_at == ended.ended_at
    assert missed.missed_at is not None
    assert missed.missed_at >= ended.ended_at
    # Still attempting: a later delivery is told so, and may not send.
    again = await ledger.begin("u-1", 3, 4)
    assert again is not None
    assert again.state == ATTEMPTING
    assert again.missed_at == missed.missed_at


async def test_attempt_again_starts_a_new_attempt_and_forgets_the_last_ones_times(
    ledger: Ledger,
) -> None:
    await ledger.begin("u-1", 3, 4)
    await ledger.ended_unknown("u-1")
    await ledger.missed("u-1")
    first = await ledger.entry("u-1")
    await ledger.attempt_again("u-1")
    second = await ledger.entry("u-1")
    assert first is not None
    assert second is not None
    assert first.attempted_at is not None
    assert second.attempted_at is not None
    assert second.state == ATTEMPTING
    assert (second.row, second.line) == (3, 4)
    assert second.ended_at is None
    assert second.missed_at is None
    assert second.attempted_at >= first.attempted_at
    assert abs(second.attempted_at - await ledger.now()) < CLOCK_SLACK
    # The raw entry holds nulls, which read back as None.
    raw = await cast(
        "Awaitable[bytes]", ledger.redis.hget(f"{DEFAULT_PREFIX}:spring:ledger", "u-1")
    )
    fields = json.loads(raw)
    assert fields["state"] == ATTEMPTING
    assert fields.get("ended_at") is None
    assert fields.get("missed_at") is None


async def test_finish_records_the_outcome_for_good(ledger: Ledger) -> None:
    await ledger.begin("u-1", 3, 4)
    await ledger.finish("u-1", "sent", RECORD)
    entry = await ledger.entry("u-1")
    assert entry is not None
    assert (entry.state, entry.kind, entry.row, entry.line) == (DONE, "sent", 3, 4)
    assert entry.record == RECORD
    assert entry.ended_at is not None
    assert entry.attempted_at is not None
    assert entry.ended_at >= entry.attempted_at
    # Every later delivery finds it done: nothing is sent again, nothing forgets it.
    again = await ledger.begin("u-1", 3, 4)
    assert again is not None
    assert again.state == DONE
    assert again.kind == "sent"
    await ledger.release("u-1")
    after = await ledger.entry("u-1")
    assert after is not None
    assert after.state == DONE
    assert after.record == RECORD


async def test_release_forgets_an_attempt_that_never_went_out(ledger: Ledger) -> None:
    await ledger.begin("u-1", 3, 4)
    await ledger.release("u-1")
    assert await ledger.entry("u-1") is None
    assert await ledger.entries() == []
    # The next delivery sends it as new.
    assert await ledger.begin("u-1", 3, 4) is None
    # Releasing what has no entry does nothing.
    await ledger.release("u-2")
    assert await ledger.entry("u-2") is None


async def test_entries_come_by_row(ledger: Ledger) -> None:
    for uid, row in (("c", 3), ("a", 1), ("b", 2)):
        await ledger.begin(uid, row, row + 1)
    await ledger.finish("b", "failed", {"row": 2, "kind": "failed"})
    entries = await ledger.entries()
    assert [(e.uid, e.row, e.state) for e in entries] == [
        ("a", 1, ATTEMPTING),
        ("b", 2, DONE),
        ("c", 3, ATTEMPTING),
    ]


async def test_rows_are_recorded_once_and_invalid_ones_apart(ledger: Ledger) -> None:
    assert await ledger.rows() == {}
    assert not await ledger.has_row(1)
    assert await ledger.add_row(1, "u-1") is True
    assert await ledger.add_row(1, "u-other") is False  # the first stays
    assert await ledger.add_row(2, "") is True
    assert await ledger.has_row(1)
    assert await ledger.has_row(2)
    await ledger.record_invalid(2, {"row": 2, "kind": "invalid", "detail": "line 3: bad"})
    assert await ledger.rows() == {1: "u-1", 2: ""}
    assert await ledger.invalid() == {2: {"row": 2, "kind": "invalid", "detail": "line 3: bad"}}


async def test_claim_ties_the_campaign_to_one_input_file(
    ledger: Ledger, redis_client: redis.asyncio.Redis
) -> None:
    await ledger.claim("f" * 64)
    await ledger.claim("f" * 64)  # the same file again: fine
    with pytest.raises(ConfigurationError, match="another input file"):
        await ledger.claim("e" * 64)
    # From another process's ledger as well; another campaign is free.
    with pytest.raises(ConfigurationError, match="spring"):
        await Ledger(redis_client, "spring").claim("e" * 64)
    await Ledger(redis_client, "autumn").claim("e" * 64)


async def test_campaigns_and_prefixes_keep_apart(redis_client: redis.asyncio.Redis) -> None:
    spring, autumn = Ledger(redis_client, "spring"), Ledger(redis_client, "autumn")
    other = Ledger(redis_client, "spring", prefix="elsewhere")
    await spring.begin("u-1", 1, 2)
    assert await autumn.begin("u-1", 1, 2) is None
    assert await other.begin("u-1", 1, 2) is None
    await spring.finish("u-1", "sent", RECORD)
    autumn_entry = await autumn.entry("u-1")
    assert autumn_entry is not None
    assert autumn_entry.state == ATTEMPTING
    assert other.entries_key == "elsewhere:spring:ledger"
    assert repr(spring) == "<Ledger campaign='spring'>"


async def test_claim_gives_each_campaign_one_job_id_for_good(
    redis_client: redis.asyncio.Redis,
) -> None:
    spring = Ledger(redis_client, "spring")
    job = await spring.claim("f" * 64)
    assert job
    assert await Ledger(redis_client, "spring").claim("f" * 64) == job
    # The same file under another name: another job, so other generated uids.
    assert await Ledger(redis_client, "autumn").claim("f" * 64) != job


async def test_a_uid_belongs_to_the_first_row_that_claims_it(ledger: Ledger) -> None:
    assert await ledger.claim_uid("u-1", 3) == 3
    assert await ledger.claim_uid("u-1", 3) == 3  # the same row again: still its own
    assert await ledger.claim_uid("u-1", 5) == 3
    assert await ledger.claim_uid("u-2", 5) == 5
