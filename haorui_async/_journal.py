"""The write-ahead journal of a bulk job: which rows were attempted, and how each one ended.

A SQLite file (standard library, WAL mode, `synchronous=FULL`). A row is recorded as
"attempting" and committed *before* its request can go out; its outcome is recorded after.
Commits are grouped: a batch of attempts is committed in one transaction, together with the
outcomes that arrived since the last one, so the cost is one fsync per batch, not per message.

After a crash, a row in the journal is in one of two states:

- "done": its outcome is recorded; it is never sent again;
- "attempting": its request may have gone out, but no outcome was recorded: it is listed as
  unknown, and sent again only when the caller accepts the risk of a duplicate.

Rows are journaled in input order, so every row after the journal's last one was never
attempted.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import attrs

from ._exceptions import ConfigurationError

__all__ = ["Journal", "JournalRow"]

#: Outcomes wait in memory for at most this many rows or seconds before a commit of their own
#: (they also ride along with every commit of attempts). A crash loses at most these: their
#: rows then count as unknown, never as unsent.
OUTCOME_BATCH: Final = 1000
OUTCOME_MAX_AGE: Final = 0.5
#: The journal's layout; a journal of another version is refused rather than misread.
SCHEMA_VERSION: Final = "1"

ATTEMPTING: Final = "attempting"
DONE: Final = "done"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
    row INTEGER PRIMARY KEY,
    line INTEGER NOT NULL,
    uid TEXT,
    state TEXT NOT NULL,
    kind TEXT,
    outcome TEXT
);
"""


@attrs.frozen
class JournalRow:
    """One row of the journal.

    Attributes:
        row: the record's number in the input, from 1.
        line: the line of the input where the record starts.
        uid: the message's uid (None for a row that could not be read).
        state: "attempting" (may have gone out, no outcome) or "done".
        kind: the outcome's kind ("sent", "failed", ...) once done.
        outcome: the outcome as one line of JSON, once done.
    """

    row: int
    line: int
    uid: str | None
    state: str
    kind: str | None
    outcome: str | None


class Journal:
    """A bulk job's journal in a SQLite file; see the module's docstring.

    Args:
        path: the journal file; created if missing.
        fingerprint: identifies the input; a journal made for another input is refused.
        outcome_batch: outcomes held in memory at most before they are committed.
        outcome_max_age: seconds an outcome is held at most (checked as outcomes arrive).

    Raises:
        ConfigurationError: the file is not a journal, belongs to another input, or is of
            another layout version.
    """

    def __init__(
        self,
        path: Path,
        *,
        fingerprint: str,
        outcome_batch: int = OUTCOME_BATCH,
        outcome_max_age: float = OUTCOME_MAX_AGE,
    ) -> None:
        self.path = path
        self.outcome_batch = outcome_batch
        self.outcome_max_age = outcome_max_age
        #: Transactions committed so far (what group commit keeps low).
        self.commits = 0
        self._pending: list[tuple[int, int, str | None, str, str]] = []
        self._pending_since = 0.0
        try:
            self._db = sqlite3.connect(os.fspath(path), isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed batch survives a power loss too, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"journal {path}: not a usable journal ({exc})") from None
        if not meta:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("version", SCHEMA_VERSION), ("fingerprint", fingerprint)],
                )
        elif meta.get("version") != SCHEMA_VERSION:
            self._db.close()
            raise ConfigurationError(
                f"journal {path}: layout version {meta.get('version')!r}, "
                f"expected {SCHEMA_VERSION!r}"
            )
        elif meta.get("fingerprint") != fingerprint:
            self._db.close()
            raise ConfigurationError(
                f"journal {path}: it records a different input file; give another --journal "
                "path to start a new job"
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # -- reading --------------------------------------------------------------------------

    def last_row(self) -> int:
        """The highest row number journaled (0 for a new journal)."""
        (value,) = self._db.execute("SELECT COALESCE(MAX(row), 0) FROM rows").fetchone()
        return int(value)

    def rows(self) -> Iterator[JournalRow]:
        """Every journaled row, in row order (read lazily)."""
        cursor = self._db.execute(
            "SELECT row, line, uid, state, kind, outcome FROM rows ORDER BY row"
        )
        for row, line, uid, state, kind, outcome in cursor:
            yield JournalRow(row, line, uid, state, kind, outcome)

    # -- writing --------------------------------------------------------------------------

    def record_attempts(self, attempts: Iterable[tuple[int, int, str]]) -> None:
        """Record `(row, line, uid)` as attempting and commit, before any of them is sent.

        Outcomes recorded since the last commit are committed in the same transaction.
        """
        with self._transaction():
            self._write_pending()
            self._db.executemany(
                "INSERT INTO rows (row, line, uid, state) VALUES (?, ?, ?, 'attempting') "
                "ON CONFLICT (row) DO UPDATE SET state = 'attempting', kind = NULL, "
                "outcome = NULL",
                attempts,
            )

    def record_outcome(self, row: int, line: int, uid: str | None, kind: str, outcome: str) -> None:
        """Record how `row` ended (committed with the next batch, or when the batch is due)."""
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((row, line, uid, kind, outcome))
        if (
            len(self._pending) >= self.outcome_batch
            or time.monotonic() - self._pending_since >= self.outcome_max_age
        ):
            self.flush()

    def forget(self, rows: Iterable[int]) -> None:
        """Remove rows journaled as attempting whose request never went out (committed now),
        so the next run sends them."""
        doomed = [(row,) for row in rows]
        if doomed:
            with self._transaction():
                self._db.executemany(
                    "DELETE FROM rows WHERE row = ? AND state = 'attempting'", doomed
                )

    def flush(self) -> None:
        """Commit the outcomes recorded so far."""
        if self._pending:
            with self._transaction():
                self._write_pending()

    def _write_pending(self) -> None:
        if self._pending:
            self._db.executemany(
                "INSERT INTO rows (row, line, uid, state, kind, outcome) "
                "VALUES (?, ?, ?, 'done', ?, ?) "
                "ON CONFLICT (row) DO UPDATE SET state = 'done', kind = excluded.kind, "
                "outcome = excluded.outcome",
                self._pending,
            )
            self._pending = []

    def close(self) -> None:
        """Commit what is pending and close the file."""
        try:
            self.flush()
        finally:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on an error."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def __enter__(self) -> None:
        self.journal._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        db = self.journal._db
        if exc_type is None:
            db.execute("COMMIT")
            self.journal.commits += 1
        else:
            db.execute("ROLLBACK")
