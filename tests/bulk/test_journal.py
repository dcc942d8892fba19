"""The bulk journal: group commit, outcomes flushed by count and age, rows forgotten."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from haorui_async._journal import Journal, JournalRow


def committed(path: Path) -> dict[int, str]:
    """The rows another connection sees: only what was committed."""
    # `closing`: the connection's own context manager commits but never closes.
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT row, state FROM rows").fetchall())


def test_attempts_are_committed_in_one_transaction_with_the_pending_outcomes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f") as journal:
        journal.record_attempts([(1, 2, "u1"), (2, 3, "u2")])
        assert committed(path) == {1: "attempting", 2: "attempting"}
        journal.record_outcome(1, 2, "u1", "sent", '{"row":1}')
        assert committed(path)[1] == "attempting"
        before = journal.commits
        journal.record_attempts([(3, 4, "u3")])
        assert journal.commits == before + 1
        assert committed(path) == {1: "done", 2: "attempting", 3: "attempting"}
        assert journal.last_row() == 3
        first = next(journal.rows())
        assert first == JournalRow(
            1,
            2,
            "u1",
            "done",
            "sent",
            '{"row":1}',
            attempted_at=first.attempted_at,
            ended_at=first.ended_at,
        )
        assert first.attempted_at is not None
        assert first.ended_at is not None
        assert first.ended_at >= first.attempted_at


def test_outcomes_are_committed_once_the_batch_is_full(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f", outcome_batch=3, outcome_max_age=3600) as journal:
        journal.record_attempts([(n, n, f"u{n}") for n in range(1, 5)])
        for n in (1, 2):
            journal.record_outcome(n, n, f"u{n}", "sent", "{}")
        assert set(committed(path).values()) == {"attempting"}
        journal.record_outcome(3, 3, "u3", "unknown", "{}")
        assert committed(path) == {1: "done", 2: "done", 3: "done", 4: "attempting"}


def test_outcomes_are_committed_once_the_oldest_is_old_enough(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f", outcome_batch=1000, outcome_max_age=0.05) as journal:
        journal.record_attempts([(1, 1, "a"), (2, 2, "b")])
        journal.record_outcome(1, 1, "a", "sent", "{}")
        assert committed(path)[1] == "attempting"
        time.sleep(0.06)
        journal.record_outcome(2, 2, "b", "sent", "{}")
        assert committed(path) == {1: "done", 2: "done"}


def test_closing_commits_the_pending_outcomes(tmp_path: Path) -> None:
    path = tmp_path / "j"
    journal = Journal(path, fingerprint="f", outcome_max_age=3600)
    journal.record_attempts([(1, 1, "a")])
    journal.record_outcome(1, 1, "a", "failed", "{}")
    journal.close()
    assert committed(path) == {1: "done"}


def test_forget_removes_attempting_rows_but_never_a_recorded_outcome(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f") as journal:
        journal.record_attempts([(1, 1, "a"), (2, 2, "b"), (3, 3, "c")])
        journal.record_outcome(1, 1, "a", "sent", "{}")
        journal.flush()
        journal.forget([1, 2])
        journal.forget([])
        assert committed(path) == {1: "done", 3: "attempting"}


def test_a_failed_write_is_rolled_back_and_the_journal_stays_usable(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="f") as journal:
        with pytest.raises(sqlite3.Error):  # ProgrammingError; InterfaceError before 3.11
            # The second row's uid cannot be stored: the whole batch is refused.
            journal.record_attempts([(1, 1, "a"), (2, 2, object())])  # type: ignore[list-item]
        assert committed(path) == {}
        journal.record_attempts([(1, 1, "a")])
        assert committed(path) == {1: "attempting"}


def test_reopening_with_the_same_fingerprint_keeps_the_rows(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, fingerprint="abc") as journal:
        journal.record_attempts([(1, 1, "a")])
    with Journal(path, fingerprint="abc") as journal:
        assert journal.last_row() == 1
    with pytest.raises(ValueError, match="different input"):
        Journal(path, fingerprint="xyz")
