"""`haorui-async bulk`: every row accounted for, nothing sent twice, resumable."""

from __future__ import annotations

import contextlib
import csv
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from haorui_async._bulk import KINDS
from haorui_async._journal import Journal
from haorui_async.cli._app import app
from haorui_async.cli._bulk import fingerprint, generated_uid

from ._emulator import accepted_uids, emulator_process, env_for, job_of


@pytest.fixture(scope="module")
def gateway() -> Iterator[str]:
    with emulator_process("--latency", "0.002") as base_url:
        yield base_url


@pytest.fixture(scope="module")
def faulty_gateway() -> Iterator[str]:
    with emulator_process(
        "--rate-500",
        "0.05",
        "--rate-503",
        "0.05",
        "--rate-drop",
        "0.05",
        "--rate-malformed",
        "0.03",
        "--rate-429",
        "0.03",
        "--retry-after",
        "0",
        "--faults-accept",
        "--seed",
        "11",
    ) as base_url:
        yield base_url


def write_csv(path: Path, rows: list[list[str]], header: tuple[str, ...] = ()) -> Path:
    """A CSV file of `rows` under `header` (default: phonenumber, textmessage)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header or ("phonenumber", "textmessage"))
        writer.writerows(rows)
    return path


def recipients(path: Path, count: int, tag: str) -> Path:
    return write_csv(path, [["8613912345678", f"{tag} {n}"] for n in range(count)])


def run_bulk(base_url: str, *args: str | Path, env: Mapping[str, str | None] = {}) -> Result:
    """The bulk command against `base_url`; HAORUI_SENDER_ID unset unless `env` sets it."""
    return CliRunner().invoke(
        app,
        ["bulk", *map(str, args)],
        env={**env_for(base_url), "HAORUI_SENDER_ID": None, **env},
        catch_exceptions=False,
    )


def summary_rows(output: str) -> dict[str, int]:
    """The rows of the summary table: outcome label -> count."""
    rows = re.findall(r"^\W*([a-z_ ]+?)\W+([\d,]+)\W*$", output, flags=re.MULTILINE)
    return {label: int(count.replace(",", "")) for label, count in rows}


def outcomes(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_row_is_sent_once_and_has_one_outcome_line(gateway: str, tmp_path: Path) -> None:
    csv_path = recipients(tmp_path / "r.csv", 120, "every row")
    out = tmp_path / "out.jsonl"
    result = run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI")
    assert result.exit_code == 0, result.output
    lines = outcomes(out)
    assert sorted(line["row"] for line in lines) == list(range(1, 121))
    assert {line["kind"] for line in lines} == {"sent"}
    digest = fingerprint(csv_path)
    uids = [generated_uid(digest, n, job_of(tmp_path / "out.jsonl.journal")) for n in range(1, 121)]
    assert sorted(line["uid"] for line in lines) == sorted(uids)
    accepted = accepted_uids(gateway)
    assert all(accepted[uid] == 1 for uid in uids)
    assert (tmp_path / "out.jsonl.journal").exists()
    assert "sent" in result.output


def test_a_rerun_after_completion_sends_nothing_and_rewrites_the_same_outcomes(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 30, "rerun")
    out = tmp_path / "out.jsonl"
    assert run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI").exit_code == 0
    first = sorted(out.read_text().splitlines())
    assert run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI").exit_code == 0
    assert sorted(out.read_text().splitlines()) == first
    digest = fingerprint(csv_path)
    accepted = accepted_uids(gateway)
    job = job_of(tmp_path / "out.jsonl.journal")
    assert [accepted[generated_uid(digest, n, job)] for n in range(1, 31)] == [1] * 30


def test_bad_rows_are_reported_with_their_line_and_written_as_invalid(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = write_csv(
        tmp_path / "r.csv",
        [
            ["8613912345678", "fine", "row-ok-1", ""],
            ["12", "bad number", "row-bad-1", ""],
            [],
            ["8613912345678", "multi\nline text", "row-ok-2", "P"],
            ["8613912345678", "", "row-bad-2", ""],
            ["8613912345678", "too", "many", "fields", "here"],
            ["8613912345678", "bad type", "row-bad-3", "X"],
        ],
        header=("phonenumber", "textmessage", "uid", "sms_type"),
    )
    out = tmp_path / "out.jsonl"
    result = run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI")
    assert result.exit_code == 2, result.output
    by_row = {line["row"]: line for line in outcomes(out)}
    assert [by_row[n]["kind"] for n in range(1, 7)] == [
        "sent",
        "invalid",
        "sent",
        "invalid",
        "invalid",
        "invalid",
    ]
    # Lines count from the header (line 1); a blank line (skipped, no row) and a multi-line
    # record shift the later ones.
    assert [by_row[n]["line"] for n in (2, 3, 4, 5, 6)] == [3, 5, 7, 8, 9]
    assert by_row[2]["field"] == "phonenumber"
    assert "line 3: skipped: phonenumber" in result.output
    assert "line 8: skipped: expected 4 fields, got 5" in result.output
    assert accepted_uids(gateway)["row-ok-2"] == 1


def test_the_sender_id_comes_from_haorui_sender_id_when_not_given(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 5, "sender id from the environment")
    out = tmp_path / "out.jsonl"
    result = run_bulk(gateway, csv_path, "--out", out, env={"HAORUI_SENDER_ID": "HAORUI"})
    assert result.exit_code == 0, result.output
    assert [line["kind"] for line in outcomes(out)] == ["sent"] * 5


def test_the_summary_lists_every_outcome_kind(gateway: str, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "r.csv", [["8613912345678", "fine"], ["12", "bad number"]])
    result = run_bulk(gateway, csv_path, "--out", tmp_path / "o", "--sender-id", "HAORUI")
    assert result.exit_code == 2, result.output
    expected = dict.fromkeys(KINDS, 0) | {"sent": 1, "invalid": 1, "not yet attempted": 0}
    assert summary_rows(result.output) == expected


def test_a_rejected_row_is_recorded_with_each_fact_once(gateway: str, tmp_path: Path) -> None:
    csv_path = recipients(tmp_path / "r.csv", 1, "rejected")
    out = tmp_path / "out.jsonl"
    result = run_bulk(gateway + "/nowhere", csv_path, "--out", out, "--sender-id", "HAORUI")
    assert result.exit_code == 1, result.output
    [line] = outcomes(out)
    assert line["kind"] == "rejected"
    assert line["status_code"] == 404
    assert line["detail"].count("HTTP 404") == 1, line["detail"]
    assert line["uid"] not in line["detail"]
    assert summary_rows(result.output)["rejected"] == 1


def test_a_row_without_any_sender_id_is_invalid(gateway: str, tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path / "r.csv",
        [["8613912345678", "has one", "LIASMT"], ["8613912345678", "has none", ""]],
        header=("phonenumber", "textmessage", "sender_id"),
    )
    out = tmp_path / "out.jsonl"
    result = run_bulk(gateway, csv_path, "--out", out)
    assert result.exit_code == 2
    assert [line["kind"] for line in sorted(outcomes(out), key=lambda x: x["row"])] == [
        "sent",
        "invalid",
    ]


def test_rows_attempted_without_an_outcome_are_listed_unknown_and_not_resent(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 20, "crashed")
    out = tmp_path / "out.jsonl"
    digest = fingerprint(csv_path)
    # What a run killed right after journaling its first batch leaves behind.
    with Journal(tmp_path / "out.jsonl.journal", fingerprint=digest) as journal:
        job = journal.job
        journal.record_attempts((n, n + 1, generated_uid(digest, n, job)) for n in range(1, 6))
    result = run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI")
    assert result.exit_code == 3, result.output
    kinds = {line["row"]: line["kind"] for line in outcomes(out)}
    assert [kinds[n] for n in range(1, 21)] == ["unknown"] * 5 + ["sent"] * 15
    accepted = accepted_uids(gateway)
    assert [accepted[generated_uid(digest, n, job)] for n in range(1, 6)] == [0] * 5
    assert "5 rows may have been sent" in result.output

    # --resend-unknown takes the risk and sends them.
    result = run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI", "--resend-unknown")
    assert result.exit_code == 0, result.output
    assert {line["kind"] for line in outcomes(out)} == {"sent"}
    accepted = accepted_uids(gateway)
    assert [accepted[generated_uid(digest, n, job)] for n in range(1, 21)] == [1] * 20


def test_rows_journaled_but_forgotten_before_sending_are_sent_by_the_next_run(
    gateway: str, tmp_path: Path
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 10, "forgotten")
    out = tmp_path / "out.jsonl"
    digest = fingerprint(csv_path)
    with Journal(tmp_path / "out.jsonl.journal", fingerprint=digest) as journal:
        job = journal.job
        journal.record_attempts((n, n + 1, generated_uid(digest, n, job)) for n in range(1, 6))
        journal.forget([2, 3])
    result = run_bulk(gateway, csv_path, "--out", out, "--sender-id", "HAORUI")
    kinds = {line["row"]: line["kind"] for line in outcomes(out)}
    assert result.exit_code == 3
    assert [kinds[n] for n in range(1, 11)] == ["unknown", "sent", "sent", "unknown", "unknown"] + [
        "sent"
    ] * 5


def test_a_journal_of_another_input_is_refused(gateway: str, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = recipients(tmp_path / "a.csv", 2, "first input")
    assert run_bulk(gateway, first, "--out", out, "--sender-id", "HAORUI").exit_code == 0
    other = recipients(tmp_path / "b.csv", 2, "second input")
    result = run_bulk(gateway, other, "--out", out, "--sender-id", "HAORUI")
    assert result.exit_code == 2
    assert "different input" in result.output
    result = run_bulk(
        gateway, other, "--out", out, "--sender-id", "HAORUI", "--journal", tmp_path / "b.j"
    )
    assert result.exit_code == 0


def test_a_file_that_is_not_a_journal_is_refused(gateway: str, tmp_path: Path) -> None:
    csv_path = recipients(tmp_path / "r.csv", 1, "not a journal")
    (tmp_path / "j").write_text("this is not sqlite" * 100)
    result = run_bulk(
        gateway,
        csv_path,
        "--out",
        tmp_path / "o",
        "--journal",
        tmp_path / "j",
        "--sender-id",
        "HAORUI",
    )
    assert result.exit_code == 2
    assert "not a usable journal" in result.output


def test_a_journal_of_another_layout_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    Journal(path, fingerprint="f").close()
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE meta SET value = '0' WHERE key = 'version'")
    with pytest.raises(ValueError, match="layout version"):
        Journal(path, fingerprint="f")


def test_a_header_without_the_required_columns_exits_2(gateway: str, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "r.csv", [["x"]], header=("phonenumber", "number"))
    result = run_bulk(gateway, csv_path, "--out", tmp_path / "o", "--sender-id", "HAORUI")
    assert result.exit_code == 2, result.output
    assert "lacks the column(s) textmessage" in result.output
    assert not (tmp_path / "o").exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = run_bulk(gateway, empty, "--out", tmp_path / "o", "--sender-id", "HAORUI")
    assert result.exit_code == 2, result.output
    assert "lacks the column(s) phonenumber, textmessage" in result.output


def test_a_file_that_is_not_utf8_exits_2_naming_the_problem(gateway: str, tmp_path: Path) -> None:
    csv_path = tmp_path / "latin1.csv"
    csv_path.write_bytes("phonenumber,textmessage\n8613912345678,Grüße\n".encode("latin-1"))
    result = run_bulk(gateway, csv_path, "--out", tmp_path / "o", "--sender-id", "HAORUI")
    assert result.exit_code == 2, result.output
    assert f"{csv_path}: not UTF-8 text" in result.output
    assert not (tmp_path / "o").exists()


def test_an_outcomes_file_that_cannot_be_written_exits_2(gateway: str, tmp_path: Path) -> None:
    csv_path = recipients(tmp_path / "r.csv", 1, "nowhere to write")
    out = tmp_path / "missing" / "out.jsonl"
    result = run_bulk(
        gateway, csv_path, "--out", out, "--journal", tmp_path / "j", "--sender-id", "HAORUI"
    )
    assert result.exit_code == 2, result.output
    assert f"--out {out}: cannot write it" in result.output
    # The command stopped before it made a journal: no uid of this file was sent at all.
    assert not any(uid.startswith(fingerprint(csv_path)[:16]) for uid in accepted_uids(gateway))


def test_missing_credentials_exit_with_bad_input_before_anything(tmp_path: Path) -> None:
    csv_path = recipients(tmp_path / "r.csv", 1, "no credentials")
    env = {"HAORUI_API_ID": "", "HAORUI_API_PASSWORD": "", "HAORUI_BASE_URL": ""}
    result = CliRunner().invoke(app, ["bulk", str(csv_path), "--out", str(tmp_path / "o")], env=env)
    assert result.exit_code == 2
    assert "api_id" in result.output
    assert not (tmp_path / "o").exists()


def test_with_random_faults_every_row_has_one_outcome_and_no_uid_is_accepted_twice(
    faulty_gateway: str, tmp_path: Path
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 300, "faults")
    out = tmp_path / "out.jsonl"
    result = run_bulk(
        faulty_gateway, csv_path, "--out", out, "--sender-id", "HAORUI", "--concurrency", "20"
    )
    lines = outcomes(out)
    assert sorted(line["row"] for line in lines) == list(range(1, 301))
    kinds = {line["kind"] for line in lines}
    assert "unknown" in kinds
    assert result.exit_code == 3
    accepted = accepted_uids(faulty_gateway)
    assert max(accepted.values()) == 1
    for line in lines:
        if line["kind"] == "sent":
            assert accepted[line["uid"]] == 1
        elif not line["may_have_been_sent"]:
            assert accepted[line["uid"]] == 0
