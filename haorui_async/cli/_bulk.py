"""`haorui-async bulk`: send every row of a CSV file, crash-safe, resumable.

Each row is journaled (`haorui_async._journal`) before its request can go out, and its outcome
after. Running the same command again after a crash (even `kill -9`) or a fixed fault finishes
the job: it sends every row never attempted and every row that provably never reached the
gateway, never sends again a row that was accepted, and lists the rows whose outcome is
unknown; `--reconcile` settles those by delivery report or lookup (`cli/_bulk_job.py` has
the table of what a rerun does with each row).

With `--callback-url` and `--listen`, the command serves a delivery report receiver while it
runs (`cli/_reports.py`) and records each row's delivery state; `--collect-reports` serves it
without sending anything.

The outcomes file is written anew from the journal at the end of every run: one JSON line per
row.

Three rooms: `cli/_records.py` holds the CSV and JSON records (header, row to `SMS`, uids,
the outcome line), without I/O; `cli/_bulk_job.py` the journaled run over `send_many()`; this
module the command itself: its options, opening the files, progress, signals, the summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import click

from .._exceptions import ConfigurationError, InvalidMessage
from .._journal import Journal
from .._message import check_callback_url
from .._outcome import KINDS
from . import _records as records
from ._app import app
from ._bulk_job import BulkJob
from ._common import (
    EXIT_BAD_INPUT,
    BadInput,
    concurrency_option,
    credentials,
    credentials_option,
    method_option,
    rate_limit_option,
    reconcile_settle_option,
    sender_id_option,
)
from ._records import generated_uid
from ._reports import DELIVERY_STATES, FINAL_STATES, JournalTracker, listen_address, serve_reports

if TYPE_CHECKING:
    from rich.console import Console

    from .._sender import AsyncSender

# `generated_uid` and `fingerprint` are here too for whoever prepares or checks a journal.
__all__ = ["bulk", "fingerprint", "generated_uid"]

#: Seconds between refreshes of the progress bar's send rate: often enough to read as live.
RATE_REFRESH: Final = 0.5


class CannotListen(Exception):
    """The `--listen` address cannot be served: bad options, nothing was sent."""


def live_path(out: Path) -> Path:
    """Where a run writes its outcomes as they come: beside --out, removed at its end."""
    return out.with_name(out.name + ".live")


def fingerprint(path: Path) -> str:
    """The fingerprint of the CSV file at `path`, as a run records it in its journal and
    derives the uids of rows without one (`generated_uid`)."""
    with path.open("rb") as file:
        return records.fingerprint(file)


def check_recipients(path: Path) -> records.RecipientsFile:
    """The header, fingerprint and record count of the CSV file, read in full before anything
    is sent, so a file that cannot be read stops the command before its first row goes out.

    Raises BadInput naming the file and what is wrong with it.
    """
    try:
        with path.open("rb") as file:
            return records.check_recipients(file)
    except records.BadCsv as exc:
        raise BadInput(f"{path}: {exc}") from None
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
        "Send again the rows whose outcome is unknown (attempted by an earlier run). "
        "RISKS DUPLICATES: such a row may have been sent already (the gateway has no "
        "idempotency key); --reconcile finds out instead."
    ),
)
@click.option(
    "--reconcile",
    is_flag=True,
    help=(
        "Settle every row whose outcome is unknown by delivery report or lookup "
        "(GetDeliveryStatus) before sending: accepted rows are recorded as sent, rows "
        "provably not accepted are sent again. Sends of this run that end unknown are "
        "reconciled the same way."
    ),
)
@reconcile_settle_option
@click.option(
    "--retry-refused",
    is_flag=True,
    help=(
        "Also send again the rows the gateway refused (failed, rejected), once the cause "
        "(password, sender id, balance) is fixed. Rows never accepted for other reasons "
        "(not_sent, invalid) are sent again without it."
    ),
)
@click.option(
    "--callback-url",
    default=None,
    metavar="URL",
    help=(
        "Where the gateway pushes delivery reports for rows without a callback_url of "
        "their own; the job's secret token is added to it. Reaches the --listen address."
    ),
)
@click.option(
    "--listen",
    callback=listen_address,
    default=None,
    metavar="HOST:PORT",
    help="Serve a delivery report receiver on HOST:PORT while the command runs.",
)
@click.option(
    "--collect-reports",
    is_flag=True,
    help="Send nothing: serve the receiver (--listen) and record the reports that come.",
)
@click.option(
    "--reports-wait",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help=(
        "After the sends, keep taking reports until every sent row has a final one or "
        "SECONDS pass. Default: 0, or no limit with --collect-reports."
    ),
)
@rate_limit_option("Requests per second at most (retries included). Default: no limit.")
@concurrency_option("Requests in flight at most.")
@sender_id_option
@method_option
@credentials_option
def bulk(
    recipients: Path,
    out: Path,
    journal_path: Path | None,
    resend_unknown: bool,
    reconcile: bool,
    reconcile_settle: float,
    retry_refused: bool,
    callback_url: str | None,
    listen: tuple[str, int] | None,
    collect_reports: bool,
    reports_wait: float | None,
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

    Every row is journaled before its request goes out. After a crash or a fixed fault (an
    outage, the password, --sender-id), run the same command again: rows never attempted,
    not_sent and invalid rows are sent; sent rows are not sent again; failed and rejected
    rows only with --retry-refused; rows whose outcome is unknown (they may have been sent)
    are listed, and settled with --reconcile (by delivery report or lookup: accepted rows
    are recorded as sent, the others sent again).

    With --callback-url URL --listen HOST:PORT the command takes delivery reports while it
    runs and records each row's delivery state (delivered, failed, pending, no_report);
    --collect-reports takes them later without sending anything.

    Exit status, by the rows' outcome kinds: 0 all sent; 1 some failed, rejected or
    not_sent; 2 bad input (some rows invalid, a bad CSV file or bad options: then nothing is
    sent); 3 some unknown (run again with --reconcile); 130 interrupted.
    """
    from rich.console import Console

    console = Console(stderr=True)
    if reconcile and resend_unknown:
        raise BadInput("--reconcile, --resend-unknown: give one or the other")
    if listen is not None and callback_url is None and not collect_reports:
        raise BadInput(
            "--listen needs --callback-url (or --collect-reports): the address the gateway "
            "pushes reports to, which reaches this listener"
        )
    if reports_wait is not None and listen is None:
        raise BadInput("--reports-wait needs --listen HOST:PORT")
    if collect_reports and (reconcile or resend_unknown or retry_refused):
        raise BadInput(
            "--collect-reports sends nothing: --reconcile, --resend-unknown and "
            "--retry-refused are for a run that sends"
        )
    if collect_reports and listen is None:
        raise BadInput("--collect-reports needs --listen HOST:PORT")
    if callback_url is not None:
        try:
            check_callback_url(callback_url)
        except InvalidMessage as exc:
            raise BadInput(f"--callback-url: {exc}") from None
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
            reconcile_settle=reconcile_settle,
        )
    except (ConfigurationError, InvalidMessage) as exc:
        raise BadInput(str(exc)) from None

    found = check_recipients(recipients)
    journal_file = journal_path or out.with_name(out.name + ".journal")
    try:
        journal = Journal(journal_file, fingerprint=found.fingerprint)
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    tracker = None
    if callback_url is not None or listen is not None or journal.has_report_token():
        tracker = JournalTracker(journal, callback_url)
        sender.tracker = tracker
    try:
        # The live outcomes stream into a file beside --out; --out itself is replaced whole,
        # from the journal, at the end: a run killed half-way leaves it as it was.
        out_file = live_path(out).open("w", encoding="utf-8")
    except OSError as exc:
        journal.close()
        raise BadInput(f"--out {out}: cannot write it ({exc.strerror or exc})") from None
    job = BulkJob(
        recipients=recipients,
        journal=journal,
        out=out_file,
        fingerprint=found.fingerprint,
        resend_unknown=resend_unknown,
        retry_refused=retry_refused,
        reconcile=reconcile,
        tracker=tracker,
        repeated=found.repeated,
        concurrency=concurrency,
        default_sender_id=sender_id,
        on_outcome=lambda: None,
        warn=lambda text: console.print(text, markup=False, highlight=False, soft_wrap=True),
    )
    code = _run_job(
        console=console,
        sender=sender,
        job=job,
        out=out,
        out_file=out_file,
        found=found,
        listen=listen,
        collect_only=collect_reports,
        reports_wait=reports_wait if reports_wait is not None else (None if collect_reports else 0),
    )
    raise SystemExit(code)


def _run_job(
    *,
    console: Console,
    sender: AsyncSender,
    job: BulkJob,
    out: Path,
    out_file: IO[str],
    found: records.RecipientsFile,
    listen: tuple[str, int] | None,
    collect_only: bool,
    reports_wait: float | None,
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
    # The second and last read of the input (`check_recipients` was the first): the rows are
    # streamed from it as the sends go out.
    journal = job.journal
    lines = job.recipients.open(newline="", encoding=records.ENCODING)
    with journal, out_file, lines, progress:
        task = progress.add_task("sending", total=found.rows, rate="")
        job.on_outcome = lambda: progress.advance(task)
        job.warn = lambda text: progress.console.print(
            text, markup=False, highlight=False, soft_wrap=True
        )
        last, to_send, to_reconcile = job.replay_journal()
        if job.resent_unknown:
            progress.console.print(
                f"WARNING: --resend-unknown: sending {job.resent_unknown:,} rows again that "
                "may have been sent already (a duplicate SMS each time); --reconcile finds "
                "out instead.",
                highlight=False,
                soft_wrap=True,
            )
        if collect_only:
            for entry in to_reconcile:
                job.write_entry(entry)
            to_reconcile = []
        earlier = sum(job.counts.values())
        header, rows = records.read_recipients(lines)
        pending = (row for row in rows if row.row > last or row.row in to_send)
        waiting = 0

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
                    await asyncio.sleep(RATE_REFRESH)
                    elapsed = time.monotonic() - started
                    progress.update(task, rate=f"{job.sent_now / max(elapsed, 1e-9):,.0f} msg/s")

            rate_task = asyncio.create_task(show_rate())
            try:
                async with contextlib.AsyncExitStack() as stack:
                    await stack.enter_async_context(sender)
                    if listen is not None and job.tracker is not None:
                        try:
                            await stack.enter_async_context(serve_reports(job.tracker, *listen))
                        except OSError as exc:
                            where = f"--listen {listen[0]}:{listen[1]}"
                            text = f"{where}: cannot serve there ({exc})"
                            raise CannotListen(text) from None
                    if to_reconcile:
                        progress.update(task, description="reconciling")
                        to_send.update(await job.reconcile_rows(sender, to_reconcile))
                        progress.update(task, description="sending")
                    if not collect_only and not job.stopping:
                        await job.run(sender, pending, header)
                    if listen is not None and (reports_wait is None or reports_wait > 0):
                        progress.update(task, description="taking reports")
                        await job.wait_for_reports(reports_wait)
            finally:
                rate_task.cancel()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

        cannot_listen = False
        try:
            asyncio.run(main())
        except CannotListen as exc:
            console.print(str(exc), highlight=False, soft_wrap=True)
            cannot_listen = True
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
        interrupted = interrupted or job.stopping
        job.rewrite(out)
        live_path(out).unlink(missing_ok=True)
        if job.tracker is not None:
            waiting = journal.awaiting_reports(FINAL_STATES)
    _summary(console, job, earlier, found.rows, time.monotonic() - started, interrupted, waiting)
    return EXIT_BAD_INPUT if cannot_listen else job.exit_code(interrupted)


def _summary(
    console: Console,
    job: BulkJob,
    earlier: int,
    total: int,
    elapsed: float,
    interrupted: bool,
    waiting: int,
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
    if job.tracker is not None:
        reports = Table(title="delivery of the sent rows", show_header=True)
        reports.add_column("delivery")
        reports.add_column("rows", justify="right")
        for state in DELIVERY_STATES:
            reports.add_row(state, f"{job.deliveries[state]:,}")
        console.print(reports)
    console.print(
        f"{job.sent_now:,} sent in this run in {elapsed:.1f}s; {earlier:,} rows were "
        "accounted for by earlier runs."
        + (" Interrupted: run the same command again to resume." if interrupted else ""),
        highlight=False,
        soft_wrap=True,
    )
    settled = job.verdicts
    resent = "to send when the job resumes" if interrupted else "sent now"
    if sum(settled.values()):
        console.print(
            f"Reconciled {sum(settled.values()):,} unknown rows: {settled['accepted']:,} had "
            f"been accepted, {settled['not_accepted']:,} had not ({resent}), "
            f"{settled['unknown']:,} could not be told.",
            highlight=False,
            soft_wrap=True,
        )
    if job.counts["unknown"]:
        console.print(
            f"{job.counts['unknown']:,} rows may have been sent: run the same command with "
            "--reconcile to find out by lookup and send only the ones never accepted.",
            highlight=False,
            soft_wrap=True,
        )
    refused = job.counts["failed"] + job.counts["rejected"]
    if refused:
        console.print(
            f"{refused:,} rows were refused by the gateway: once the cause is fixed, run the "
            "same command with --retry-refused to send them again.",
            highlight=False,
            soft_wrap=True,
        )
    if waiting:
        console.print(
            f"{waiting:,} sent rows have no final delivery report yet: collect them later "
            "with the same command and --collect-reports --listen HOST:PORT.",
            highlight=False,
            soft_wrap=True,
        )
    sys.stderr.flush()
