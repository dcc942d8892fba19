"""Crash-safe fan-out on arq: one job per message, workers that share one rate limit.

Why arq (the `[queue]` extra): a worker killed with SIGKILL leaves its jobs in arq's queue,
locked by an "in progress" key that expires `job_timeout + 10` seconds after the job
started; another worker then takes the job up, and every delivery counts against
`max_tries`. Its jobs have ids, so enqueuing the same message twice adds nothing. (taskiq's
Redis stream broker, the other candidate, took a killed worker's job up only once new jobs
arrived, and ran a job longer than its idle timeout more than once while every worker was
alive.) `docs/scale-out.md` has the figures.

arq delivers a job at least once; the campaign's `Ledger` makes that safe: a job marks its
message "attempting" before the request goes out; a delivery that finds the mark reconciles
(`AsyncSender.reconcile`) instead of sending; one that finds an outcome does nothing.

The path of one message: `enqueue()` -> arq's queue -> a worker (`make_worker`) runs
`send_job()` -> the ledger -> `AsyncSender.send_message()` -> the ledger.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import attrs

from .. import _defaults as defaults
from .._backends._pool import timeout_at
from .._exceptions import InvalidMessage, NotSent, OutcomeUnknown, Rejected, SendError
from .._lookup import DeliveryStatus, LookupFailed
from .._message import SMS
from .._outcome import Outcome
from .._reconcile import found_by_lookup
from ._ledger import ATTEMPTING, DONE, Entry, Ledger

if TYPE_CHECKING:
    from arq.connections import ArqRedis, RedisSettings
    from arq.worker import Worker

    from .._reconcile import Reconciliation
    from .._sender import AsyncSender

__all__ = [
    "FUNCTION",
    "QUEUE",
    "WorkerOptions",
    "enqueue",
    "job_id",
    "make_worker",
    "send_job",
]

logger = logging.getLogger(defaults.LOGGER_NAME)

#: The job function's name in arq, and the queue the campaign commands use.
FUNCTION: Final = "haorui_async.send"
QUEUE: Final = "haorui_async:queue"
#: What arq adds to a job's timeout for the lock of a job in progress.
ARQ_LOCK_EXTRA: Final = 10.0
#: Seconds past a job's own budget before arq cuts it (its `timeout`).
ARQ_CUT_EXTRA: Final = 1.0
#: Seconds kept free within a job's timeout for the ledger and the answer's bookkeeping.
JOB_MARGIN: Final = 1.0
#: How long arq keeps a finished job's result (and so refuses a second job of its id).
KEEP_RESULT: Final = 7 * 24 * 3600
#: Seconds a queued job waits at most before arq drops it (its default is a day: too short
#: for a large campaign at a contracted rate).
JOB_EXPIRY: Final = 60 * 24 * 3600
#: Seconds between two looks at the queue by an idle worker.
POLL_DELAY: Final = 0.05
#: Seconds a worker takes a job it found in progress elsewhere to be so still.
BUSY_MEMORY: Final = 1.0

#: What `_reconcile_step` returns for a message provably not accepted.
NOT_ACCEPTED: Final = "not accepted"

#: The context keys `make_worker` fills for `send_job`.
_SENDER: Final = "haorui_async.sender"
_LEDGERS: Final = "haorui_async.ledgers"
_OPTIONS: Final = "haorui_async.options"


def job_id(campaign: str, row: int) -> str:
    """The arq job id of one row of a campaign: the same row is never queued twice."""
    return f"haorui_async:{campaign}:{row}"


@attrs.frozen
class WorkerOptions:
    """How a worker runs.

    Attributes:
        concurrency: jobs (so sends) in flight at most in this worker.
        takeover: seconds after which a killed worker's job is taken up by another (arq's
            lock: the job's timeout plus 10 s); at least 15.
        max_tries: deliveries of a job at most (a redelivery after a crash counts).
        retry_delay: seconds before a job that was not sent (the gateway, Redis or the
            limiter down) or whose lookup failed is tried again.
    """

    concurrency: int = defaults.DEFAULT_MAX_CONCURRENCY
    takeover: float = 30.0
    max_tries: int = 10
    retry_delay: float = 5.0

    @property
    def job_timeout(self) -> float:
        """What a job may take before arq cuts it; arq's lock then lasts until `takeover`."""
        return self.takeover - ARQ_LOCK_EXTRA - ARQ_CUT_EXTRA

    @property
    def job_budget(self) -> float:
        """What a job may spend in all, ending before arq's own cut (`job_timeout`)."""
        return self.job_timeout - JOB_MARGIN

    @property
    def send_deadline(self) -> float:
        """The deadline of one send: what is left of a job's budget for it, a margin kept
        for the ledger's bookkeeping before and after."""
        return self.job_timeout - 2 * JOB_MARGIN


def _ledger(ctx: dict[str, Any], campaign: str) -> Ledger:
    ledgers: dict[str, Ledger] = ctx[_LEDGERS]
    ledger = ledgers.get(campaign)
    if ledger is None:
        ledger = ledgers[campaign] = Ledger(ctx["redis"], campaign)
    return ledger


async def send_job(
    ctx: dict[str, Any], campaign: str, row: int, line: int, fields: Mapping[str, Any]
) -> str:
    """The arq job of one message: send it at most once, whatever the deliveries; return
    the outcome's kind. (See the module's docstring.)

    A job never fails for arq: whatever goes wrong (Redis gone, the budget spent), it asks
    to be tried again (`Retry`), and its last try records an outcome; a job that arq gave
    up on would leave its row without one for good.
    """
    from arq.worker import Retry

    options: WorkerOptions = ctx[_OPTIONS]
    ledger = _ledger(ctx, campaign)
    last_try = ctx["job_try"] >= options.max_tries
    budget = asyncio.get_running_loop().time() + options.job_budget
    try:
        return await _run_job(ctx, ledger, row, line, fields, budget, last_try)
    except Retry:
        raise
    except Exception as exc:
        logger.warning(
            "campaign %s row %d: %s: %s; tried again later", campaign, row, type(exc).__name__, exc
        )
        if last_try:
            return await _give_up(ledger, row, line, fields, f"{type(exc).__name__}: {exc}")
        raise Retry(defer=options.retry_delay) from None


async def _run_job(
    ctx: dict[str, Any],
    ledger: Ledger,
    row: int,
    line: int,
    fields: Mapping[str, Any],
    budget: float,
    last_try: bool,
) -> str:
    from arq.worker import Retry

    sender: AsyncSender = ctx[_SENDER]
    options: WorkerOptions = ctx[_OPTIONS]
    loop = asyncio.get_running_loop()
    try:
        sms = SMS(**fields)
    except (InvalidMessage, TypeError) as exc:
        # `enqueue` queues only rows that are messages: a job of another version, or edited.
        error = (
            exc if isinstance(exc, InvalidMessage) else InvalidMessage("message", None, str(exc))
        )
        await ledger.record_invalid(row, _record(row, line, Outcome(row - 1, None, error=error)))
        return "invalid"
    entry = await ledger.begin(sms.uid, row, line)
    if entry is not None and entry.state == DONE:
        return entry.kind or "unknown"
    if entry is not None and entry.state == ATTEMPTING:
        try:
            async with timeout_at(budget):
                step = await _reconcile_step(sender, ledger, entry, options)
        except TimeoutError:
            step = "the lookup took longer than the job may"
        if isinstance(step, DeliveryStatus):
            found = found_by_lookup(sms.uid, step)
            await ledger.finish(sms.uid, "sent", _reconciled(row, line, found))
            return "sent"
        if step != NOT_ACCEPTED:
            if last_try:
                return await _finish_unknown(ledger, sms, row, line, str(step))
            delay = step if isinstance(step, float) else options.retry_delay
            raise Retry(defer=delay)
        if budget - loop.time() < sender.deadline:
            # Provably not accepted, but too little of this job is left for a whole send:
            # the next delivery sends it as new.
            await ledger.release(sms.uid)
            raise Retry(defer=0)
        await ledger.attempt_again(sms.uid)  # provably not accepted: send it again
    try:
        result = await sender.send_message(sms, reconcile_unknown=False)
    except OutcomeUnknown:
        await ledger.ended_unknown(sms.uid)
        if last_try:
            return await _finish_unknown(ledger, sms, row, line, "its answer was lost")
        # The next delivery reconciles it, once a record has had time to appear.
        raise Retry(defer=sender.config.reconcile_settle) from None
    except SendError as exc:
        if isinstance(exc, NotSent) and not isinstance(exc, Rejected) and not last_try:
            # Nothing went out (the gateway, Redis or the limiter down): a later try sends it.
            await ledger.release(sms.uid)
            raise Retry(defer=options.retry_delay) from None
        await ledger.finish(sms.uid, exc.kind, _record(row, line, Outcome(row - 1, sms, error=exc)))
        return exc.kind
    await ledger.finish(sms.uid, "sent", _record(row, line, Outcome(row - 1, sms, result=result)))
    return "sent"


async def _give_up(
    ledger: Ledger, row: int, line: int, fields: Mapping[str, Any], detail: str
) -> str:
    """The last try failed on its own account: the outcome its ledger entry allows (unknown
    if the message may have gone out, else not sent)."""
    sms = SMS(**fields)
    entry = await ledger.entry(sms.uid)
    if entry is not None and entry.state == DONE:
        return entry.kind or "unknown"
    if entry is not None:
        return await _finish_unknown(ledger, sms, row, line, detail)
    error = NotSent(f"{detail}; no try left", message=sms)
    await ledger.begin(sms.uid, row, line)
    await ledger.finish(sms.uid, "not_sent", _record(row, line, Outcome(row - 1, sms, error=error)))
    return "not_sent"


async def _reconcile_step(
    sender: AsyncSender, ledger: Ledger, entry: Entry, options: WorkerOptions
) -> DeliveryStatus | float | str:
    """One step of reconciling a message that may have gone out, small enough for one try.

    The rule is `AsyncSender.reconcile`'s: found by a lookup, it was accepted; two lookups
    that find nothing, the first `reconcile_settle` seconds after the last attempt ended and
    the second as long after the first, make it not accepted. Here each try makes one lookup
    at most and the ledger keeps the first miss, so no try sleeps: it returns the record
    found, `NOT_ACCEPTED`, the seconds to wait before the next step, or why it cannot tell.

    An attempt whose worker died ended, at the latest, a send's deadline after it began.
    """
    settle = sender.config.reconcile_settle
    now = await ledger.now()
    if entry.missed_at is not None:
        since = entry.missed_at
    elif entry.ended_at is not None:
        since = entry.ended_at
    else:
        since = (entry.attempted_at or now) + options.send_deadline
    if now - since < settle:
        return settle - (now - since)
    try:
        status = await sender.get_delivery_status(uid=entry.uid)
    except LookupFailed as exc:
        return f"the lookup failed: {exc}"
    if status is not None:
        return status
    if entry.missed_at is None:
        await ledger.missed(entry.uid)
        return float(settle)
    try:
        # Lookups with wrong credentials find nothing either: only a working account's
        # misses make a message not accepted.
        await sender._confirm_account()
    except LookupFailed as exc:
        return f"not found, but the account could not be checked: {exc}"
    return NOT_ACCEPTED


async def _finish_unknown(ledger: Ledger, sms: SMS, row: int, line: int, detail: str) -> str:
    error = OutcomeUnknown(f"{detail}; no try left to reconcile it", message=sms)
    await ledger.finish(sms.uid, "unknown", _record(row, line, Outcome(row - 1, sms, error=error)))
    return "unknown"


def _record(row: int, line: int, outcome: Outcome) -> dict[str, Any]:
    from ..cli._records import outcome_record

    return outcome_record(row, line, outcome)


def _reconciled(row: int, line: int, found: Reconciliation) -> dict[str, Any]:
    from ..cli._records import reconciled_record

    return reconciled_record(row, line, found)


async def enqueue(
    pool: ArqRedis, ledger: Ledger, row: int, line: int, fields: Mapping[str, Any], uid: str
) -> bool:
    """Queue one row's job unless the row was queued before; True if it was queued now.

    The job goes in first, the row's mark after: a crash between the two leaves a job that
    a second enqueue offers again, which arq refuses (same id) or, if its result has
    expired, the ledger makes a no-op.
    """
    if await ledger.has_row(row):
        return False
    await pool.enqueue_job(
        FUNCTION,
        ledger.campaign,
        row,
        line,
        dict(fields),
        _job_id=job_id(ledger.campaign, row),
        _expires=JOB_EXPIRY,
    )
    return await ledger.add_row(row, uid)


def make_worker(
    *,
    redis_settings: RedisSettings,
    make_sender: Callable[[ArqRedis | None, WorkerOptions], AsyncSender],
    options: WorkerOptions,
    on_ready: Callable[[], Awaitable[None] | None] | None = None,
) -> Worker:
    """An arq `Worker` running `send_job`, that drains on `handle_sig_wait_for_completion`.

    `make_sender(redis, options)` builds the worker's `AsyncSender` once Redis is reached (its
    rate limit a `RedisRateLimiter` on the same Redis, its deadline `options.send_deadline`).
    """
    from arq import func

    async def startup(ctx: dict[str, Any]) -> None:
        sender = make_sender(ctx["redis"], options)
        await sender.__aenter__()
        ctx[_SENDER] = sender
        ctx[_LEDGERS] = {}
        ctx[_OPTIONS] = options
        if on_ready is not None:
            result = on_ready()
            if result is not None:
                await result

    async def shutdown(ctx: dict[str, Any]) -> None:
        sender: AsyncSender | None = ctx.pop(_SENDER, None)
        if sender is not None:
            await sender.aclose()

    timeout = options.job_timeout
    # arq cuts a job at its timeout and fails it for good, and refuses a delivery past its
    # tries before the job runs: give it room for both, so `send_job`'s own budget and last
    # try decide (the lock of a job in progress lasts the cut + 10 s: the takeover).
    cut = timeout + ARQ_CUT_EXTRA
    return _worker_class()(
        functions=[func(send_job, name=FUNCTION, timeout=cut, max_tries=options.max_tries + 1)],
        queue_name=QUEUE,
        redis_settings=redis_settings,
        max_jobs=options.concurrency,
        job_timeout=timeout,
        max_tries=options.max_tries,
        keep_result=KEEP_RESULT,
        job_completion_wait=int(timeout + JOB_MARGIN),
        poll_delay=POLL_DELAY,
        handle_signals=False,
        on_startup=startup,
        on_shutdown=shutdown,
        log_results=False,
    )


def _worker_class() -> type[Worker]:
    """arq's `Worker`, with two changes to how it takes jobs up.

    - It asks once, for every job id it read, whether the job is in progress elsewhere (one
      pipelined round trip, and not again for a second about those that were), and claims
      only the others, in an order of its own: arq checks them one by one, and every worker
      reads the jobs in progress (the head of the queue) on every poll.
    - A claim that fails because Redis went away is given up, and the slot arq had counted
      for it handed back, instead of the error ending the worker (redis-py turns a
      connection lost under WATCH into a `WatchError`, which arq's poll loop lets escape).
    """
    from arq.constants import in_progress_key_prefix
    from arq.worker import Worker
    from redis.exceptions import ConnectionError, TimeoutError, WatchError

    class _Worker(Worker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            #: Jobs found in progress elsewhere, and until when (loop time) not to ask again.
            self._busy_elsewhere: dict[bytes, float] = {}

        async def start_jobs(self, job_ids: list[bytes]) -> None:
            try:
                if job_ids:
                    job_ids = await self._not_in_progress(job_ids)
                    random.shuffle(job_ids)  # every worker read the same ids
            except (ConnectionError, TimeoutError, OSError) as exc:
                logger.warning("could not read the queue (%s); trying again", exc)
                return
            try:
                await super().start_jobs(job_ids)
            except (WatchError, ConnectionError, TimeoutError, OSError) as exc:
                # Raised after arq counted the job it was claiming, before it started it.
                self.job_counter -= 1
                self.sem.release()
                logger.warning("could not claim a job (%r); trying again", exc)

        async def _not_in_progress(self, job_ids: list[bytes]) -> list[bytes]:
            """The ids of `job_ids` whose jobs no worker has taken. The head of the queue is
            the jobs in progress (each stays queued until it ends); one found in progress
            is not asked about again for `BUSY_MEMORY` seconds (if its worker died, its lock
            outlasts that by far), so a poll asks only about the ids it has not seen."""
            now = asyncio.get_running_loop().time()
            remembered = self._busy_elsewhere
            if len(remembered) > 4 * len(job_ids) + 100:  # forget the ones past their time
                remembered = {k: v for k, v in remembered.items() if v > now}
                self._busy_elsewhere = remembered
            unknown = [one for one in job_ids if remembered.get(one, 0.0) <= now]
            if not unknown:
                return []
            async with self.pool.pipeline(transaction=False) as pipe:
                for one in unknown:
                    pipe.exists(in_progress_key_prefix + one.decode())
                busy = await pipe.execute()
            free = []
            for one, taken in zip(unknown, busy, strict=True):
                if taken:
                    remembered[one] = now + BUSY_MEMORY
                else:
                    free.append(one)
            return free

    return _Worker
