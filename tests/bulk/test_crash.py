"""The bulk command killed mid-run (SIGKILL, SIGTERM), then run again: nothing sent twice."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from haorui_async.cli._bulk import fingerprint, generated_uid
from haorui_async.testing import Hang, serve
from haorui_async.testing._server import Emulator

from ._emulator import env_for, job_of
from .conftest import eventually

ROWS = 1500
COMMAND = "from haorui_async.cli import main; main()"
#: How long a bulk run may take to journal its first rows: on a busy machine starting the
#: interpreter and importing the command alone takes seconds.
PROGRESS_TIMEOUT = 30.0

pytestmark = pytest.mark.slow


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with serve(record="messages", latency=0.02) as running:
        yield running


def make_csv(path: Path, tag: str) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["phonenumber", "textmessage"])
        writer.writerows(["8613912345678", f"{tag} {n}"] for n in range(ROWS))
    return path


def journal_states(path: Path) -> dict[int, str]:
    # `closing`, also when the query fails (no table yet): the connection's own context
    # manager commits but never closes, and an unclosed one warns on Python 3.13.
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return dict(db.execute("SELECT row, state FROM rows").fetchall())


async def start_bulk(base_url: str, csv_path: Path, out: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", COMMAND, "bulk", str(csv_path), "--out", str(out),
        "--sender-id", "HAORUI", "--rate-limit", "400", "--concurrency", "40",
        env=env_for(base_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def wait_for_done_rows(journal: Path, at_least: int) -> None:
    def enough() -> bool:
        try:
            states = journal_states(journal)
        except sqlite3.OperationalError:
            return False  # not created yet, or no table yet
        return sum(1 for state in states.values() if state == "done") >= at_least

    await eventually(enough, PROGRESS_TIMEOUT, every=0.025)


async def read_until(stream: asyncio.StreamReader, text: str) -> None:
    """Read `stream` line by line until a line holds `text`; fail at its end."""
    while line := await stream.readline():
        if text in line.decode():
            return
    raise AssertionError(f"the output ended without {text!r}")


def outcome_lines(out: Path) -> dict[int, dict[str, object]]:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_row = {line["row"]: line for line in lines}
    assert len(by_row) == len(lines), "a row has two outcome lines"
    return by_row


async def test_a_run_killed_with_sigkill_resumes_without_sending_any_row_twice(
    emulator: Emulator, tmp_path: Path
) -> None:
    csv_path = make_csv(tmp_path / "r.csv", "sigkill")
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    first = await start_bulk(emulator.base_url, csv_path, out)
    await wait_for_done_rows(journal, 300)
    first.kill()
    assert await first.wait() == -signal.SIGKILL
    await first.communicate()
    after_kill = journal_states(journal)
    attempted_no_outcome = {row for row, state in after_kill.items() if state == "attempting"}
    assert len(after_kill) < ROWS, "the run finished before it was killed"
    # Killed with requests in flight: their rows have no outcome.
    assert attempted_no_outcome

    second = await start_bulk(emulator.base_url, csv_path, out)
    _, stderr = await second.communicate()
    assert second.returncode == 3, stderr.decode()

    lines = outcome_lines(out)
    assert sorted(lines) == list(range(1, ROWS + 1))
    digest = fingerprint(csv_path)
    for row, line in lines.items():
        uid = generated_uid(digest, row, job_of(journal))
        assert line["uid"] == uid
        accepted = emulator.count_for_uid(uid)
        # The gateway accepted each uid at most once, across both runs.
        assert accepted <= 1
        if row in attempted_no_outcome:
            assert line["kind"] == "unknown"
        else:
            assert line["kind"] == "sent"
            assert accepted == 1
    # Every row the killed run never reached was sent by the second one.
    assert all(lines[row]["kind"] == "sent" for row in range(max(after_kill) + 1, ROWS + 1))
    assert emulator.model.duplicates == 0
    assert set(journal_states(journal).values()) <= {"done", "attempting"}


async def test_sigterm_lets_sends_in_flight_finish_so_the_rerun_has_no_unknown_rows(
    emulator: Emulator, tmp_path: Path
) -> None:
    csv_path = make_csv(tmp_path / "r.csv", "sigterm")
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    first = await start_bulk(emulator.base_url, csv_path, out)
    await wait_for_done_rows(journal, 200)
    first.send_signal(signal.SIGTERM)
    _, stderr = await first.communicate()
    assert first.returncode == 130, stderr.decode()
    states = journal_states(journal)
    assert len(states) < ROWS
    assert set(states.values()) == {"done"}

    second = await start_bulk(emulator.base_url, csv_path, out)
    _, stderr = await second.communicate()
    assert second.returncode == 0, stderr.decode()
    lines = outcome_lines(out)
    assert sorted(lines) == list(range(1, ROWS + 1))
    assert {line["kind"] for line in lines.values()} == {"sent"}
    digest = fingerprint(csv_path)
    job = job_of(journal)
    assert all(emulator.count_for_uid(generated_uid(digest, r, job)) == 1 for r in lines)


async def test_a_second_sigterm_cancels_the_sends_in_flight_and_records_them_unknown(
    tmp_path: Path,
) -> None:
    async with serve(record="messages") as gateway:
        csv_path = make_csv(tmp_path / "r.csv", "twice")
        out = tmp_path / "out.jsonl"
        journal = tmp_path / "out.jsonl.journal"
        run = await start_bulk(gateway.base_url, csv_path, out)
        assert run.stderr is not None
        await wait_for_done_rows(journal, 40)
        # From now on the gateway never answers: the sends in flight stay in flight until
        # they are cancelled, however slowly this test gets to the second signal.
        gateway.faults.inject(Hang(), times=ROWS)
        await eventually(lambda: gateway.faults.served["hang"] > 0)
        run.send_signal(signal.SIGTERM)
        # Signals sent before the first is handled may merge into one.
        await asyncio.wait_for(read_until(run.stderr, "stopping:"), PROGRESS_TIMEOUT)
        run.send_signal(signal.SIGTERM)
        _, stderr = await run.communicate()
        assert run.returncode == 130, stderr.decode()
        states = journal_states(journal)
        # Every journaled row has an outcome: the cancelled ones are recorded as unknown.
        assert set(states.values()) == {"done"}
        lines = outcome_lines(out)
        assert sorted(lines) == sorted(states)
        unknown = [row for row, line in lines.items() if line["kind"] == "unknown"]
        assert unknown
        digest = fingerprint(csv_path)
        for row, line in lines.items():
            if line["kind"] == "sent":
                assert gateway.count_for_uid(generated_uid(digest, row, job_of(journal))) == 1
