"""The journaled run of the `bulk` command: resume from the journal, finish what earlier runs
left, send the rest, record every outcome.

`BulkJob` sits between `send_many()` and the journal (`haorui_async._journal`): a batch of
rows is journaled as attempting before any of it is handed over to be sent, and each outcome
is journaled and written to the outcomes file as it arrives. It uses neither click nor rich:
the command (`cli/_bulk.py`) gives it callbacks for progress and warnings, and sets
`stopping` on a signal.

What a rerun does with each row an earlier run recorded (`BulkJob.plan`):

| recorded | on a rerun |
|---|---|
| `sent` | kept |
| `not_sent`, `invalid` | sent again: nothing reached the gateway |
| `failed`, `rejected` | kept; sent again with `--retry-refused` (after fixing the cause) |
| `unknown` (or none) | kept; `--reconcile`: settled, sent again if not accepted |

(`--resend-unknown` sends the unknown rows again blindly, at the risk of duplicates.)

An unknown row for which the job's receiver took a delivery report is sent: the report
proves the gateway accepted it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final, Literal

from .._bulk import send_many
from .._exceptions import InvalidMessage
from .._journal import ATTEMPTING, Journal, JournalRow
from .._outcome import KINDS
from .._reconcile import Reconciliation
from . import _records as records
from ._common import ENV_SENDER_ID, EXIT_INTERRUPTED, exit_code_for_counts
from ._records import Row
from ._reports import DELIVERY_STATES, FINAL_STATES, JournalTracker, delivery_of, report_from

if TYPE_CHECKING:
    from .._message import SMS
    from .._outcome import Outcome
    from .._sender import AsyncSender

__all__ = ["AUTOMATIC_RESEND", "REFUSED", "BulkJob"]

MISSING_SENDER_ID: Final = f"required: a sender_id column, --sender-id or {ENV_SENDER_ID}"
#: Recorded outcomes a rerun sends again unasked: nothing of them reached the gateway, so a
#: rerun after the cause is fixed (an outage, `--sender-id`, a bad row) finishes the job.
AUTOMATIC_RESEND: Final = frozenset({"not_sent", "invalid"})
#: Recorded outcomes the gateway refused: sent again only with `--retry-refused`, since
#: without a fix (a password, a sender id, a balance) each would only be refused again.
REFUSED: Final = frozenset({"failed", "rejected"})
#: Seconds between two looks at how many sent rows still wait for a final report.
REPORT_POLL: Final = 0.5

Action = Literal["keep", "send", "reconcile"]


def attempt_age(entry: JournalRow, now: float) -> float | None:
    """How long ago (at least) the last attempt of an unknown row ended, by the journal.

    A row with a recorded outcome ended when it was recorded. A row still "attempting" was
    journaled before its request went out, which may have waited for a free worker and then
    taken up to a send's deadline: nothing sure is known of it, so its last attempt counts
    as just now (None), and its first lookup waits the whole settle time.
    """
    if entry.state == ATTEMPTING or entry.ended_at is None:
        return None
    return max(0.0, now - entry.ended_at)


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
        retry_refused: bool = False,
        reconcile: bool = False,
        tracker: JournalTracker | None = None,
        repeated: Mapping[int, int] | None = None,
    ) -> None:
        self.recipients = recipients
        self.journal = journal
        self.out = out
        self.fingerprint = fingerprint
        self.resend_unknown = resend_unknown
        self.retry_refused = retry_refused
        self.reconcile = reconcile
        self.tracker = tracker
        self.repeated = repeated or {}
        self.job = journal.job
        self.concurrency = concurrency
        self.default_sender_id = default_sender_id
        self.on_outcome = on_outcome
        self.warn = warn
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        #: Sent rows by delivery state, where the job tracks reports (`tracker`).
        self.deliveries: dict[str, int] = dict.fromkeys(DELIVERY_STATES, 0)
        #: Rows an earlier run left unknown that reconciliation settled, by verdict.
        self.verdicts: dict[str, int] = {"accepted": 0, "not_accepted": 0, "unknown": 0}
        #: Rows of unknown outcome sent again blindly (`--resend-unknown`).
        self.resent_unknown = 0
        self.sent_now = 0
        self.stopping = False
        #: Rows handed to `send_many`, by its input index: bounded by its window.
        self.in_flight: dict[int, tuple[int, int]] = {}
        #: Rows journaled as attempting and not yet handed to `send_many` (one batch at most).
        self.unhanded: deque[tuple[Row, SMS]] = deque()

    def _write(self, line: str, kind: str, *, progress: bool = True) -> None:
        self.out.write(line + "\n")
        self.counts[kind] += 1
        if progress:
            self.on_outcome()

    # -- what earlier runs left -----------------------------------------------------------

    def plan(self, entry: JournalRow) -> Action:
        """What this run does with a row an earlier run journaled (see the module's table)."""
        kind = "unknown" if entry.state == ATTEMPTING else entry.kind
        if kind == "unknown":
            if entry.report is not None or entry.uid is None:
                return "keep"  # a report settles it (`write_entry`)
            if self.resend_unknown:
                self.resent_unknown += 1
                return "send"
            return "reconcile" if self.reconcile else "keep"
        if kind in AUTOMATIC_RESEND or (kind in REFUSED and self.retry_refused):
            return "send"
        return "keep"

    def replay_journal(self) -> tuple[int, set[int], list[JournalRow]]:
        """Write the outcomes recorded by earlier runs that stand; return the journal's last
        row, the rows at or below it to send now (never attempted, or as `plan` says) and the
        rows to reconcile first."""
        last = self.journal.last_row()
        to_send: set[int] = set()
        to_reconcile: list[JournalRow] = []
        expected = 1
        for entry in self.journal.rows():
            to_send.update(range(expected, entry.row))
            expected = entry.row + 1
            action = self.plan(entry)
            if action == "send":
                to_send.add(entry.row)
            elif action == "reconcile":
                to_reconcile.append(entry)
            else:
                self.write_entry(entry)
        return last, to_send, to_reconcile

    def write_entry(self, entry: JournalRow, *, progress: bool = True) -> None:
        """Write the outcome the journal holds for `entry` (an unknown row with a delivery
        report is settled as sent on the way)."""
        kind = "unknown" if entry.state == ATTEMPTING else entry.kind
        if kind == "unknown" and entry.report is not None and entry.uid is not None:
            report = report_from(entry.report)
            if report is not None:
                found = Reconciliation(
                    entry.uid,
                    "accepted",
                    message_id=report.message_id,
                    source="report",
                    report=report,
                    detail=f"a delivery report says {report.status!r}",
                )
                self.settle(entry, found, progress=progress)
                return
        if entry.state == ATTEMPTING:
            line = records.record_line(records.unknown_record(entry.row, entry.line, entry.uid))
        else:
            assert entry.outcome is not None
            line = entry.outcome
        kind = kind or "unknown"
        self._write(self._with_delivery(line, kind, entry.delivery), kind, progress=progress)

    def _with_delivery(self, line: str, kind: str | None, state: str | None) -> str:
        if self.tracker is None or kind != "sent":
            return line
        delivery = delivery_of(state)
        self.deliveries[delivery] += 1
        return records.with_delivery(line, delivery)

    def settle(self, entry: JournalRow, found: Reconciliation, *, progress: bool = True) -> None:
        """Record and write the verdict "accepted" or "unknown" on an unknown row."""
        if found.verdict == "accepted":
            text = records.record_line(records.reconciled_record(entry.row, entry.line, found))
            kind = "sent"
        else:
            record = records.unknown_record(entry.row, entry.line, entry.uid)
            record["detail"] = f"still unknown after reconciliation: {found.detail}"
            text = records.record_line(record)
            kind = "unknown"
        self.journal.record_outcome(entry.row, entry.line, entry.uid, kind, text)
        self._write(self._with_delivery(text, kind, entry.delivery), kind, progress=progress)

    async def reconcile_rows(self, sender: AsyncSender, entries: list[JournalRow]) -> set[int]:
        """Settle the unknown rows of earlier runs by delivery report or lookup: the accepted
        ones are recorded as sent, the ones still unknown as unknown; return the rows found
        not accepted (to send now). Each lookup waits until the row's last attempt is
        `reconcile_settle` seconds old, so the rows are reconciled all at once."""
        now = time.time()
        not_accepted: set[int] = set()
        settled: set[int] = set()

        async def one(entry: JournalRow) -> None:
            assert entry.uid is not None
            found = await sender.reconcile(entry.uid, age=attempt_age(entry, now))
            settled.add(entry.row)
            self.verdicts[found.verdict] += 1
            if found.verdict == "not_accepted":
                not_accepted.add(entry.row)
            else:
                self.settle(entry, found)

        tasks = [asyncio.create_task(one(entry)) for entry in entries]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # Interrupted: the rows not reconciled stay as the journal has them.
            for entry in entries:
                if entry.row not in settled:
                    self.write_entry(entry)
        return not_accepted

    async def wait_for_reports(self, timeout: float | None) -> None:
        """Wait until every sent row has a final delivery report, `timeout` seconds pass or
        the job is stopped."""
        started = time.monotonic()
        while self.journal.awaiting_reports(FINAL_STATES) and not self.stopping:
            if timeout is not None and time.monotonic() - started >= timeout:
                return
            await asyncio.sleep(REPORT_POLL)

    def rewrite(self, out_path: Path) -> None:
        """Write the outcomes file anew from the journal, one line per journaled row, with
        the latest delivery states; the counts are counted again on the way."""
        self.journal.flush()
        self.counts = dict.fromkeys(KINDS, 0)
        self.deliveries = dict.fromkeys(DELIVERY_STATES, 0)
        partial = out_path.with_name(out_path.name + ".partial")
        with partial.open("w", encoding="utf-8") as file:
            self.out = file
            for entry in self.journal.rows():
                self.write_entry(entry, progress=False)
        self.journal.flush()
        os.replace(partial, out_path)

    def message(self, header: list[str], row: Row) -> SMS:
        """The `SMS` of one row; raises a `ValueError` for a row that cannot be sent."""
        sms = records.build_message(header, row, fingerprint=self.fingerprint, job=self.job)
        first = self.repeated.get(row.row)
        if first is not None:
            raise InvalidMessage(
                "uid", sms.uid, f"already the uid of row {first}: each message needs its own"
            )
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
            self.journal.record_attempts(
                (r.row, r.line, sms.uid, self.reports_come_here(sms)) for r, sms in batch
            )
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

    def reports_come_here(self, sms: SMS) -> bool:
        """Whether the reports of `sms` come to this job's receiver: it goes out with the
        job's callback URL (it has none of its own)."""
        tracker = self.tracker
        return tracker is not None and tracker.callback_url is not None and sms.callback_url is None

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
        bulk = send_many(
            sender,
            self.messages(rows, header),
            concurrency=self.concurrency,
            reconcile_unknown=self.reconcile,
        )
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
