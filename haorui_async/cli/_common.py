"""What every command shares: credentials, the sender id, exit codes, describing failures,
and timing a fan-out of sends (`demo`, `bench`)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import click

from .. import _defaults as defaults
from .._bulk import send_many
from .._exceptions import ConfigurationError, HaoruiError, SendError
from .._message import SMS
from .._outcome import KINDS, OutcomeKind, kind_of
from .._sender import AsyncSender

#: Exit codes of the commands that send.
EXIT_SENT: Final = 0
EXIT_FAILED: Final = 1  # the gateway refused it, or it provably was not sent
EXIT_BAD_INPUT: Final = 2  # bad input or configuration: nothing was sent (click uses 2 too)
EXIT_UNKNOWN: Final = 3  # it may have been sent: check before sending again
EXIT_INTERRUPTED: Final = 130  # stopped by a signal before the end (the shell's 128 + SIGINT)

#: The exit code of a send for each kind of outcome (the kinds of `send_many()`).
EXIT_CODES: Final[Mapping[OutcomeKind, int]] = {
    "sent": EXIT_SENT,
    "failed": EXIT_FAILED,
    "rejected": EXIT_FAILED,
    "not_sent": EXIT_FAILED,
    "unknown": EXIT_UNKNOWN,
    "invalid": EXIT_BAD_INPUT,
}
#: The exit code of many sends: the first of these that one of them has. An unknown outcome
#: needs a look-up before anything is sent again, a failed one a decision, a bad row a fix.
EXIT_PRECEDENCE: Final = (EXIT_UNKNOWN, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_SENT)

#: Read when --sender-id is not given, like the credentials.
ENV_SENDER_ID: Final = "HAORUI_SENDER_ID"

F = TypeVar("F", bound=Callable[..., Any])


class BadInput(click.ClickException):
    """Bad input or configuration, found before anything was sent: click prints the message
    and the command exits with `EXIT_BAD_INPUT`."""

    exit_code = EXIT_BAD_INPUT


def outcome_kind(error: HaoruiError | None) -> OutcomeKind:
    """The kind of outcome of a send that ended with `error` (None: sent), as in `KINDS`."""
    return kind_of(error)


def exit_code_for(error: HaoruiError | None) -> int:
    """The exit code for a send that ended with `error` (None: sent)."""
    if isinstance(error, ConfigurationError):
        # The sender could not be set up: no send was made, so there is no outcome.
        return EXIT_BAD_INPUT
    return EXIT_CODES[outcome_kind(error)]


def exit_code_for_counts(counts: Mapping[str, int]) -> int:
    """The exit code of many sends, from how many ended with each kind of outcome."""
    present = {EXIT_CODES[kind] for kind in KINDS if counts.get(kind)}
    return next((code for code in EXIT_PRECEDENCE if code in present), EXIT_SENT)


def describe_failure(error: HaoruiError) -> str:
    """One line on a send that did not succeed, starting with its outcome kind; each fact once."""
    if isinstance(error, ConfigurationError):
        return f"error: {error}"
    kind = outcome_kind(error)
    if not isinstance(error, SendError):
        return f"{kind}: {error}"
    facts = [type(error).__name__]
    # The detail of an HTTP error already names the status ("gateway answered HTTP 404").
    if error.status_code is not None and f"HTTP {error.status_code}" not in error.detail:
        facts.append(f"HTTP {error.status_code}")
    facts += [f"uid={error.uid!r}", f"attempts={error.attempts}"]
    advice = (
        " It may have been sent: check by its uid before sending it again."
        if error.may_have_been_sent
        else ""
    )
    return f"{kind}: {error.detail} ({', '.join(facts)}).{advice}"


def read_credentials_file(path: Path) -> dict[str, str]:
    """Read `KEY=value` lines (`HAORUI_API_ID`, `HAORUI_API_PASSWORD`, `HAORUI_BASE_URL`).

    Blank lines and lines starting with `#` are skipped; values may be quoted.

    Raises click.BadParameter for a file that cannot be read or a line without `=`.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(
            f"cannot read it: {exc}", param_hint="--credentials-file"
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise click.BadParameter(
                f"line {number}: expected KEY=value", param_hint="--credentials-file"
            )
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def credentials(credentials_file: Path | None) -> dict[str, str | None]:
    """`api_id`, `api_password` and `base_url` from the file, else the environment.

    The password is never taken from the command line, where `ps` shows it to every user.
    """
    file_values = read_credentials_file(credentials_file) if credentials_file else {}

    def pick(env: str) -> str | None:
        return file_values.get(env) or os.environ.get(env) or None

    return {
        "api_id": pick(defaults.ENV_API_ID),
        "api_password": pick(defaults.ENV_API_PASSWORD),
        "base_url": pick(defaults.ENV_BASE_URL),
    }


def credentials_option(function: F) -> F:
    """The `--credentials-file` option."""
    return click.option(
        "--credentials-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        default=None,
        help=(
            "File of KEY=value lines: HAORUI_API_ID, HAORUI_API_PASSWORD, HAORUI_BASE_URL. "
            "Without it, the environment variables of those names are used."
        ),
    )(function)


def sender_id_option(function: F) -> F:
    """The `--sender-id` option of every command that sends, read from `HAORUI_SENDER_ID`
    when not given."""
    return click.option(
        "--sender-id",
        envvar=ENV_SENDER_ID,
        show_envvar=True,
        default=None,
        help="Registered sender id, for the messages that carry none.",
    )(function)


def rate_limit_option(help: str) -> Callable[[F], F]:
    """The `--rate-limit` option (requests per second; none by default)."""
    return click.option(
        "--rate-limit", type=click.FloatRange(min=0, min_open=True), default=None, help=help
    )


def concurrency_option(help: str) -> Callable[[F], F]:
    """The `--concurrency` option (the sender's `max_concurrency`)."""
    return click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=defaults.DEFAULT_MAX_CONCURRENCY,
        show_default=True,
        help=help,
    )


def method_option(function: F) -> F:
    """The `--method` option: POST (the default) or GET."""
    return click.option(
        "--method",
        type=click.Choice(["POST", "GET"], case_sensitive=False),
        default=defaults.DEFAULT_METHOD,
        show_default=True,
        help="POST (a JSON body) or GET (the password in the URL).",
    )(function)


def reconcile_settle_option(function: F) -> F:
    """The `--reconcile-settle` option (`AsyncSender(reconcile_settle=...)`)."""
    return click.option(
        "--reconcile-settle",
        type=click.FloatRange(min=0, min_open=True),
        default=defaults.DEFAULT_RECONCILE_SETTLE,
        show_default=True,
        metavar="SECONDS",
        help="Seconds a gateway record gets to appear before a lookup that finds nothing counts.",
    )(function)


def percentile(sorted_values: Sequence[float], share: float) -> float:
    """The value below which `share` (0..1) of `sorted_values` lie (nearest rank); 0 if empty."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(share * len(sorted_values)) - 1))
    return sorted_values[rank]


@attrs.frozen
class Timings:
    """What a fan-out of sends measured.

    Attributes:
        counts: messages by outcome kind (the kinds of `send_many()`).
        latencies: seconds from each send's start to its outcome, sorted.
        elapsed: seconds from the first send's start to the last outcome.
        first_error: why the first message that was not sent was not, if any.
    """

    counts: Counter[str]
    latencies: list[float]
    elapsed: float
    first_error: HaoruiError | None = None

    @property
    def rate(self) -> float:
        """Outcomes per second, whatever their kind."""
        return len(self.latencies) / self.elapsed if self.elapsed > 0 else 0.0

    def latency_ms(self, share: float) -> float:
        """The `share` (0..1) percentile of the latencies, in milliseconds."""
        return percentile(self.latencies, share) * 1000


async def time_sends(
    sender: AsyncSender,
    message: Callable[[int], SMS],
    count: int,
    concurrency: int,
    progress: Callable[[int], None] | None = None,
) -> Timings:
    """Send `message(0)` ... `message(count - 1)` through `send_many()`, `concurrency` at a
    time, timing each one; `progress(n)` is told of every 100 outcomes, and of the rest."""
    started: dict[int, float] = {}
    clock = time.perf_counter

    def messages() -> Iterator[SMS]:
        # Built lazily: a worker pulls the next message when it is free, so the time it is
        # yielded is the time its send starts.
        for index in range(count):
            built = message(index)
            started[index] = clock()
            yield built

    counts: Counter[str] = Counter()
    latencies: list[float] = []
    first_error: HaoruiError | None = None
    unreported = 0
    begin = clock()
    async for outcome in send_many(sender, messages(), concurrency=concurrency):
        latencies.append(clock() - started.pop(outcome.index))
        counts[outcome.kind] += 1
        if first_error is None:
            first_error = outcome.error
        unreported += 1
        if progress is not None and unreported == 100:
            progress(unreported)
            unreported = 0
    elapsed = clock() - begin
    if progress is not None:
        progress(unreported)
    latencies.sort()
    return Timings(counts=counts, latencies=latencies, elapsed=elapsed, first_error=first_error)


def load_options(
    *, count: int, concurrency: int, count_help: str, least_count: int = 1
) -> Callable[[F], F]:
    """The options of a command that sends many messages: -n/--count, -c/--concurrency,
    --backend and --method."""

    def apply(function: F) -> F:
        for option in (
            click.option(
                "--method",
                type=click.Choice(["POST", "GET"], case_sensitive=False),
                default=defaults.DEFAULT_METHOD,
                show_default=True,
            ),
            click.option(
                "--backend",
                type=click.Choice(["httpx", "fast"]),
                default=defaults.DEFAULT_BACKEND,
                show_default=True,
                help="The SDK's backend: httpx over its own pool, or the pool driven directly.",
            ),
            click.option(
                "-c",
                "--concurrency",
                type=click.IntRange(min=1),
                default=concurrency,
                show_default=True,
                help="Sends in flight at most (also the sender's max_concurrency).",
            ),
            click.option(
                "-n",
                "--count",
                type=click.IntRange(min=least_count),
                default=count,
                show_default=True,
                help=count_help,
            ),
        ):
            function = option(function)
        return function

    return apply
