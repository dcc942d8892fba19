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

Each row also keeps when it was last attempted (wall-clock seconds, so a later run can tell how
long a record has had to appear at the gateway) and the latest delivery report applied to its
uid (`record_report`): proof that the gateway took the message, and its delivery state. The
job's secret report token lives in the `meta` table (`report_token`).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Final

import attrs

from ._exceptions import ConfigurationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock (documented)
    fcntl = None  # type: ignore[assignment]

__all__ = ["Journal", "JournalRow"]

#: Outcomes wait in memory for at most this many rows or seconds before a commit of their own
#: (they also ride along with every commit of attempts). A crash loses at most these: their
#: rows then count as unknown, never as unsent.
OUTCOME_BATCH: Final = 1000
OUTCOME_MAX_AGE: Final = 0.5
#: Random bytes of a job's id (`Journal.job`), in hex in every generated uid of the job.
JOB_ID_BYTES: Final = 4
#: Rows read per query by `Journal.rows()`.
READ_PAGE: Final = 1000
#: The journal's layout; a journal of another version is refused rather than misread
#: (version 1, without attempt times and reports, is brought up to date in place).
SCHEMA_VERSION: Final = "3"

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
    outcome TEXT,
    attempted_at REAL,
    report TEXT,
    delivery TEXT,
    ended_at REAL,
    tracked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rows_by_uid ON rows (uid);
"""
#: The columns later layouts added, as an older journal gets them (in place, on open).
_ADDED_COLUMNS: Final = (
    ("attempted_at", "REAL"),
    ("report", "TEXT"),
    ("delivery", "TEXT"),
    ("ended_at", "REAL"),
    ("tracked", "INTEGER NOT NULL DEFAULT 0"),
)
#: Layouts an open brings up to date.
_UPGRADABLE: Final = ("1", "2")


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
        attempted_at: when the row was last journaled as attempting (`time.time()`), if ever.
        report: the fields of the latest delivery report for its uid, if one came.
        delivery: that report's delivery state ("delivered", "failed", "pending", ...).
        ended_at: when its outcome was recorded (`time.time()`), once done.
    """

    row: int
    line: int
    uid: str | None
    state: str
    kind: str | None
    outcome: str | None
    attempted_at: float | None = None
    report: Mapping[str, Any] | None = None
    delivery: str | None = None
    ended_at: float | None = None


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
        self._pending: list[tuple[int, int, str | None, str, str, float]] = []
        self._pending_since = 0.0
        self._pending_reports: dict[str, tuple[str, str | None]] = {}
        self._lock = _lock(path)
        try:
            self._db = sqlite3.connect(os.fspath(path), isolation_level=None)
        except sqlite3.Error as exc:
            self._lock.close()
            raise ConfigurationError(f"journal {path}: cannot be opened ({exc})") from None
        try:
            self._open(fingerprint)
        except BaseException:
            self._db.close()
            self._lock.close()
            raise

    def _open(self, fingerprint: str) -> None:
        path = self.path
        try:
            # Read before anything is written: a file that is not this input's journal is
            # refused unchanged.
            meta = self._meta()
            if not meta and self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                raise ConfigurationError(f"journal {path}: an SQLite file, but not a journal")
            if meta and meta.get("fingerprint") != fingerprint:
                raise ConfigurationError(
                    f"journal {path}: it records a different input file; give another "
                    "--journal path to start a new job"
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a committed batch survives a power loss too, not only a killed process.
            self._db.execute("PRAGMA synchronous=FULL")
            if meta.get("version") in _UPGRADABLE:
                self._upgrade()
            self._db.executescript(_SCHEMA)
            meta = self._meta()
        except sqlite3.DatabaseError as exc:
            raise ConfigurationError(f"journal {path}: not a usable journal ({exc})") from None
        if not meta:
            with self._transaction():
                self._db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("version", SCHEMA_VERSION),
                        ("fingerprint", fingerprint),
                        ("job", secrets.token_hex(JOB_ID_BYTES)),
                    ],
                )
        elif meta.get("version") != SCHEMA_VERSION:
            raise ConfigurationError(
                f"journal {path}: layout version {meta.get('version')!r}, "
                f"expected {SCHEMA_VERSION!r}"
            )
        elif meta.get("fingerprint") != fingerprint:
            raise ConfigurationError(
                f"journal {path}: it records a different input file; give another --journal "
                "path to start a new job"
            )
        #: The job's id: part of every generated uid, so two jobs of one file never share
        #: uids (a lookup for one job's message must not find the other's). Empty for a
        #: journal made before jobs had ids.
        self.job = self._meta().get("job", "")

    def _upgrade(self) -> None:
        """Bring a journal of an older layout up to date, keeping every row. Its job id stays
        empty: its rows' generated uids were made without one, and must not change."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(rows)")}
        with self._transaction():
            for name, kind in _ADDED_COLUMNS:
                if name not in present:
                    self._db.execute(f"ALTER TABLE rows ADD COLUMN {name} {kind}")
            self._db.execute("UPDATE meta SET value = ? WHERE key = 'version'", (SCHEMA_VERSION,))

    def _meta(self) -> dict[str, str]:
        tables = self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchall()
        if not tables:
            return {}
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _transaction(self) -> _Transaction:
        return _Transaction(self)

    # -- reading --------------------------------------------------------------------------

    def last_row(self) -> int:
        """The highest row number journaled (0 for a new journal)."""
        (value,) = self._db.execute("SELECT COALESCE(MAX(row), 0) FROM rows").fetchone()
        return int(value)

    def rows(self) -> Iterator[JournalRow]:
        """Every journaled row, in row order, read a page at a time: no query is left open
        while the caller writes to the journal between two rows."""
        after = 0
        while True:
            page = self._db.execute(
                "SELECT row, line, uid, state, kind, outcome, attempted_at, report, delivery, "
                "ended_at FROM rows WHERE row > ? ORDER BY row LIMIT ?",
                (after, READ_PAGE),
            ).fetchall()
            for row, line, uid, state, kind, outcome, attempted, report, delivery, ended in page:
                fields = None if report is None else json.loads(report)
                yield JournalRow(
                    row, line, uid, state, kind, outcome, attempted, fields, delivery, ended
                )
            if len(page) < READ_PAGE:
                return
            after = page[-1][0]

    def has_uid(self, uid: str) -> bool:
        """Whether a row of this job was attempted with `uid` (its request may have gone out)."""
        found = self._db.execute(
            "SELECT 1 FROM rows WHERE uid = ? AND (state = 'attempting' OR kind != 'invalid') "
            "LIMIT 1",
            (uid,),
        ).fetchone()
        return found is not None

    def report_for(self, uid: str) -> Mapping[str, Any] | None:
        """The fields of the latest delivery report recorded for `uid`, or None."""
        pending = self._pending_reports.get(uid)
        if pending is not None:
            fields: Mapping[str, Any] = json.loads(pending[0])
            return fields
        found = self._db.execute(
            "SELECT report FROM rows WHERE uid = ? AND report IS NOT NULL LIMIT 1", (uid,)
        ).fetchone()
        return None if found is None else json.loads(found[0])

    def awaiting_reports(self, final: Iterable[str]) -> int:
        """How many rows sent, whose reports come to this job's receiver, have no report in a
        state of `final` yet."""
        self.flush()
        states = list(final)
        marks = ", ".join("?" * len(states))
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM rows WHERE state = 'done' AND kind = 'sent' AND tracked = 1 "
            f"AND (delivery IS NULL OR delivery NOT IN ({marks}))",
            states,
        ).fetchone()
        return int(count)

    def has_report_token(self) -> bool:
        """Whether a run of this job made a report token (so it tracks delivery reports)."""
        found = self._db.execute("SELECT 1 FROM meta WHERE key = 'token'").fetchone()
        return found is not None

    def report_token(self) -> str:
        """The job's secret token for its callback URL: made on first use, then kept."""
        found = self._db.execute("SELECT value FROM meta WHERE key = 'token'").fetchone()
        if found is not None:
            token: str = found[0]
            return token
        token = secrets.token_urlsafe(24)
        with self._transaction():
            self._db.execute("INSERT INTO meta (key, value) VALUES ('token', ?)", (token,))
        return token

    # -- writing --------------------------------------------------------------------------

    def record_attempts(
        self, attempts: Iterable[tuple[int, int, str] | tuple[int, int, str, bool]]
    ) -> None:
        """Record `(row, line, uid)` as attempting and commit, before any of them is sent; a
        fourth item True says its delivery reports come to this job's receiver (`tracked`).

        Outcomes recorded since the last commit are committed in the same transaction.
        """
        now = time.time()
        with self._transaction():
            self._write_pending()
            self._db.executemany(
                "INSERT INTO rows (row, line, uid, state, attempted_at, tracked) "
                "VALUES (?, ?, ?, 'attempting', ?, ?) "
                "ON CONFLICT (row) DO UPDATE SET state = 'attempting', kind = NULL, "
                "outcome = NULL, uid = excluded.uid, attempted_at = excluded.attempted_at, "
                "tracked = excluded.tracked",
                (
                    (row, line, uid, now, int(bool(rest and rest[0])))
                    for row, line, uid, *rest in attempts
                ),
            )

    def record_outcome(self, row: int, line: int, uid: str | None, kind: str, outcome: str) -> None:
        """Record how `row` ended (committed with the next batch, or when the batch is due)."""
        if not self._pending and not self._pending_reports:
            self._pending_since = time.monotonic()
        self._pending.append((row, line, uid, kind, outcome, time.time()))
        self._flush_if_due()

    def _flush_if_due(self) -> None:
        if (
            len(self._pending) + len(self._pending_reports) >= self.outcome_batch
            or time.monotonic() - self._pending_since >= self.outcome_max_age
        ):
            self.flush()

    def record_report(
        self, uid: str, fields: Mapping[str, Any], *, delivery: str | None = None
    ) -> None:
        """Record a delivery report for `uid`, in state `delivery` (committed as outcomes
        are: with the next batch, or when the batch is due)."""
        if not self._pending and not self._pending_reports:
            self._pending_since = time.monotonic()
        text = json.dumps(fields, ensure_ascii=False, default=str)
        self._pending_reports[uid] = (text, delivery)
        self._flush_if_due()

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
        """Commit the outcomes and reports recorded so far."""
        if self._pending or self._pending_reports:
            with self._transaction():
                self._write_pending()

    def _write_pending(self) -> None:
        if self._pending_reports:
            self._db.executemany(
                "UPDATE rows SET report = ?, delivery = ? WHERE uid = ?",
                [(text, state, uid) for uid, (text, state) in self._pending_reports.items()],
            )
            self._pending_reports = {}
        if self._pending:
            self._db.executemany(
                "INSERT INTO rows (row, line, uid, state, kind, outcome, ended_at) "
                "VALUES (?, ?, ?, 'done', ?, ?, ?) "
                "ON CONFLICT (row) DO UPDATE SET state = 'done', kind = excluded.kind, "
                "outcome = excluded.outcome, ended_at = excluded.ended_at",
                self._pending,
            )
            self._pending = []

    def close(self) -> None:
        """Commit what is pending, close the file and let another run open it."""
        try:
            self.flush()
        finally:
            self._db.close()
            self._lock.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _lock(path: Path) -> IO[bytes]:
    """An exclusive lock on the journal (a `.lock` file beside it), held while it is open:
    two runs of one job at once would both send every row past the journal's last one.

    Raises:
        ConfigurationError: another run holds it, or the lock file cannot be made.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        file = open(lock_path, "ab")  # noqa: SIM115 - held until close()
    except OSError as exc:
        raise ConfigurationError(f"journal {path}: cannot be opened ({exc})") from None
    if fcntl is not None:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            raise ConfigurationError(
                f"journal {path}: another run of this job is in progress (it holds "
                f"{lock_path}); wait for it, or stop it first"
            ) from None
    return file


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
