"""A bulk run of 20,000 rows killed with SIGKILL mid-run, then rerun with --reconcile: every
row accepted exactly once, by the emulator's own counts (0 duplicates, 0 missing).

The emulator runs in a subprocess of its own, with a small latency (so requests are in flight
when the run is killed) and a share of answers lost after the message was accepted (so the
killed run leaves rows whose outcome is unknown although the gateway has them).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import re
import signal
import sqlite3
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from haorui_async.cli._bulk import fingerprint, generated_uid

from ._emulator import accepted_uids, emulator_process, env_for, job_of
from .conftest import eventually

ROWS = 20_000
#: The killed run has journaled this many rows as done before it is killed.
KILL_AFTER_DONE = 3_000
#: The second test, three runs, is about the run in between: fewer rows will do.
SHORT_ROWS = 6_000
SHORT_KILL_AFTER_DONE = 1_500
COMMAND = "from haorui_async.cli import main; main()"
#: How long a run may take to journal its rows before the kill: starting the interpreter and
#: importing the command alone takes seconds on a busy machine.
PROGRESS_TIMEOUT = 60.0
#: How long a whole rerun may take on a busy 2-core machine.
RUN_TIMEOUT = 180.0
#: The emulator: a realistic latency, and 5% of the answers lost after the message was
#: accepted (the client reads a connection reset: an unknown outcome).
EMULATOR_OPTIONS = ("--latency", "0.01", "--rate-lose-answer", "0.05", "--seed", "7")
RECONCILE = ("--reconcile", "--reconcile-settle", "0.3")
SUMMARY = re.compile(
    r"Reconciled ([\d,]+) unknown rows: ([\d,]+) had been accepted, ([\d,]+) had not "
    r"\(sent now\), ([\d,]+) could not be told\."
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def gateway() -> Iterator[str]:
    with emulator_process(*EMULATOR_OPTIONS) as base_url:
        yield base_url


def make_csv(path: Path, rows: int) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["phonenumber", "textmessage"])
        writer.writerows(["8613912345678", f"reconcile {n}"] for n in range(rows))
    return path


def journal_rows(path: Path) -> dict[int, tuple[str, str | None]]:
    """Each journaled row's state and outcome kind."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db, db:
        found = db.execute("SELECT row, state, kind FROM rows").fetchall()
    return {row: (state, kind) for row, state, kind in found}


def done_rows(path: Path) -> int:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db, db:
            (count,) = db.execute("SELECT count(*) FROM rows WHERE state = 'done'").fetchone()
    except sqlite3.OperationalError:
        return 0  # not created yet, or no table yet
    return int(count)


def unknown_rows(states: dict[int, tuple[str, str | None]]) -> set[int]:
    """The rows journaled without an outcome, or with the outcome "unknown"."""
    return {row for row, (state, kind) in states.items() if state != "done" or kind == "unknown"}


def outcome_lines(out: Path) -> dict[int, dict[str, Any]]:
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_row = {line["row"]: line for line in lines}
    assert len(by_row) == len(lines), "a row has two outcome lines"
    return by_row


def stats(base_url: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{base_url}/_emulator/stats", timeout=10).json()
    return answer


async def settled_stats(base_url: str) -> dict[str, Any]:
    """The emulator's counters once no request of the killed run is still being answered:
    its latency delays the acceptance of the requests in flight at the kill."""
    seen: list[dict[str, Any]] = []

    def still() -> bool:
        seen.append(stats(base_url))
        now = seen[-1]
        # Every request received has been handled (accepted: the only fault is a lost
        # answer, which accepts), and none came since the last look.
        return now["received"] == now["requests"] and len(seen) > 1 and now == seen[-2]

    await eventually(still, 30, every=0.3)
    return seen[-1]


def read_log(log: Path) -> str:
    """The stderr of a run, on one line (rich wraps it at 80 columns)."""
    return " ".join(log.read_text().split())


@contextlib.asynccontextmanager
async def bulk_run(
    base_url: str, csv_path: Path, out: Path, log: Path, *options: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """The bulk command in a subprocess, its stderr into `log`; killed on the way out if it
    is still running."""
    with log.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", COMMAND, "bulk", str(csv_path), "--out", str(out),
            "--sender-id", "HAORUI", "--concurrency", "100", *options,
            env=env_for(base_url),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def run_to_the_end(
    base_url: str, csv_path: Path, out: Path, log: Path, *options: str
) -> tuple[int, str]:
    """Run the bulk command to its end; its exit code and its stderr, one line."""
    async with bulk_run(base_url, csv_path, out, log, *options) as process:
        code = await asyncio.wait_for(process.wait(), RUN_TIMEOUT)
    return code, read_log(log)


async def kill_mid_run(
    base_url: str, csv_path: Path, out: Path, journal: Path, log: Path, *, rows: int, after: int
) -> dict[int, tuple[str, str | None]]:
    """Start the bulk command on `rows` rows, SIGKILL it once `after` are done; the
    journal."""
    async with bulk_run(base_url, csv_path, out, log) as process:
        await eventually(
            lambda: process.returncode is not None or done_rows(journal) >= after,
            PROGRESS_TIMEOUT,
            every=0.05,
        )
        assert process.returncode is None, f"it ended: {read_log(log)}"
        process.kill()
        assert await process.wait() == -signal.SIGKILL
    states = journal_rows(journal)
    assert len(states) < rows, "the run finished before it was killed"
    # Killed with requests in flight: their rows have no outcome.
    assert any(state == "attempting" for state, _ in states.values())
    # Answers lost before the kill: unknown outcomes of messages the gateway has.
    assert any(kind == "unknown" for _, kind in states.values())
    return states


def reconciliation_summary(stderr: str) -> tuple[int, int, int, int]:
    """The summary's "Reconciled N unknown rows: A had been accepted, B had not (sent now),
    C could not be told"."""
    match = SUMMARY.search(stderr)
    assert match is not None, stderr
    total, accepted, not_accepted, untold = (int(n.replace(",", "")) for n in match.groups())
    return total, accepted, not_accepted, untold


def check_reconciled(
    lines: dict[int, dict[str, Any]],
    unknown: set[int],
    accepted_before: Counter[str],
    summary: tuple[int, int, int, int],
) -> None:
    """The rows left unknown by earlier runs were settled as the gateway had them: the
    accepted ones recorded as sent by lookup, the others sent by the run that reconciled."""
    total, accepted, not_accepted, untold = summary
    had_them = {row for row in unknown if accepted_before[lines[row]["uid"]]}
    assert had_them, "no unknown row had been accepted: nothing to reconcile"
    assert (total, accepted, not_accepted, untold) == (
        len(unknown),
        len(had_them),
        len(unknown - had_them),
        0,
    )
    for row in unknown:
        line = lines[row]
        by_lookup = line.get("reconciled") is True and line["detail"].startswith("reconciled by")
        # Accepted before: settled by lookup, not sent again. Not accepted: sent now (its
        # answer may have been lost again, then found by the run's own reconciliation).
        assert by_lookup == (row in had_them), line


def check_every_row_accepted_once(base_url: str, csv_path: Path, out: Path, rows: int) -> None:
    """One "sent" line per row of the `rows`, and the emulator accepted each row's uid
    exactly once."""
    lines = outcome_lines(out)
    assert sorted(lines) == list(range(1, rows + 1))
    assert Counter(line["kind"] for line in lines.values()) == {"sent": rows}
    digest = fingerprint(csv_path)
    job = job_of(out.with_name(out.name + ".journal"))
    uids = [generated_uid(digest, row, job) for row in range(1, rows + 1)]
    assert [lines[row]["uid"] for row in range(1, rows + 1)] == uids
    # The emulator's own counts: nothing accepted twice, nothing missing.
    counts = stats(base_url)
    assert counts["duplicates"] == 0
    assert counts["accepted"] == rows
    assert counts["distinct_uids"] == rows
    assert accepted_uids(base_url) == Counter(dict.fromkeys(uids, 1))


async def test_a_run_killed_with_sigkill_then_reconciled_accepts_every_row_exactly_once(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = make_csv(tmp_path / "r.csv", ROWS)
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    states = await kill_mid_run(
        gateway, csv_path, out, journal, tmp_path / "first.log", rows=ROWS, after=KILL_AFTER_DONE
    )
    unknown = unknown_rows(states)
    await settled_stats(gateway)
    accepted_before = accepted_uids(gateway)
    assert sum(accepted_before.values()) >= KILL_AFTER_DONE

    code, stderr = await run_to_the_end(gateway, csv_path, out, tmp_path / "second.log", *RECONCILE)
    assert code == 0, stderr
    lines = outcome_lines(out)
    check_reconciled(lines, unknown, accepted_before, reconciliation_summary(stderr))
    check_every_row_accepted_once(gateway, csv_path, out, ROWS)
    assert {state for state, _ in journal_rows(journal).values()} == {"done"}


async def test_a_rerun_without_reconcile_leaves_unknown_rows_a_third_with_it_settles_them(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = make_csv(tmp_path / "r.csv", SHORT_ROWS)
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    await kill_mid_run(
        gateway,
        csv_path,
        out,
        journal,
        tmp_path / "first.log",
        rows=SHORT_ROWS,
        after=SHORT_KILL_AFTER_DONE,
    )

    code, stderr = await run_to_the_end(gateway, csv_path, out, tmp_path / "second.log")
    assert code == 3, stderr
    lines = outcome_lines(out)
    assert sorted(lines) == list(range(1, SHORT_ROWS + 1))
    unknown = {row for row, line in lines.items() if line["kind"] == "unknown"}
    assert unknown
    assert {line["kind"] for line in lines.values()} == {"sent", "unknown"}
    assert unknown == unknown_rows(journal_rows(journal))
    assert "Reconciled" not in stderr
    counts = await settled_stats(gateway)
    assert counts["duplicates"] == 0
    accepted_before = accepted_uids(gateway)
    # The unknown rows were neither reconciled nor sent again: no uid is there twice.
    assert set(accepted_before.values()) == {1}
    assert all(
        accepted_before[line["uid"]] == 1 for line in lines.values() if line["kind"] == "sent"
    )

    code, stderr = await run_to_the_end(gateway, csv_path, out, tmp_path / "third.log", *RECONCILE)
    assert code == 0, stderr
    lines = outcome_lines(out)
    check_reconciled(lines, unknown, accepted_before, reconciliation_summary(stderr))
    check_every_row_accepted_once(gateway, csv_path, out, SHORT_ROWS)
