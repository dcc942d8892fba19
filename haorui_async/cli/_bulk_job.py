"""The journaled run of the `bulk` command: resume from the journal, send the rest, record
every outcome.

`BulkJob` sits between `send_many()` and the journal (`haorui_async._journal`): a batch of
rows is journaled as attempting before any of it is handed over to be sent, and each outcome
is journaled and written to the outcomes file as it arrives. It uses neither click nor rich:
the command (`cli/_bulk.py`) gives it callbacks for progress and warnings, and sets
`stopping` on a signal.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from .._bulk import send_many
from .._exceptions import InvalidMessage
from .._journal import ATTEMPTING, Journal
from .._outcome import KINDS
from . import _records as records
from ._common import ENV_SENDER_ID, EXIT_INTERRUPTED, exit_code_for_counts
from ._records import Row

if TYPE_CHECKING:
    from .._message import SMS
    from .._outcome import Outcome
    from .._sender import AsyncSender

__all__ = ["BulkJob"]

MISSING_SENDER_ID: Final = f"required: a sender_id column, --sender-id or {ENV_SENDER_ID}"


class BulkJob:
    """One run of the bulk command: resume from the journal, send the rest, record outcomes.

    `on_outcome` is called once per row accounted for (progress); `warn` prints a line about
    a bad row.
    """

    def __init__(
        self,
        *,
        recipients: Path,
        journal: Journal,
        out: IO[str],
        fingerprint: str,
        resend_unknown: bool,
        concurrency: int,
        default_sender_id: str | None,
        on_outcome: Callable[[], None],
        warn: Callable[[str], None],
    ) -> None:
        self.recipients = recipients
        self.journal = journal
        self.out = out
        self.fingerprint = fingerprint
        self.resend_unknown = resend_unknown
        self.concurrency = concurrency
        self.default_sender_id = default_sender_id
        self.on_outcome = on_outcome
        self.warn = warn
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.sent_now = 0
        self.stopping = False
        #: Rows handed to `send_many`, by its input index: bounded by its window.
        self.in_flight: dict[int, tuple[int, int]] = {}
        #: Rows journaled as attempting and not yet handed to `send_many` (one batch at most).
        self.unhanded: deque[tuple[Row, SMS]] = deque()

    def _write(self, line: str, kind: str) -> None:
        self.out.write(line + "\n")
        self.counts[kind] += 1
        self.on_outcome()

    def replay_journal(self) -> tuple[int, set[int]]:
        """Write the outcomes recorded by earlier runs; return the journal's last row and the
        rows at or below it to send now (never attempted, or unknown with --resend-unknown)."""
        last = self.journal.last_row()
        to_send: set[int] = set()
        expected = 1
        for entry in self.journal.rows():
            to_send.update(range(expected, entry.row))
            expected = entry.row + 1
            if entry.state == ATTEMPTING:
                if self.resend_unknown:
                    to_send.add(entry.row)
                    continue
                record = records.unknown_record(entry.row, entry.line, entry.uid)
                self._write(records.record_line(record), "unknown")
            else:
                assert entry.outcome is not None
                assert entry.kind is not None
                self._write(entry.outcome, entry.kind)
        return last, to_send

    def message(self, header: list[str], row: Row) -> SMS:
        """The `SMS` of one row; raises a `ValueError` for a row that cannot be sent."""
        sms = records.build_message(header, row, fingerprint=self.fingerprint)
        if sms.sender_id is None and self.default_sender_id is None:
            raise InvalidMessage("sender_id", None, MISSING_SENDER_ID)
        return sms

    def messages(self, rows: Iterator[Row], header: list[str]) -> Iterator[SMS]:
        """The messages to send, journaled as attempting in batches before they are handed
        over; bad rows are reported and recorded as they are met."""
        index = 0
        batch: list[tuple[Row, SMS]] = []

        def release() -> Iterator[SMS]:
            nonlocal index
            self.journal.record_attempts((r.row, r.line, sms.uid) for r, sms in batch)
            self.unhanded.extend(batch)
            batch.clear()
            while self.unhanded and not self.stopping:
                row, sms = self.unhanded.popleft()
                self.in_flight[index] = (row.row, row.line)
                index += 1
                yield sms

        for row in rows:
            if self.stopping:
                return
            try:
                sms = self.message(header, row)
            except ValueError as exc:
                self.bad_row(row, exc)
                continue
            batch.append((row, sms))
            if len(batch) >= self.concurrency:
                yield from release()
        if batch and not self.stopping:
            yield from release()

    def bad_row(self, row: Row, error: Exception) -> None:
        line = records.record_line(records.bad_row_record(row, error))
        self.warn(f"{self.recipients}: line {row.line}: skipped: {error}")
        self.journal.record_outcome(row.row, row.line, None, "invalid", line)
        self._write(line, "invalid")

    def record(self, outcome: Outcome) -> None:
        row, line = self.in_flight.pop(outcome.index)
        text = records.record_line(records.outcome_record(row, line, outcome))
        self.journal.record_outcome(row, line, outcome.uid, outcome.kind, text)
        self._write(text, outcome.kind)
        if outcome.sent:
            self.sent_now += 1

    async def run(self, sender: AsyncSender, rows: Iterator[Row], header: list[str]) -> None:
        bulk = send_many(sender, self.messages(rows, header), concurrency=self.concurrency)
        try:
            async with bulk:
                async for outcome in bulk:
                    self.record(outcome)
        finally:
            # After the run has stopped: on cancellation, the sends that were in flight are
            # there as unknown, and still recorded.
            for outcome in bulk.unyielded:
                self.record(outcome)
            # Journaled but never handed over, so never sent: the next run sends them.
            self.journal.forget(row.row for row, _ in self.unhanded)
            self.unhanded.clear()

    def exit_code(self, interrupted: bool) -> int:
        return EXIT_INTERRUPTED if interrupted else exit_code_for_counts(self.counts)
