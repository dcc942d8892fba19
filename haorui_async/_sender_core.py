"""`SenderCore`: the hot path of `AsyncSender`, one message through admission, a backend and
the retries (`send_message` hands over `_send`, one `_attempt` each).

`AsyncSender` (`_sender`) is this class with its construction and its public face. They live
apart for the compiled build (mypyc), which compiles this module: compiled, a public signature
converts or refuses a value before its body runs (`max_concurrency=True` would become 1, a
phone number of a wrong type would be a `TypeError`), so `AsyncSender.__init__` and `send`,
which hand every value to the checks that name the field, stay Python.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import attrs

from . import _defaults as defaults
from ._admission import Admission, Late
from ._backends import Backend, translate
from ._backends._pool import clock_of
from ._config import SenderConfig
from ._exceptions import NotSent, OutcomeUnknown, SenderClosed, SendError
from ._lookups import accepted_by
from ._message import SMS
from ._native import caused_by, mypyc_attr
from ._protocol import Request, RequestBuilder, SendResult, read_response
from ._reconcile import DeliveryTracker, Reconciliation
from ._secrets import Secret
from ._telemetry import Observer, SendTrace

__all__ = ["CANCELLED_AS", "SenderCore", "State"]

#: The attribute the SDK's send sets on the `CancelledError` it ends with: the `SendError`
#: the cancellation amounts to. `OutcomeUnknown` where a request of it may have reached the
#: gateway (the cancellation landed in an exchange, or after an attempt whose outcome is
#: unknown), else `NotSent`. The send still raises `CancelledError`, as a cancelled coroutine
#: does; the `Sender` facade (whose `close()` cancels its calls) and `send_many` (which
#: records an outcome for each send it cancels) read this to tell the truth.
CANCELLED_AS = "_haorui_cancelled_as"

logger = logging.getLogger(defaults.LOGGER_NAME)


class State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


@mypyc_attr(allow_interpreted_subclasses=True)
class SenderCore:
    """What a send reads of its sender, and the send itself; `AsyncSender` sets every
    attribute when it is built."""

    config: SenderConfig
    tracker: DeliveryTracker | None
    _password: Secret
    _encode: RequestBuilder
    _backend: Backend
    _admission: Admission
    _sleep: Callable[[float], Awaitable[None]]
    _clock: Callable[[], float] | None
    #: The event loop of the last send and its clock (`clock_of`): looked up once per loop.
    _loop: asyncio.AbstractEventLoop | None
    _loop_time: Callable[[], float]
    _state: State
    #: What watches the sends, or None: then a send pays an `is None` check, no more.
    _observer: Observer | None

    async def _reconcile(
        self, what: OutcomeUnknown | SMS | str, deadline: float | None, *, age: float | None = None
    ) -> Reconciliation:
        """`LookupsMixin._reconcile`, which `AsyncSender` inherits."""
        raise NotImplementedError

    def send_message(
        self, sms: SMS, *, reconcile_unknown: bool | None = None
    ) -> Coroutine[Any, Any, SendResult]:
        """Send a prepared `SMS`: `await sender.send_message(sms)`. Raises as `send()` does.

        `reconcile_unknown` overrides the sender's option of that name for this message.
        """
        # A method handing over the module's coroutine, not a coroutine method: compiled, a
        # coroutine method of a class Python may subclass keeps its state in two objects, a
        # module's coroutine in one (and each one is walked by the garbage collector for as
        # long as its send is in flight). Nothing is checked here: all of it is in `_send`,
        # so a closed sender still fails where the send is awaited.
        return _send(self, sms, reconcile_unknown)


# -- one message, each attempt --------------------------------------------------------------
# Module functions taking the sender, for the reason `send_message` gives.


async def _send(sender: SenderCore, sms: SMS, reconcile_unknown: bool | None) -> SendResult:
    """`sender.send_message(sms)`: one message through its attempts, to its one outcome."""
    if sender._state is not State.OPENED:
        if sender._state is State.CLOSED:
            raise SenderClosed("this AsyncSender is closed; create a new one")
        sender._state = State.OPENED
    loop = asyncio.get_running_loop()
    if loop is not sender._loop:
        sender._loop, sender._loop_time = loop, clock_of(loop)
    loop_time = sender._loop_time
    clock = sender._clock or loop_time
    config = sender.config
    deadline = clock() + config.deadline
    if reconcile_unknown is None:
        reconcile_unknown = config.reconcile_unknown
    tracker = sender.tracker
    if tracker is not None:
        if sms.callback_url is None and tracker.callback_url is not None:
            sms = attrs.evolve(sms, callback_url=tracker.callback_url)
        if sms.callback_url == tracker.callback_url:
            tracker.sent(sms.uid)  # before the request goes out, so its report is applied
    request = sender._encode(sms)
    trace = None if sender._observer is None else sender._observer.start(sms)
    attempt = 1
    made = 0  # attempts that ended in a failure so far
    # The last failure that may have reached the gateway and was not proven otherwise (a
    # lookup): while there is one, no later failure makes the message "not sent".
    ambiguous: OutcomeUnknown | None = None
    try:
        while True:
            try:
                # The deadline in event-loop time (an injected clock may run apart).
                at = deadline if sender._clock is None else loop_time() + deadline - clock()
                result = await _attempt(sender, sms, request, at, attempt, trace)
                break
            except SendError as error:
                failure = error
            # Decided out of the except block, which holds no await: what follows may
            # await a reconciliation, and compiled (mypyc), an exception handled across
            # an await was seen as the context of another task's exception.
            made = attempt
            failure.ended_at = clock()
            if isinstance(failure, OutcomeUnknown):
                ambiguous = failure
            if (
                isinstance(failure, OutcomeUnknown)
                and reconcile_unknown
                and not config.retry.retry_ambiguous
            ):
                found = await sender._reconcile(failure, deadline)
                if trace is not None:
                    trace.reconciled(found.verdict)
                if found.verdict == "accepted":
                    result = accepted_by(found, sms, attempt)
                    break
                if found.verdict == "unknown":
                    raise failure
                ambiguous = None  # looked up: not accepted
                if attempt >= config.retry.attempts:
                    # Provably not accepted, and no attempt left to send it again.
                    raise caused_by(
                        NotSent(
                            f"{failure.detail}; reconciled: not accepted ({found.detail})",
                            message=sms,
                            status_code=failure.status_code,
                            attempts=attempt,
                        ),
                        failure,
                    )
                wait = 0.0  # provably not accepted: send it again
            else:
                wait_or_stop = config.retry.next_wait(
                    failure, attempt, now=clock(), deadline=deadline
                )
                if wait_or_stop is None:
                    if ambiguous is None or failure.may_have_been_sent:
                        raise failure
                    # An earlier attempt may have been accepted (`retry_ambiguous`): this
                    # last one's failure says nothing of it.
                    raise caused_by(still_unknown(ambiguous, failure, made), failure)
                wait = wait_or_stop
            if trace is not None:
                trace.retrying(failure, attempt, wait)
            if wait:
                await sender._sleep(wait)
            attempt += 1
    except BaseException as exc:
        if ambiguous is not None and isinstance(exc, SenderClosed):
            # Closed before the next attempt, or during the lookup: what may have been
            # accepted still may have been.
            unknown = still_unknown(ambiguous, exc, made)
            if trace is not None:
                trace.end(None, unknown)
            raise caused_by(unknown, exc)
        if isinstance(exc, asyncio.CancelledError) and getattr(exc, CANCELLED_AS, None) is None:
            # Not cancelled in an exchange (which says so itself): unknown if an earlier
            # attempt may have been accepted, else nothing of it reached the gateway.
            setattr(
                exc,
                CANCELLED_AS,
                ambiguous
                if ambiguous is not None
                else NotSent(
                    "cancelled before a request of it reached the gateway",
                    message=sms,
                    attempts=made,
                ),
            )
        if trace is not None:
            trace.end(None, exc)
        raise
    if trace is not None:
        trace.end(result, None)
    return result


def still_unknown(
    ambiguous: OutcomeUnknown, last: SenderClosed | SendError, attempts: int
) -> OutcomeUnknown:
    """What a send ends in when an earlier attempt (`ambiguous`) may have been accepted and
    what came after, `last`, did not settle it: `OutcomeUnknown`, saying both."""
    if isinstance(last, SendError):
        then, status, ended_at = last.detail, last.status_code, last.ended_at
    else:
        then, status, ended_at = str(last), ambiguous.status_code, ambiguous.ended_at
    unknown = OutcomeUnknown(
        f"attempt {ambiguous.attempts} may have been accepted ({ambiguous.detail}); then: {then}",
        message=ambiguous.message,
        status_code=status,
        attempts=attempts,
    )
    unknown.ended_at = ended_at
    unknown.timed_out = ambiguous.timed_out
    return unknown


async def _attempt(
    sender: SenderCore,
    sms: SMS,
    request: Request,
    deadline: float,
    attempt: int,
    trace: SendTrace | None,
) -> SendResult:
    """One request for `sms` before `deadline` (event-loop time): wait for its turn, send,
    read the answer."""
    admission = sender._admission
    # `_loop_time` is the running loop's clock: `_send` set it just before.
    if not admission.enter_now(deadline, sender._loop_time()):
        try:
            await admission.enter(deadline, trace)
        except Late as late:
            raise caused_by(NotSent(str(late), message=sms, attempts=attempt), None)
    if sender._state is State.CLOSED:
        admission.leave()
        raise SenderClosed("this AsyncSender is closed; create a new one")
    lost: SendError | None = None
    try:
        if trace is None:
            answer = await sender._backend.exchange(request, deadline)
        else:
            answer = await trace.exchange(sender._backend, request, deadline)
    except Exception as exc:
        # The one place a transport's failure becomes the SDK's (`translate`).
        lost = translate(exc, sms, attempt, sender._password)
        if lost.__cause__ is exc:
            raise caused_by(lost, exc)
    except asyncio.CancelledError as cancelled:
        # Cancelled with the request perhaps at the gateway (see `CANCELLED_AS`).
        setattr(
            cancelled,
            CANCELLED_AS,
            OutcomeUnknown(
                "cancelled during the exchange: the request may have reached the gateway",
                message=sms,
                attempts=attempt,
            ),
        )
        raise
    finally:
        admission.leave()
    if lost is not None:
        # Raised outside the except block: the original carried the password.
        raise lost
    try:
        result = read_response(
            answer.status,
            answer.headers,
            answer.body,
            sms,
            attempts=attempt,
            secret=sender._password,
        )
    except SendError as failure:
        # An answer that is not the documented one for this message: what else comes on
        # its connection cannot be trusted either.
        answer.finish(keep=not isinstance(failure, OutcomeUnknown))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("attempt %d uid=%s: %s", attempt, sms.uid, type(failure).__name__)
        admission.note(failure, sender.config.retry.retry_after_cap)
        # Raised on from here: the frames that read the answer hold its body, and a gateway
        # may echo the password in it (a traceback printed with its locals shows them).
        raise failure.with_traceback(None)
    answer.finish(keep=True)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "attempt %d uid=%s: accepted, message_id=%s", attempt, sms.uid, result.message_id
        )
    return result
