"""The bulk journal's layout version 2: attempt times, delivery reports, the report token, the
upgrade of a version-1 journal, and refusing a file that is not a journal."""

from __future__ import annotations

import contextlib
import gc
import json
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from haorui_async import ConfigurationError, _journal
from haorui_async._journal import SCHEMA_VERSION, Journal, JournalRow

REPORT = {"uid": "u1", "message_id": "77", "DLRStatus": "Delivered", "price": 0.05}


def committed(path: Path, columns: str = "row, state") -> list[tuple[Any, ...]]:
    """What another connection sees of the rows: only what was committed."""
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT {columns} FROM rows ORDER BY row").fetchall()
    finally:
        db.close()


def committed_reports(path: Path) -> dict[str, Any]:
    return {
        uid: json.loads(report)
        for uid, report in committed(path, "uid, report")
        if report is not None
    }


def basics(row: JournalRow) -> tuple[object, ...]:
    """The fields of a row that layout version 1 had already."""
    return (row.row, row.line, row.uid, row.state, row.kind, row.outcome)


class FakeTime:
    """Stands in for the `time` module the journal reads: a wall clock set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return time.monotonic()


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    fake = FakeTime(1_700_000_000.25)
    monkeypatch.setattr(_journal, "time", fake)
    return fake


# -- attempted_at ----------------------------------------------------------------------------


def test_an_attempt_keeps_the_wall_clock_time_it_was_recorded_at(tmp_path: Path) -> None:
    path = tmp_path / "j"
    before = time.time()
    with Journal(path, fingerprint="f") as journal:
        journal.record_attempts([(1, 2, "u1")])
        after = time.time()
        (row,) = journal.rows()
    assert row.attempted_at is not None
    assert before <= row.attempted_at <= after
    assert committed(path, "attempted_at") == [(row.attempted_at,)]


def test_a_new_attempt_moves_the_time_and_an_outcome_keeps_it(
    tmp_path: Path, wall: FakeTime
) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f") as journal:
        journal.record_attempts([(1, 1, "u1"), (2, 2, "u2")])
        first = wall.now
        wall.now += 60.0
        journal.record_outcome(1, 1, "u1", "sent", "{}")
        journal.record_attempts([(2, 2, "u2")])  # sent again (--resend-unknown)
        journal.flush()
        assert [(r.row, r.state, r.attempted_at) for r in journal.rows()] == [
            (1, "done", first),
            (2, "attempting", first + 60.0),
        ]


def test_a_row_never_attempted_has_no_attempt_time(tmp_path: Path) -> None:
    with Journal(tmp_path / "j", fingerprint="f") as journal:
        journal.record_outcome(1, 1, None, "invalid", '{"bad":1}')
        journal.flush()
        (row,) = journal.rows()
        assert basics(row) == (1, 1, None, "done", "invalid", '{"bad":1}')
        assert row.attempted_at is None


# -- has_uid ---------------------------------------------------------------------------------


def test_has_uid_is_true_for_rows_that_may_have_gone_out(tmp_path: Path) -> None:
    with Journal(tmp_path / "j", fingerprint="f") as journal:
        assert not journal.has_uid("u1")
        journal.record_attempts([(1, 1, "u1"), (2, 2, "u2"), (3, 3, "u3")])
        journal.record_outcome(2, 2, "u2", "sent", "{}")
        journal.record_outcome(3, 3, "u3", "unknown", "{}")
        journal.record_outcome(4, 4, "u4", "invalid", "{}")
        journal.record_outcome(5, 5, None, "invalid", "{}")
        journal.flush()
        assert journal.has_uid("u1")  # attempting
        assert journal.has_uid("u2")  # done, sent
        assert journal.has_uid("u3")  # done, unknown
        assert not journal.has_uid("u4")  # invalid: nothing went out
        assert not journal.has_uid("never")
        assert not journal.has_uid("U1")


def test_a_forgotten_row_is_no_longer_known(tmp_path: Path) -> None:
    with Journal(tmp_path / "j", fingerprint="f") as journal:
        journal.record_attempts([(1, 1, "u1")])
        journal.forget([1])
        assert not journal.has_uid("u1")


# -- reports ---------------------------------------------------------------------------------


def test_a_report_is_seen_while_pending_and_committed_with_the_next_attempts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f", outcome_max_age=3600) as journal:
        journal.record_attempts([(1, 1, "u1")])
        commits = journal.commits
        journal.record_report("u1", REPORT)
        assert journal.commits == commits  # batched, like outcomes
        assert committed_reports(path) == {}
        assert journal.report_for("u1") == REPORT
        journal.record_attempts([(2, 2, "u2")])
        assert journal.commits == commits + 1
        assert committed_reports(path) == {"u1": REPORT}
        assert journal.report_for("u1") == REPORT
        assert journal.report_for("u2") is None
        row = next(journal.rows())
        assert row.report == REPORT
        assert row.state == "attempting"


def test_flush_commits_reports(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f", outcome_max_age=3600) as journal:
        journal.record_attempts([(1, 1, "u1")])
        journal.record_report("u1", REPORT)
        journal.flush()
        assert committed_reports(path) == {"u1": REPORT}


def test_closing_commits_reports_and_a_reopened_journal_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path, fingerprint="f", outcome_max_age=3600)
    journal.record_attempts([(1, 1, "u1"), (2, 2, "u2")])
    journal.record_outcome(1, 1, "u1", "sent", "{}")
    journal.record_report("u1", REPORT)
    journal.close()
    assert committed_reports(path) == {"u1": REPORT}
    with Journal(path, fingerprint="f") as journal:
        assert journal.report_for("u1") == REPORT
        assert journal.report_for("u2") is None
        assert [r.report for r in journal.rows()] == [REPORT, None]


def test_reports_count_towards_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f", outcome_batch=3, outcome_max_age=3600) as journal:
        journal.record_attempts([(1, 1, "u1"), (2, 2, "u2")])
        journal.record_outcome(1, 1, "u1", "sent", "{}")
        journal.record_report("u1", REPORT)
        assert committed(path) == [(1, "attempting"), (2, "attempting")]
        journal.record_report("u2", {**REPORT, "uid": "u2"})
        assert committed(path) == [(1, "done"), (2, "attempting")]
        assert committed_reports(path) == {"u1": REPORT, "u2": {**REPORT, "uid": "u2"}}


def test_the_latest_report_wins_in_memory_and_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "j"
    pending = {**REPORT, "DLRStatus": "Pending"}
    with Journal(path, fingerprint="f", outcome_max_age=3600) as journal:
        journal.record_attempts([(1, 1, "u1")])
        journal.record_report("u1", pending)
        journal.flush()
        journal.record_report("u1", REPORT)
        assert journal.report_for("u1") == REPORT  # pending beats committed
        journal.flush()
        assert journal.report_for("u1") == REPORT
    assert committed_reports(path) == {"u1": REPORT}


def test_a_report_keeps_text_unescaped_and_values_json_cannot_hold_as_text(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f") as journal:
        journal.record_attempts([(1, 1, "u1")])
        journal.record_report("u1", {"remarks": "已送达", "at": Path("x")})
        assert journal.report_for("u1") == {"remarks": "已送达", "at": "x"}
    (raw,) = committed(path, "report")
    assert "已送达" in raw[0]


def test_a_report_keeps_its_delivery_state_and_the_latest_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f", outcome_max_age=3600) as journal:
        journal.record_attempts([(1, 1, "u1"), (2, 2, "u2")])
        journal.record_report("u1", {**REPORT, "DLRStatus": "Pending"}, delivery="pending")
        journal.flush()
        journal.record_report("u1", REPORT, delivery="delivered")
        journal.record_report("u2", {**REPORT, "uid": "u2"})
        assert committed(path, "uid, delivery") == [("u1", "pending"), ("u2", None)]
        journal.flush()
        assert [(r.uid, r.delivery) for r in journal.rows()] == [("u1", "delivered"), ("u2", None)]
    assert committed(path, "uid, delivery") == [("u1", "delivered"), ("u2", None)]


def test_awaiting_reports_counts_sent_rows_without_a_final_report(tmp_path: Path) -> None:
    with Journal(tmp_path / "j", fingerprint="f", outcome_max_age=3600) as journal:
        # Rows 1-5 went out with the job's callback URL; row 6 with one of its own.
        journal.record_attempts([(n, n, f"u{n}", True) for n in range(1, 6)])
        journal.record_attempts([(6, 6, "u6", False)])
        for n, kind in enumerate(["sent", "sent", "sent", "failed", "sent", "sent"], start=1):
            if n != 5:
                journal.record_outcome(n, n, f"u{n}", kind, "{}")
        journal.record_report("u1", REPORT, delivery="delivered")
        journal.record_report("u2", REPORT, delivery="pending")
        # Pending outcomes and reports count too: u2 (pending) and u3 (no report); not u5
        # (no outcome yet), nor u6, whose reports go elsewhere.
        assert journal.awaiting_reports(["delivered", "failed"]) == 2
        journal.record_report("u2", REPORT, delivery="failed")
        assert journal.awaiting_reports(["delivered", "failed"]) == 1


# -- the report token ------------------------------------------------------------------------


def test_the_report_token_is_made_once_and_kept_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f") as journal:
        assert not journal.has_report_token()
        token = journal.report_token()
        assert journal.has_report_token()
        assert journal.report_token() == token
    with Journal(path, fingerprint="f") as journal:
        assert journal.has_report_token()
        assert journal.report_token() == token
    assert len(token) >= 32
    with Journal(tmp_path / "other", fingerprint="f") as journal:
        assert journal.report_token() != token


# -- layout versions -------------------------------------------------------------------------


def write_version_1(path: Path, fingerprint: str) -> None:
    """A journal as version 1 wrote it: no attempt times, no reports, no uid index."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.executescript(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE rows (
                row INTEGER PRIMARY KEY,
                line INTEGER NOT NULL,
                uid TEXT,
                state TEXT NOT NULL,
                kind TEXT,
                outcome TEXT
            );
            """
        )
        db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("version", "1"), ("fingerprint", fingerprint)],
        )
        db.executemany(
            "INSERT INTO rows (row, line, uid, state, kind, outcome) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (1, 2, "u1", "done", "sent", '{"row":1}'),
                (2, 3, "u2", "attempting", None, None),
                (3, 4, None, "done", "invalid", '{"row":3}'),
            ],
        )
    finally:
        db.close()


def meta_of(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT key, value FROM meta").fetchall())
    finally:
        db.close()


def test_a_version_1_journal_is_upgraded_in_place_and_keeps_its_rows(
    tmp_path: Path, wall: FakeTime
) -> None:
    path = tmp_path / "j"
    write_version_1(path, "f")
    with Journal(path, fingerprint="f") as journal:
        rows = list(journal.rows())
        assert [basics(row) for row in rows] == [
            (1, 2, "u1", "done", "sent", '{"row":1}'),
            (2, 3, "u2", "attempting", None, None),
            (3, 4, None, "done", "invalid", '{"row":3}'),
        ]
        assert [(r.attempted_at, r.report, r.delivery) for r in rows] == [(None, None, None)] * 3
        assert journal.last_row() == 3
        assert journal.has_uid("u1")
        assert journal.has_uid("u2")
        # The new columns work on the old rows.
        journal.record_report("u1", REPORT, delivery="delivered")
        journal.record_attempts([(2, 3, "u2")])
        token = journal.report_token()
    # No job id: the uids its earlier runs generated had none, and must stay as they were.
    assert meta_of(path) == {"version": SCHEMA_VERSION, "fingerprint": "f", "token": token}
    assert journal.job == ""
    assert committed(path, "row, attempted_at") == [(1, None), (2, wall.now), (3, None)]
    assert committed_reports(path) == {"u1": REPORT}
    assert committed(path, "row, delivery") == [(1, "delivered"), (2, None), (3, None)]
    # Opened again, it is a journal of the current layout like any other.
    with Journal(path, fingerprint="f") as journal:
        assert journal.report_for("u1") == REPORT
        assert journal.report_token() == token


def test_a_version_1_journal_of_another_input_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    write_version_1(path, "f")
    with pytest.raises(ConfigurationError, match="different input"):
        Journal(path, fingerprint="other")


def test_a_journal_of_an_unknown_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f"):
        pass
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'version'")
    db.close()
    with pytest.raises(ConfigurationError, match="layout version '99'"):
        Journal(path, fingerprint="f")


# -- a file that is not a journal ------------------------------------------------------------


class Connections:
    """Wraps `sqlite3.connect` to keep every connection the journal opened (Python 3.11's
    sqlite3 warns of none left open; 3.13's ResourceWarning is checked as well)."""

    def __init__(self) -> None:
        self.opened: list[sqlite3.Connection] = []
        self.connect = sqlite3.connect

    def __call__(self, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = self.connect(*args, **kwargs)
        self.opened.append(db)
        return db

    def all_closed(self) -> bool:
        for db in self.opened:
            try:
                db.execute("SELECT 1")
            except sqlite3.ProgrammingError:
                continue
            return False
        return True


@pytest.mark.parametrize(
    "content",
    [
        b"row,phone,text\n1,8613912345678,hello\n",
        b"SQLite format 3\x00" + b"\xff" * 84,
        bytes(range(256)) * 16,
    ],
    ids=["csv", "bad-header", "binary"],
)
def test_a_file_that_is_not_a_journal_is_refused_and_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    path = tmp_path / "recipients.csv"
    path.write_bytes(content)
    connections = Connections()
    monkeypatch.setattr(sqlite3, "connect", connections)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(ConfigurationError, match="not a usable journal"):
            Journal(path, fingerprint="f")
        gc.collect()
    assert len(connections.opened) == 1
    assert connections.all_closed()
    assert path.read_bytes() == content  # nothing written to it


def test_a_refused_journal_is_closed_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f"):
        pass
    connections = Connections()
    monkeypatch.setattr(sqlite3, "connect", connections)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with pytest.raises(ConfigurationError, match="different input"):
            Journal(path, fingerprint="other")
        gc.collect()
    assert len(connections.opened) == 1
    assert connections.all_closed()


def test_a_version_2_journal_gets_the_columns_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "j"
    write_version_1(path, "f")
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        # What layout 2 had: every column but `tracked`.
        for name, kind in [("attempted_at", "REAL"), ("report", "TEXT"),
                           ("delivery", "TEXT"), ("ended_at", "REAL")]:  # fmt: skip
            db.execute(f"ALTER TABLE rows ADD COLUMN {name} {kind}")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'version'")
    with Journal(path, fingerprint="f") as journal:
        journal.record_attempts([(4, 5, "u4", True)])
        assert journal.job == ""
    assert meta_of(path)["version"] == SCHEMA_VERSION


def test_a_new_journal_has_a_job_id_of_its_own(tmp_path: Path) -> None:
    with (
        Journal(tmp_path / "a", fingerprint="f") as a,
        Journal(tmp_path / "b", fingerprint="f") as b,
    ):
        assert len(a.job) == 8
        assert a.job != b.job
    with Journal(tmp_path / "a", fingerprint="f") as again:
        assert again.job == a.job


def test_a_second_run_of_one_job_at_once_is_refused(tmp_path: Path) -> None:
    with (
        Journal(tmp_path / "j", fingerprint="f"),
        pytest.raises(ConfigurationError, match="another run of this job is in progress"),
    ):
        Journal(tmp_path / "j", fingerprint="f")
    # Closed, it opens again.
    Journal(tmp_path / "j", fingerprint="f").close()
