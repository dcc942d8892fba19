"""One uid names one message: repeated uids in a file, the same file as two jobs, and two
runs of one job at once."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from haorui_async.cli._bulk import fingerprint, generated_uid

from ._emulator import accepted_uids, emulator_process, env_for, job_of
from .conftest import eventually
from .test_cli import outcomes, recipients, run_bulk, write_csv

COMMAND = "from haorui_async.cli import main; main()"


def holds_a_job(journal: Path) -> bool:
    try:
        return bool(job_of(journal))
    except sqlite3.Error:
        return False  # not made yet, or no table yet


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with emulator_process("--latency", "0.002") as base_url:
        yield base_url


def test_a_uid_repeated_in_the_file_makes_the_later_row_invalid(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = write_csv(
        tmp_path / "r.csv",
        [
            ["8613912345678", "first", "order-1"],
            ["8613912345679", "second, same uid", "order-1"],
            ["8613912345670", "third", "order-3"],
        ],
        header=("phonenumber", "textmessage", "uid"),
    )
    out = tmp_path / "out.jsonl"
    result = run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI")
    assert result.exit_code == 2, result.output
    lines = {line["row"]: line for line in outcomes(out)}
    assert [lines[n]["kind"] for n in (1, 2, 3)] == ["sent", "invalid", "sent"]
    assert lines[2]["field"] == "uid"
    assert "already the uid of row 1" in lines[2]["detail"]
    accepted = accepted_uids(gateway)
    assert (accepted["order-1"], accepted["order-3"]) == (1, 1)


def test_the_same_file_as_a_new_job_gets_uids_of_its_own(gateway: str, tmp_path: Path) -> None:
    csv_path = recipients(tmp_path / "weekly.csv", 5, "weekly")
    first, second = tmp_path / "week1.jsonl", tmp_path / "week2.jsonl"
    for out in (first, second):
        assert run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI").exit_code == 0
    jobs = [job_of(out.with_name(out.name + ".journal")) for out in (first, second)]
    assert jobs[0] != jobs[1]
    digest = fingerprint(csv_path)
    accepted = accepted_uids(gateway)
    for job, out in zip(jobs, (first, second), strict=True):
        uids = [generated_uid(digest, n, job) for n in range(1, 6)]
        assert sorted(line["uid"] for line in outcomes(out)) == sorted(uids)
        # Each job sent its own messages: a lookup for one never finds the other's.
        assert [accepted[uid] for uid in uids] == [1] * 5


@pytest.mark.slow
async def test_a_second_run_of_a_job_in_progress_is_refused_and_sends_nothing(
    tmp_path: Path,
) -> None:
    with emulator_process("--latency", "0.5") as base_url:
        csv_path = recipients(tmp_path / "r.csv", 40, "at once")
        out = tmp_path / "out.jsonl"
        journal = tmp_path / "out.jsonl.journal"
        args = ["-c", COMMAND, "bulk", str(csv_path), "--out", str(out), "--sender-id", "HAORUI",
                "--concurrency", "4"]  # fmt: skip
        env = env_for(base_url)
        first = await asyncio.create_subprocess_exec(
            sys.executable, *args, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            # Wait until the first run holds the journal (it has journaled some rows).
            await eventually(lambda: holds_a_job(journal), 30.0)
            second = await asyncio.create_subprocess_exec(
                sys.executable, *args, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            _, stderr = await second.communicate()
            assert second.returncode == 2, stderr.decode()
            assert "another run of this job is in progress" in stderr.decode()
            assert await first.wait() == 0
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        accepted = accepted_uids(base_url)
        digest = fingerprint(csv_path)
        job = job_of(journal)
        assert [accepted[generated_uid(digest, n, job)] for n in range(1, 41)] == [1] * 40
        assert sum(accepted.values()) == 40
