"""When a failed send is tried again, and how long to wait first (tenacity strategies).

Only failures that prove the gateway never accepted the message are retried (`NotSent`, but
not its `Rejected` subclass). `OutcomeUnknown` is retried only when the caller opts in with
`retry_ambiguous=True`, at the risk of a duplicate SMS.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import attrs
import tenacity

from . import _defaults as defaults
from ._exceptions import NotSent, OutcomeUnknown, Rejected, SendError

__all__ = ["RetryPolicy"]

logger = logging.getLogger(defaults.LOGGER_NAME)


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen
class RetryPolicy:
    """How failed sends are retried.

    Attributes:
        attempts: total attempts per message, the first one included (1 turns retries off).
        backoff_base: the first back-off's upper bound, in seconds; it doubles per attempt.
        backoff_max: the largest back-off, in seconds.
        retry_after_cap: the longest `Retry-After` waited out; a longer one gives up at once.
        retry_ambiguous: also retry `OutcomeUnknown` failures. This risks a duplicate SMS: the
            gateway may have accepted the first request, and it has no idempotency key.
    """

    attempts: int = attrs.field(default=defaults.DEFAULT_ATTEMPTS)
    backoff_base: float = attrs.field(default=defaults.DEFAULT_BACKOFF_BASE, validator=_positive)
    backoff_max: float = attrs.field(default=defaults.DEFAULT_BACKOFF_MAX, validator=_positive)
    retry_after_cap: float = attrs.field(
        default=defaults.DEFAULT_RETRY_AFTER_CAP, validator=_positive
    )
    retry_ambiguous: bool = False

    @attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError(f"attempts must be >= 1, got {value!r}")

    def should_retry(self, exc: BaseException) -> bool:
        """Whether this failure may be tried again under this policy."""
        if isinstance(exc, NotSent):
            return not isinstance(exc, Rejected)
        return self.retry_ambiguous and isinstance(exc, OutcomeUnknown)

    def backoff(self, failures: int, rand: Callable[[], float] = random.random) -> float:
        """Full-jitter exponential back-off after the `failures`-th failure."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (failures - 1))
        return ceiling * rand()


class _Wait(tenacity.wait.wait_base):
    """Wait as the gateway asked (`Retry-After`), else full-jitter exponential back-off."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = _failure(retry_state)
        if exc.retry_after is not None:
            return exc.retry_after
        return self.policy.backoff(retry_state.attempt_number)


class _Stop(tenacity.stop.stop_base):
    """Give up when attempts run out, or when the next wait is too long or past the deadline."""

    def __init__(self, policy: RetryPolicy, deadline: float, clock: Callable[[], float]) -> None:
        self.policy = policy
        self.deadline = deadline
        self.clock = clock

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        exc = _failure(retry_state)
        if retry_state.attempt_number >= self.policy.attempts:
            return True
        if exc.retry_after is not None and exc.retry_after > self.policy.retry_after_cap:
            logger.debug(
                "giving up uid=%s: Retry-After %.1fs exceeds the cap of %.1fs",
                exc.uid,
                exc.retry_after,
                self.policy.retry_after_cap,
            )
            return True
        if self.clock() + retry_state.upcoming_sleep >= self.deadline:
            logger.debug("giving up uid=%s: the next attempt would pass the deadline", exc.uid)
            return True
        return False


def _failure(retry_state: tenacity.RetryCallState) -> SendError:
    assert retry_state.outcome is not None
    exc = retry_state.outcome.exception()
    assert isinstance(exc, SendError)
    return exc


def _log_before_sleep(retry_state: tenacity.RetryCallState) -> None:
    exc = _failure(retry_state)
    logger.debug(
        "retrying uid=%s in %.3fs after attempt %d: %s",
        exc.uid,
        retry_state.upcoming_sleep,
        retry_state.attempt_number,
        type(exc).__name__,
    )


def retrying(
    policy: RetryPolicy,
    *,
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], object],
) -> tenacity.AsyncRetrying:
    """A tenacity controller for one message whose first attempt has already failed."""
    return tenacity.AsyncRetrying(
        sleep=sleep,  # type: ignore[arg-type]  # tenacity wants an awaitable-returning sleep
        stop=_Stop(policy, deadline, clock),
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception(policy.should_retry),
        before_sleep=_log_before_sleep,
        reraise=True,
    )
