"""When a failed send is tried again, and how long to wait first: `RetryPolicy.next_wait()`.

Only failures that prove the gateway never accepted the message are retried (`NotSent`, but
not its `Rejected` subclass). `OutcomeUnknown` is retried only when the caller opts in with
`retry_ambiguous=True`, at the risk of a duplicate SMS.

The decision is pure: given the failure, the attempts made, the time and the deadline, it
answers "wait this long, then try again" or "stop", and logs why. The back-off is tenacity's
exponential strategy with full jitter; the loop that acts on the answer is the sender's
(`AsyncSender.send_message`), so a send whose first attempt succeeds costs nothing here.
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
        """Full-jitter exponential back-off after the `failures`-th failure: uniform in
        [0, min(backoff_max, backoff_base * 2 ** (failures - 1))]."""
        state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]  # no retry loop: the strategy alone
        state.attempt_number = failures
        ceiling: float = self._ceiling(state)
        return ceiling * rand()

    @property
    def _ceiling(self) -> tenacity.wait.wait_base:
        return tenacity.wait_exponential(multiplier=self.backoff_base, max=self.backoff_max)

    def next_wait(
        self, failure: SendError, attempts: int, *, now: float, deadline: float
    ) -> float | None:
        """Seconds to wait before trying again after `failure`, or None to stop.

        `attempts` is how many requests were made; `now` and `deadline` are on one clock.
        """
        uid = failure.uid
        if not self.should_retry(failure):
            logger.debug("uid=%s not retried: %s", uid, type(failure).__name__)
            return None
        if attempts >= self.attempts:
            logger.debug("giving up uid=%s: %d attempts made", uid, attempts)
            return None
        if failure.retry_after is not None:
            if failure.retry_after > self.retry_after_cap:
                logger.debug(
                    "giving up uid=%s: Retry-After %.1fs exceeds the cap of %.1fs",
                    uid,
                    failure.retry_after,
                    self.retry_after_cap,
                )
                return None
            wait = failure.retry_after
        else:
            wait = self.backoff(attempts)
        if now + wait >= deadline:
            logger.debug("giving up uid=%s: the next attempt would pass the deadline", uid)
            return None
        logger.debug(
            "retrying uid=%s in %.3fs after attempt %d: %s",
            uid,
            wait,
            attempts,
            type(failure).__name__,
        )
        return wait
