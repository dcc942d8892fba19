"""`haorui-async campaign enqueue|status` and `haorui-async worker`: a campaign on arq + Redis.

`campaign enqueue` turns each row of a CSV file (the `bulk` command's format and stable
uids) into one arq job; `worker` runs the jobs, many workers on many hosts sharing one rate
limit in Redis; `campaign status` counts the outcomes the workers recorded in the campaign's
ledger. The machinery is in `haorui_async.redis._queue`; this module holds the commands.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from .. import _defaults as defaults
from .._exceptions import ConfigurationError, InvalidMessage
from .._outcome import KINDS
from . import _records as records
from ._app import app
from ._bulk_job import MISSING_SENDER_ID
from ._common import (
    EXIT_BAD_INPUT,
    EXIT_SENT,
    BadInput,
    concurrency_option,
    credentials,
    credentials_option,
    exit_code_for_counts,
    method_option,
    rate_limit_option,
    reconcile_settle_option,
    sender_id_option,
)

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from .._sender import AsyncSender
    from ..redis._ledger import Entry, Ledger
    from ..redis._queue import WorkerOptions

__all__ = ["campaign", "worker"]

ENV_REDIS_URL: Final = "HAORUI_REDIS_URL"
DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
#: `campaign status`: some rows have no final outcome yet (sysexits' EX_TEMPFAIL: try later).
EXIT_PENDING: Final = 75
#: Seconds between two looks at the ledger by `campaign status --wait`.
STATUS_POLL: Final = 0.5
#: Seconds a command's Redis commands are retried through a restart of the server.
REDIS_RETRY_SECONDS: Final = 60.0
#: The states of a row not final yet, as `campaign status` counts them.
PENDING_STATES: Final = ("queued", "in_progress")

logger = logging.getLogger(defaults.LOGGER_NAME)


def redis_option(function: Any) -> Any:
    return click.option(
        "--redis",
        "redis_url",
        envvar=ENV_REDIS_URL,
        show_envvar=True,
        default=DEFAULT_REDIS_URL,
        show_default=True,
        help="The Redis server the workers share (queue, ledger, rate limit).",
    )(function)


def _needs_queue() -> None:
    try:
        import arq  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        raise BadInput(
            f"this command needs the [queue] extra ({exc}): pip install 'haorui-async[queue]'"
        ) from None


def _redis_settings(url: str) -> Any:
    """arq's settings for `url`: commands retried through a restart of the server."""
    from arq.connections import RedisSettings
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError, TimeoutError

    settings = RedisSettings.from_dsn(url)
    settings.retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), int(REDIS_RETRY_SECONDS))
    settings.retry_on_error = [ConnectionError, TimeoutError, OSError]
    settings.conn_retries = int(REDIS_RETRY_SECONDS)
    settings.conn_retry_delay = 1
    return settings


async def _pool(url: str) -> ArqRedis:
    from arq import create_pool

    from ..redis._queue import QUEUE

    return await create_pool(_redis_settings(url), default_queue_name=QUEUE)


@app.group("campaign")
def campaign() -> None:
    """A campaign spread over worker processes: enqueue its rows, watch its outcomes."""


@campaign.command("enqueue")
@click.argument(
    "recipients", type=click.Path(exists=True, dir_okay=False, path_type=Path), metavar="CSV"
)
@click.option("--campaign", "name", required=True, help="The campaign's name.")
@sender_id_option
@redis_option
def enqueue(recipients: Path, name: str, sender_id: str | None, redis_url: str) -> None:
    """Queue one job per row of CSV (the bulk command's columns and stable uids).

    Enqueuing the same file again adds nothing; another file under the same campaign name is
    refused. Rows that are not messages are reported with their line and recorded as
    "invalid". Exit status: 0 every row queued (now or before), 2 some rows invalid or bad input.
    """
    _needs_queue()
    from ._bulk import check_recipients

    found = check_recipients(recipients)
    try:
        counts = asyncio.run(_enqueue(recipients, found, name, sender_id, redis_url))
    except ConfigurationError as exc:
        raise BadInput(str(exc)) from None
    click.echo(
        f"campaign {name}: {counts['queued']:,} rows queued, {counts['before']:,} queued "
        f"before, {counts['invalid']:,} invalid",
        err=True,
    )
    raise SystemExit(EXIT_BAD_INPUT if counts["invalid"] else EXIT_SENT)


async def _enqueue(
    recipients: Path,
    found: records.RecipientsFile,
    name: str,
    sender_id: str | None,
    redis_url: str,
) -> Counter[str]:
    from ..redis._ledger import Ledger
    from ..redis._queue import enqueue as enqueue_row

    pool = await _pool(redis_url)
    counts: Counter[str] = Counter(queued=0, before=0, invalid=0)
    try:
        ledger = Ledger(pool, name)
        job = await ledger.claim(found.fingerprint)
        with recipients.open(newline="", encoding=records.ENCODING) as lines:
            header, rows = records.read_recipients(lines)
            for row in rows:
                try:
                    sms = records.build_message(header, row, fingerprint=found.fingerprint, job=job)
                    if sms.sender_id is None and sender_id is None:
                        raise InvalidMessage("sender_id", None, MISSING_SENDER_ID)
                    holder = await ledger.claim_uid(sms.uid, row.row)
                    if holder != row.row:
                        raise InvalidMessage(
                            "uid",
                            sms.uid,
                            f"already the uid of row {holder}: each message needs its own",
                        )
                except ValueError as exc:
                    if await ledger.add_row(row.row, ""):
                        await ledger.record_invalid(row.row, records.bad_row_record(row, exc))
                        click.echo(f"{recipients}: line {row.line}: skipped: {exc}", err=True)
                    counts["invalid"] += 1
                    continue
                fields = _fields(sms, sender_id)
                queued = await enqueue_row(pool, ledger, row.row, row.line, fields, sms.uid)
                counts["queued" if queued else "before"] += 1
    finally:
        await pool.aclose()
    return counts


def _fields(sms: Any, sender_id: str | None) -> dict[str, Any]:
    """The job's copy of a message: everything a worker needs to build the same `SMS`."""
    return {
        "phonenumber": sms.phonenumber,
        "textmessage": sms.textmessage,
        "uid": sms.uid,
        "sms_type": sms.sms_type,
        "encoding": sms.encoding,
        "sender_id": sms.sender_id or sender_id,
        "callback_url": sms.callback_url,
    }


@campaign.command("status")
@click.argument("name")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Wait until every row has a final outcome, SECONDS at most.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write one JSON line per row, as the bulk command's outcomes file.",
)
@redis_option
def status(name: str, wait: float | None, out: Path | None, redis_url: str) -> None:
    """Count the rows of campaign NAME by outcome (and those queued or in progress).

    Exit status as the bulk command's once every row has a final outcome (0 all sent; 1 some
    failed, rejected or not_sent; 2 some invalid; 3 some unknown); 75 while rows are still
    queued or in progress.
    """
    _needs_queue()
    rows, lines = asyncio.run(_status(name, wait, redis_url))
    if not rows:
        raise BadInput(f"campaign {name}: no rows were enqueued under this name")
    counts = Counter(state for state, _ in rows.values())
    if out is not None:
        with out.open("w", encoding="utf-8") as file:
            for row in sorted(lines):
                file.write(records.record_line(lines[row]) + "\n")
    for state in (*KINDS, *PENDING_STATES):
        click.echo(f"{state:>12} {counts[state]:>10,}")
    click.echo(f"{'total':>12} {len(rows):>10,}")
    if any(counts[state] for state in PENDING_STATES):
        raise SystemExit(EXIT_PENDING)
    raise SystemExit(exit_code_for_counts(counts))


async def _status(
    name: str, wait: float | None, redis_url: str
) -> tuple[dict[int, tuple[str, str]], dict[int, dict[str, Any]]]:
    from ..redis._ledger import Ledger

    pool = await _pool(redis_url)
    started = time.monotonic()
    try:
        ledger = Ledger(pool, name)
        while True:
            rows, lines = await _read_status(ledger)
            pending = any(state in PENDING_STATES for state, _ in rows.values())
            if not pending or wait is None or time.monotonic() - started >= wait:
                return rows, lines
            await asyncio.sleep(STATUS_POLL)
    finally:
        await pool.aclose()


async def _read_status(
    ledger: Ledger,
) -> tuple[dict[int, tuple[str, str]], dict[int, dict[str, Any]]]:
    """Each row's state (an outcome kind, "queued" or "in_progress") and uid, and its line."""
    enqueued = await ledger.rows()
    entries = {entry.uid: entry for entry in await ledger.entries()}
    invalid = await ledger.invalid()
    rows: dict[int, tuple[str, str]] = {}
    lines: dict[int, dict[str, Any]] = {}
    for row, uid in enqueued.items():
        state, line = _row_state(row, uid, entries.get(uid), invalid)
        if state == "in_progress" and await _job_gone(ledger, row):
            # Its job is over. A job records its outcome before it ends, so the entry read
            # now has it, if any: the one read above may predate the job's last steps.
            state, line = _row_state(row, uid, await ledger.entry(uid), invalid)
            if state == "in_progress":
                # Over without an outcome (arq cut it, say): it may have been sent.
                state = "unknown"
                line = {"row": row, "uid": uid, "kind": "unknown", "may_have_been_sent": True,
                        "detail": "its job ended without recording an outcome"}  # fmt: skip
        rows[row] = (state, uid)
        lines[row] = line
    return rows, lines


def _row_state(
    row: int, uid: str, entry: Entry | None, invalid: Mapping[int, dict[str, Any]]
) -> tuple[str, dict[str, Any]]:
    """The state of `row` by its ledger entry, and its line."""
    if row in invalid:
        return "invalid", invalid[row]
    if entry is not None and entry.state == "done" and entry.record is not None:
        return entry.kind or "unknown", dict(entry.record)
    state = "queued" if entry is None else "in_progress"
    return state, {"row": row, "uid": uid, "kind": None, "state": state}


async def _job_gone(ledger: Ledger, row: int) -> bool:
    """Whether the arq job of `row` is over (finished, or gone) though its ledger entry is
    still "attempting": arq gave up on it (a job cut at its timeout, say)."""
    from arq.jobs import Job, JobStatus

    from ..redis._queue import QUEUE, job_id

    job = Job(job_id(ledger.campaign, row), ledger.redis, _queue_name=QUEUE)
    return await job.status() in (JobStatus.complete, JobStatus.not_found)


@app.command("worker")
@rate_limit_option("Requests per second for the whole account, shared by every worker (in Redis).")
@concurrency_option("Sends in flight at most in this worker.")
@click.option(
    "--takeover",
    type=click.FloatRange(min=15),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="A killed worker's jobs are taken up by the others after this long.",
)
@click.option(
    "--max-tries",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Deliveries of one job at most (a redelivery after a crash counts).",
)
@reconcile_settle_option
@sender_id_option
@method_option
@redis_option
@credentials_option
def worker(
    rate_limit: float | None,
    concurrency: int,
    takeover: float,
    max_tries: int,
    reconcile_settle: float,
    sender_id: str | None,
    method: str,
    redis_url: str,
    credentials_file: Path | None,
) -> None:
    """Run the jobs of every campaign enqueued in Redis, until SIGTERM or Ctrl-C (then it
    finishes the sends in flight, and starts no new one).

    Every worker of an account shares one --rate-limit, held in Redis; a 429's pause seen by
    one worker pauses all. A message is marked in the campaign's ledger before its request
    goes out: a job delivered again (its worker was killed) is reconciled, never sent twice.
    """
    _needs_queue()
    from ..redis._queue import WorkerOptions

    creds = credentials(credentials_file)
    options = WorkerOptions(
        concurrency=concurrency,
        takeover=takeover,
        max_tries=max_tries,
        retry_delay=reconcile_settle,
    )
    from .._sender import AsyncSender

    def make_sender(redis: Any, options: WorkerOptions) -> AsyncSender:
        from ..redis import RedisRateLimiter

        limit = None
        if rate_limit is not None and redis is not None:
            key = f"haorui_async:rate:{creds['api_id'] or os.environ.get(defaults.ENV_API_ID)}"
            limit = RedisRateLimiter(redis, rate_limit, key=key)
        return AsyncSender(
            api_id=creds["api_id"],
            api_password=creds["api_password"],
            base_url=creds["base_url"],
            sender_id=sender_id,
            method="GET" if method.upper() == "GET" else "POST",
            rate_limit=limit,
            max_concurrency=concurrency,
            deadline=options.send_deadline,
            reconcile_settle=reconcile_settle,
        )

    try:
        make_sender(None, options)  # bad credentials or options: refused before Redis
    except (ConfigurationError, InvalidMessage) as exc:
        raise BadInput(str(exc)) from None
    asyncio.run(_work(redis_url, make_sender, options))


async def _work(redis_url: str, make_sender: Any, options: WorkerOptions) -> None:
    from ..redis._queue import make_worker

    def ready() -> None:
        click.echo(f"worker ready: {options.concurrency} sends at most, {redis_url}", err=True)
        sys.stderr.flush()

    runner = make_worker(
        redis_settings=_redis_settings(redis_url),
        make_sender=make_sender,
        options=options,
        on_ready=ready,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stopping.is_set():
            runner.handle_sig(sig)  # a second signal: cancel the sends in flight
            return
        stopping.set()
        click.echo("stopping: finishing the sends in flight (again to cancel them)", err=True)
        runner.handle_sig_wait_for_completion(sig)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        await runner.async_run()
    except asyncio.CancelledError:
        if not stopping.is_set():
            raise
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        try:
            await runner.close()
        except asyncio.CancelledError:
            # The sends a second signal cancelled end so (arq gathers them, Python 3.13
            # raises it there): what was asked for, not a failure of the worker.
            if not stopping.is_set():
                raise
    click.echo(json.dumps({"worker": "stopped", "jobs": runner.jobs_complete}), err=True)
