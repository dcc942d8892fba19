"""`haorui-async bulk`: send every row of a CSV file, crash-safe, resumable.

Each row is journaled (`haorui_async._journal`) before its request can go out, and its outcome
after. Running the same command again after a crash (even `kill -9`) sends every row never
attempted, never sends again a row whose outcome is recorded, and lists the rows attempted
without a recorded outcome as unknown (sent again only with `--resend-unknown`).

The outcomes file is rewritten from the journal on every run: one JSON line per row.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import signal
import sys
import time
from collections import deque
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import attrs
import click

from .. import _defaults as defaults
from .._bulk import KINDS, Outcome, send_many
from .._exceptions import ConfigurationError, InvalidMessage, SendError
from .._journal import ATTEMPTING, Journal
from .._message import SMS
from ._app import app
from ._common import (
    ENV_SENDER_ID,
    EXIT_INTERRUPTED,
    BadInput,
    credentials,
    credentials_option,
    exit_code_for_counts,
    sender_id_option,
)

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from .._sender import AsyncSender

REQUIRED_COLUMNS: Final = ("phonenumber", "textmessage")
OPTIONAL_COLUMNS: Final = ("uid", "sms_type", "encoding", "sender_id", "callback_url")
#: Read this many bytes at a time when fingerprinting the input.
_CHUNK: Final = 1 << 20
UNKNOWN_DETAIL: Final = (
    "attempted by an earlier run, which stopped before recording an outcome: it may have "
    "been sent; not sent again (--resend-unknown would)"
)


@attrs.frozen
class Row:
    """One record of the input: its number (from 1), its first line, and its fields."""

    row: int
    line: int
    fields: list[str]


def fingerprint(path: Path) -> str:
    """The SHA-256 of the file's bytes: a journal belongs to exactly one input."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def generated_uid(fingerprint: str, row: int) -> str:
    """The uid of a row that carries none: stable for the same file, whatever its path."""
    return f"{fingerprint[:16]}-{row}"


def read_header(path: Path) -> list[str]:
    """The header's column names, in lower case.

    Raises BadInput when the header lacks a required column.
    """
    with path.open(newline="", encoding="utf-8-sig") as file:
        header = [name.strip().lower() for name in next(csv.reader(file), [])]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise BadInput(
            f"{path}: the header lacks the column(s) {', '.join(missing)}; "
            f"expected {', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}"
        )
    return header


def read_rows(path: Path) -> Generator[Row, None, None]:
    """The records after the header, read lazily; blank lines skipped.

    The file is opened at the first `next()` and closed at the end or by `close()`.
    """
    with path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        next(reader, None)
        number = 0
        line = reader.line_num + 1
        for fields in reader:
            if fields:
                number += 1
                yield Row(number, line, fields)
            line = reader.line_num + 1


def build_message(
    header: list[str], row: Row, *, fingerprint: str, default_sender_id: str | None
) -> SMS:
    """The `SMS` of one record. Raises `InvalidMessage` naming the field, or a `ValueError`."""
    if len(row.fields) != len(header):
        raise ValueError(f"expected {len(header)} fields, got {len(row.fields)}")
    values = {
        name: value.strip() or None
        for name, value in zip(header, row.fields, strict=True)
        if name in REQUIRED_COLUMNS or name in OPTIONAL_COLUMNS
    }
    sms = SMS(
        values.get("phonenumber") or "",
        row.fields[header.index("textmessage")],
        uid=values.get("uid") or generated_uid(fingerprint, row.row),
        sms_type=values.get("sms_type"),
        encoding=values.get("encoding"),
        sender_id=values.get("sender_id"),
        callback_url=values.get("callback_url"),
    )
    if sms.sender_id is None and default_sender_id is None:
        raise InvalidMessage(
            "sender_id", None, f"required: a sender_id column, --sender-id or {ENV_SENDER_ID}"
        )
    return sms


def outcome_record(row: int, line: int, outcome: Outcome) -> dict[str, Any]:
    """The JSON line of one sent (or unsent) row."""
    record: dict[str, Any] = {"row": row, "line": line, "uid": outcome.uid}
    record["phonenumber"] = None if outcome.message is None else outcome.message.phonenumber
    record["kind"] = outcome.kind
    record["may_have_been_sent"] = outcome.may_have_been_sent
    if outcome.result is not None:
        record["message_id"] = outcome.result.message_id
        record["attempts"] = outcome.result.attempts
    error = outcome.error
    if isinstance(error, SendError):
        record["status_code"] = error.status_code
        record["attempts"] = error.attempts
        # The record has the status, uid and attempts in fields of their own.
        record["detail"] = error.detail
    elif error is not None:
        record["detail"] = str(error)
    return record


def bad_row_record(row: Row, error: Exception) -> dict[str, Any]:
    """The JSON line of a record that could not be read as a message."""
    return {
        "row": row.row,
        "line": row.line,
        "uid": None,
        "kind": "invalid",
        "may_have_been_sent": False,
        "field": getattr(error, "field", None),
        "detail": f"line {row.line}: {error}",
    }


def _dump(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


class BulkJob:
    """One run of the bulk command: resume from the journal, send the rest, record outcomes."""

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
        progress: Progress,
        task: TaskID,
        warn: Any,
    ) -> None:
        self.recipients = recipients
        self.journal = journal
        self.out = out
        self.fingerprint = fingerprint
        self.resend_unknown = resend_unknown
        self.concurrency = concurrency
        self.default_sender_id = default_sender_id
        self.progress = progress
        self.task = task
        self.warn = warn
        self.counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self.sent_now = 0
        self.stopping = False
        #: Rows handed to `send_many`, by its input index: bounded by its window.
        self.in_flight: dict[int, tuple[int, int]] = {}
        #: Rows journaled as attempting and not yet handed to `send_many` (one batch at most).
        self.unhanded: deque[tuple[Row, SMS]] = deque()

    def _count(self, kind: str) -> None:
        self.counts[kind] += 1
        self.progress.advance(self.task)

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
                record = {
                    "row": entry.row,
                    "line": entry.line,
                    "uid": entry.uid,
                    "kind": "unknown",
                    "may_have_been_sent": True,
                    "detail": UNKNOWN_DETAIL,
                }
                self.out.write(_dump(record) + "\n")
                self._count("unknown")
            else:
                assert entry.outcome is not None
                assert entry.kind is not None
                self.out.write(entry.outcome + "\n")
                self._count(entry.kind)
        return last, to_send

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
                sms = build_message(
                    header,
                    row,
                    fingerprint=self.fingerprint,
                    default_sender_id=self.default_sender_id,
                )
            except ValueError as exc:
                self.bad_row(row, exc)
                continue
            batch.append((row, sms))
            if len(batch) >= self.concurrency:
                yield from release()
        if batch and not self.stopping:
            yield from release()

    def bad_row(self, row: Row, error: Exception) -> None:
        record = bad_row_record(row, error)
        line = _dump(record)
        self.warn(f"{self.recipients}: line {row.line}: skipped: {error}")
        self.journal.record_outcome(row.row, row.line, None, "invalid", line)
        self.out.write(line + "\n")
        self._count("invalid")

    def record(self, outcome: Outcome) -> None:
        row, line = self.in_flight.pop(outcome.index)
        text = _dump(outcome_record(row, line, outcome))
        self.journal.record_outcome(row, line, outcome.uid, outcome.kind, text)
        self.out.write(text + "\n")
        self._count(outcome.kind)
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


def count_rows(path: Path) -> int:
    """How many records the file holds (for the progress bar's total)."""
    return sum(1 for _ in read_rows(path))


def read_input(path: Path) -> tuple[list[str], str, int]:
    """The header, fingerprint and record count of the CSV file, read in full before anything
    is sent, so a file that cannot be read stops the command before its first row goes out.

    Raises BadInput naming the file and what is wrong with it.
    """
    try:
        return read_header(path), fingerprint(path), count_rows(path)
    except UnicodeDecodeError as exc:
        # `exc.start` counts from the chunk being decoded, not the file: name only the byte.
        bad = exc.object[exc.start : exc.end]
        raise BadInput(f"{path}: not UTF-8 text (it holds {bad!r}): save it as UTF-8") from None
    except csv.Error as exc:
        raise BadInput(f"{path}: not a readable CSV file ({exc})") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read it ({exc.strerror or exc})") from None


@app.command("bulk")
@click.argument(
    "recipients", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="CSV"
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The outcomes file: one JSON line per row, rewritten from the journal on every run.",
)
@click.option(
    "--journal",
    "journal_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The crash-safe journal (SQLite). Default: the --out path with '.journal' added.",
)
@click.option(
    "--resend-unknown",
    is_flag=True,
    help=(
        "Send again the rows an earlier run attempted without recording an outcome. "
        "RISKS DUPLICATES: such a row may have been sent already (the gateway has no "
        "idempotency key); reconcile by uid with delivery reports first."
    ),
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Requests per second at most (retries included). Default: no limit.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=defaults.DEFAULT_MAX_CONCURRENCY,
    show_default=True,
    help="Requests in flight at most.",
)
@sender_id_option
@click.option(
    "--method",
    type=click.Choice(["POST", "GET"], case_sensitive=False),
    default=defaults.DEFAULT_METHOD,
    show_default=True,
    help="POST (a JSON body) or GET (the password in the URL).",
)
@credentials_option
def bulk(
    recipients: Path,
    out: Path,
    journal_path: Path | None,
    resend_unknown: bool,
    rate_limit: float | None,
    concurrency: int,
    sender_id: str | None,
    method: str,
    credentials_file: Path | None,
) -> None:
    """Send one SMS per row of a CSV file; crash-safe: run it again to resume.

    Columns: phonenumber, textmessage; optional: uid, sms_type, encoding, sender_id,
    callback_url. Rows without a uid get a stable one (from the file's content and the row
    number); rows without a sender_id get --sender-id (or HAORUI_SENDER_ID). Bad rows are
    reported with their line number, skipped, and written to the outcomes file as "invalid".

    Every row is journaled before its request goes out. After a crash, run the same command
    again: rows never attempted are sent, rows with a recorded outcome are not sent again, and
    rows attempted without a recorded outcome are listed as "unknown" (not sent again unless
    --resend-unknown).

    Exit status, by the rows' outcome kinds: 0 all sent; 1 some failed, rejected or
    not_sent; 2 bad input (some rows invalid, a bad CSV file or bad options: then nothing is
    sent); 3 some unknown (check by uid before sending again); 130 interrupted.
    """
    from rich.console import Console

    console = Console(stderr=True)
    try:
        from .._sender import AsyncSender

        creds = credentials(credentials_file)
        sender = AsyncSender(
            api_id=creds["api_id"],
            api_password=creds["api_password"],
            base_url=creds["base_url"],
            sender_id=sender_id,
            method="GET" if method.upper() == "GET" else "POST",
            rate_limit=rate_limit,
            max_concurrency=concurrency,
        )
    except (ConfigurationError, InvalidMessage) as exc:
        raise BadInput(str(exc)) from None

    header, digest, total = read_input(recipients)
    journal_file = journal_path or out.with_name(out.name + ".journal")
    try:
        journal = Journal(journal_file, fingerprint=digest)
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    try:
        out_file = out.open("w", encoding="utf-8")
    except OSError as exc:
        journal.close()
        raise BadInput(f"--out {out}: cannot write it ({exc.strerror or exc})") from None
    code = _run_job(
        console=console,
        sender=sender,
        journal=journal,
        recipients=recipients,
        out_file=out_file,
        header=header,
        rows=read_rows(recipients),
        digest=digest,
        total=total,
        resend_unknown=resend_unknown,
        concurrency=concurrency,
        sender_id=sender_id,
    )
    raise SystemExit(code)


def _run_job(
    *,
    console: Any,
    sender: AsyncSender,
    journal: Journal,
    recipients: Path,
    out_file: IO[str],
    header: list[str],
    rows: Generator[Row, None, None],
    digest: str,
    total: int,
    resend_unknown: bool,
    concurrency: int,
    sender_id: str | None,
) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    interrupted = False
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
    with journal, out_file, progress:
        task = progress.add_task("sending", total=total, rate="")
        job = BulkJob(
            recipients=recipients,
            journal=journal,
            out=out_file,
            fingerprint=digest,
            resend_unknown=resend_unknown,
            concurrency=concurrency,
            default_sender_id=sender_id,
            progress=progress,
            task=task,
            warn=lambda text: progress.console.print(
                text, markup=False, highlight=False, soft_wrap=True
            ),
        )
        last, to_send = job.replay_journal()
        earlier = sum(job.counts.values())
        pending = (row for row in rows if row.row > last or row.row in to_send)

        async def main() -> None:
            loop = asyncio.get_running_loop()
            main_task = asyncio.current_task()
            assert main_task is not None

            def on_signal() -> None:
                # First signal: start nothing new, let the sends in flight finish. Second:
                # cancel them (each is then recorded as unknown).
                if job.stopping:
                    main_task.cancel()
                else:
                    job.stopping = True
                    progress.console.print(
                        "stopping: waiting for the sends in flight (again to cancel them)"
                    )

            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, on_signal)

            async def show_rate() -> None:
                while True:
                    await asyncio.sleep(0.5)
                    elapsed = time.monotonic() - started
                    progress.update(task, rate=f"{job.sent_now / max(elapsed, 1e-9):,.0f} msg/s")

            rate_task = asyncio.create_task(show_rate())
            try:
                async with sender:
                    await job.run(sender, pending, header)
            finally:
                rate_task.cancel()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

        try:
            asyncio.run(main())
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
        interrupted = interrupted or job.stopping
        rows.close()
    _summary(console, job, earlier, total, time.monotonic() - started, interrupted)
    return job.exit_code(interrupted)


def _summary(
    console: Any, job: BulkJob, earlier: int, total: int, elapsed: float, interrupted: bool
) -> None:
    from rich.table import Table

    table = Table(title="bulk send", show_header=True)
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    for kind in KINDS:
        table.add_row(kind, f"{job.counts[kind]:,}")
    accounted = sum(job.counts.values())
    table.add_row("not yet attempted", f"{max(total - accounted, 0):,}")
    console.print(table)
    console.print(
        f"{job.sent_now:,} sent in this run in {elapsed:.1f}s; {earlier:,} rows were "
        "accounted for by earlier runs."
        + (" Interrupted: run the same command again to resume." if interrupted else ""),
        highlight=False,
    )
    if job.counts["unknown"]:
        console.print(
            f"{job.counts['unknown']:,} rows may have been sent: look them up by uid "
            "(delivery reports) before sending them again.",
            highlight=False,
        )
    sys.stderr.flush()
