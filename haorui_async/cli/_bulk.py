"""`haorui-async bulk`: send every row of a CSV file, crash-safe, resumable.

Each row is journaled (`haorui_async._journal`) before its request can go out, and its outcome
after. Running the same command again after a crash (even `kill -9`) sends every row never
attempted, never sends again a row whose outcome is recorded, and lists the rows attempted
without a recorded outcome as unknown (sent again only with `--resend-unknown`).

The outcomes file is rewritten from the journal on every run: one JSON line per row.

Three rooms: `cli/_records.py` holds the CSV and JSON records (header, row to `SMS`, uids,
the outcome line), without I/O; `cli/_bulk_job.py` the journaled run over `send_many()`; this
module the command itself: its options, opening the files, progress, signals, the summary.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import click

from .. import _defaults as defaults
from .._exceptions import ConfigurationError, InvalidMessage
from .._journal import Journal
from .._outcome import KINDS
from . import _records as records
from ._app import app
from ._bulk_job import BulkJob
from ._common import BadInput, credentials, credentials_option, sender_id_option
from ._records import generated_uid

if TYPE_CHECKING:
    from rich.console import Console

    from .._sender import AsyncSender

# `generated_uid` and `fingerprint` are here too for whoever prepares or checks a journal.
__all__ = ["bulk", "fingerprint", "generated_uid"]

#: Seconds between refreshes of the progress bar's send rate: often enough to read as live.
RATE_REFRESH: Final = 0.5


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

    found = check_recipients(recipients)
    journal_file = journal_path or out.with_name(out.name + ".journal")
    try:
        journal = Journal(journal_file, fingerprint=found.fingerprint)
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
        found=found,
        out_file=out_file,
        resend_unknown=resend_unknown,
        concurrency=concurrency,
        sender_id=sender_id,
    )
    raise SystemExit(code)


def _run_job(
    *,
    console: Console,
    sender: AsyncSender,
    journal: Journal,
    recipients: Path,
    found: records.RecipientsFile,
    out_file: IO[str],
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
    # The second and last read of the input (`check_recipients` was the first): the rows are
    # streamed from it as the sends go out.
    lines = recipients.open(newline="", encoding=records.ENCODING)
    with journal, out_file, lines, progress:
        task = progress.add_task("sending", total=found.rows, rate="")
        job = BulkJob(
            recipients=recipients,
            journal=journal,
            out=out_file,
            fingerprint=found.fingerprint,
            resend_unknown=resend_unknown,
            concurrency=concurrency,
            default_sender_id=sender_id,
            on_outcome=lambda: progress.advance(task),
            warn=lambda text: progress.console.print(
                text, markup=False, highlight=False, soft_wrap=True
            ),
        )
        last, to_send = job.replay_journal()
        earlier = sum(job.counts.values())
        header, rows = records.read_recipients(lines)
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
                    await asyncio.sleep(RATE_REFRESH)
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
    _summary(console, job, earlier, found.rows, time.monotonic() - started, interrupted)
    return job.exit_code(interrupted)


def _summary(
    console: Console, job: BulkJob, earlier: int, total: int, elapsed: float, interrupted: bool
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
