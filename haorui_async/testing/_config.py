"""`EmulatorConfig`: every knob of the loopback emulator, and the command-line options made
from it (one table serves `python -m haorui_async.testing` and `haorui-async emulator`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import attrs

from ._faults import FaultRates
from ._model import (
    DEFAULT_BALANCE,
    DEFAULT_CURRENCY,
    DEMO_API_ID,
    DEMO_API_PASSWORD,
    RECORD_MODES,
    RecordMode,
)

__all__ = ["EmulatorConfig", "OptionSpec", "option_specs", "parse_status_mix"]

#: How long the emulator waits before pushing a delivery report: long enough that the
#: answer to the send reaches the client first, as with a real operator.
DEFAULT_DLR_DELAY: Final = 0.2
#: How long a hang lasts when nothing says otherwise: past any sensible read timeout.
DEFAULT_HANG_SECONDS: Final = 30.0
#: Delivery reports waiting to be pushed, at most; more are counted as dropped, so a
#: benchmark with callbacks to a dead receiver cannot pile up tasks without bound.
MAX_PENDING_REPORTS: Final = 10_000
#: Seconds an idle keep-alive connection stays open. Well above the SDK's own idle expiry (4 s),
#: so the client, not the emulator, closes idle connections even when a loaded event loop
#: runs late: the emulator never drops a connection just as a request is written to it, which
#: would be an unknown outcome nobody configured. (75 s is nginx's default.)
DEFAULT_KEEP_ALIVE: Final = 75.0
#: Where the command line's defaults differ from `EmulatorConfig`'s: a process started from the
#: command line serves benchmarks of millions of messages, so it keeps counts, not messages.
COMMAND_LINE_DEFAULTS: Final[Mapping[str, Any]] = {"record": "uids"}


def parse_status_mix(text: str) -> tuple[tuple[str, float], ...]:
    """Read a delivery-status mix: `"Delivered"` or `"Delivered:0.9,Failed:0.1"`.

    Raises:
        ValueError: a weight that is not a number >= 0, or no positive weight at all.
    """
    mix: list[tuple[str, float]] = []
    for item in text.split(","):
        word, _, weight = item.strip().partition(":")
        if not word:
            continue
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"dlr_statuses: {item!r}: the weight is not a number") from None
        if not value >= 0:
            raise ValueError(f"dlr_statuses: {item!r}: the weight must be >= 0")
        mix.append((word, value))
    if not any(weight > 0 for _, weight in mix):
        raise ValueError(f"dlr_statuses: expected STATUS[:WEIGHT],... got {text!r}")
    return tuple(mix)


def _accounts(accounts: Mapping[str, str]) -> dict[str, str]:
    return dict(accounts)


def _check_mix(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    parse_status_mix(value)


def _not_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name}: expected >= 0, got {value!r}")


def _rate(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name}: expected a rate between 0 and 1, got {value!r}")


def _option(help: str, choices: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The metadata that makes a field a command-line option."""
    return {"help": help, "choices": choices}


@attrs.frozen(kw_only=True)
class EmulatorConfig:
    """How the loopback emulator behaves. Every field is also a command-line option.

    Raises:
        ValueError: a rate outside [0, 1], rates adding up to more than 1, a negative delay
            or lag, an unknown record mode, a delivery-status mix that cannot be read, or a
            balance that is not a finite number.
    """

    record: RecordMode = attrs.field(
        default="messages",
        metadata=_option(
            "what is kept of accepted messages: every message, counts per uid, or totals only",
            RECORD_MODES,
        ),
    )
    seed: int | None = attrs.field(
        default=None,
        metadata=_option("seed of the random faults and latencies (reproducible runs)"),
    )
    rate_429: float = attrs.field(
        default=0.0, metadata=_option("share of requests answered 429 with Retry-After")
    )
    retry_after: str = attrs.field(
        default="1", metadata=_option("the Retry-After value sent with a 429 ('' for none)")
    )
    rate_503: float = attrs.field(default=0.0, metadata=_option("share of requests answered 503"))
    rate_500: float = attrs.field(default=0.0, metadata=_option("share of requests answered 500"))
    rate_hang: float = attrs.field(
        default=0.0, metadata=_option("share of requests left without an answer for --hang-seconds")
    )
    rate_drop: float = attrs.field(
        default=0.0, metadata=_option("share of connections dropped after the request was read")
    )
    rate_malformed: float = attrs.field(
        default=0.0, metadata=_option("share of requests answered 200 with a non-JSON body")
    )
    rate_lose_answer: float = attrs.field(
        default=0.0,
        metadata=_option(
            "share of requests accepted, then reset without an answer (always accepts)"
        ),
    )
    faults_accept: bool = attrs.field(
        default=False,
        metadata=_option(
            "500s, hangs, drops and malformed answers accept the message before failing"
        ),
    )
    lookup_faults: bool = attrs.field(
        default=False,
        metadata=_option("GetDeliveryStatus and CheckBalance get faults too (not by default)"),
    )
    lookup_lag: float = attrs.field(
        default=0.0,
        metadata=_option("seconds after its acceptance before GetDeliveryStatus finds a message"),
    )
    balance: float = attrs.field(
        default=DEFAULT_BALANCE, metadata=_option("the BalanceAmount that CheckBalance answers")
    )
    currency: str = attrs.field(
        default=DEFAULT_CURRENCY, metadata=_option("the CurrenceCode that CheckBalance answers")
    )
    hang_seconds: float = attrs.field(
        default=DEFAULT_HANG_SECONDS, metadata=_option("how long a hang lasts")
    )
    latency: float = attrs.field(
        default=0.0, metadata=_option("seconds every answer is delayed by")
    )
    latency_jitter: float = attrs.field(
        default=0.0, metadata=_option("extra delay, uniform between 0 and this many seconds")
    )
    slow_rate: float = attrs.field(
        default=0.0, metadata=_option("share of answers that are slow (a latency tail)")
    )
    slow_latency: float = attrs.field(
        default=0.0, metadata=_option("the extra delay of a slow answer, in seconds")
    )
    dlr_delay: float = attrs.field(
        default=DEFAULT_DLR_DELAY, metadata=_option("seconds before a delivery report is pushed")
    )
    dlr_statuses: str = attrs.field(
        default="Delivered",
        metadata=_option("delivery statuses and their weights, e.g. 'Delivered:0.9,Failed:0.1'"),
    )
    keep_alive: float = attrs.field(
        default=DEFAULT_KEEP_ALIVE,
        metadata=_option("seconds an idle keep-alive connection stays open"),
    )
    max_pending_reports: int = attrs.field(
        default=MAX_PENDING_REPORTS,
        metadata=_option("delivery reports waiting to be pushed at most; more are dropped"),
    )
    allow_remote_callbacks: bool = attrs.field(
        default=False, metadata=_option("push delivery reports to non-loopback callback URLs too")
    )
    accounts: Mapping[str, str] = attrs.field(
        factory=lambda: {DEMO_API_ID: DEMO_API_PASSWORD}, converter=_accounts
    )

    def __attrs_post_init__(self) -> None:
        fields = attrs.fields(EmulatorConfig)
        if self.record not in RECORD_MODES:
            raise ValueError(f"record: expected one of {RECORD_MODES}, got {self.record!r}")
        _rate(self, fields.slow_rate, self.slow_rate)
        for field in (
            fields.hang_seconds,
            fields.latency,
            fields.latency_jitter,
            fields.slow_latency,
            fields.dlr_delay,
            fields.max_pending_reports,
            fields.keep_alive,
            fields.lookup_lag,
        ):
            _not_negative(self, field, getattr(self, field.name))
        _check_mix(self, fields.dlr_statuses, self.dlr_statuses)
        if not math.isfinite(self.balance):
            raise ValueError(f"balance: expected a finite number, got {self.balance!r}")
        self.rates()

    def rates(self) -> FaultRates:
        """The random-fault rates (raises `ValueError` when they are out of range)."""
        return FaultRates(
            rate_429=self.rate_429,
            rate_503=self.rate_503,
            rate_500=self.rate_500,
            rate_hang=self.rate_hang,
            rate_drop=self.rate_drop,
            rate_malformed=self.rate_malformed,
            rate_lose_answer=self.rate_lose_answer,
            retry_after=self.retry_after,
            faults_accept=self.faults_accept,
        )

    def status_mix(self) -> tuple[tuple[str, float], ...]:
        """The delivery statuses and their weights."""
        return parse_status_mix(self.dlr_statuses)


@attrs.frozen
class OptionSpec:
    """One command-line option made from an `EmulatorConfig` field."""

    name: str
    flag: str
    type: type
    default: Any
    help: str
    is_flag: bool = False
    choices: tuple[str, ...] | None = None


def option_specs() -> list[OptionSpec]:
    """The command-line options of the emulator, one per `EmulatorConfig` field."""
    types: Mapping[str, type] = {
        "bool": bool,
        "float": float,
        "str": str,
        "int": int,
        "int | None": int,
    }
    specs = []
    for field in attrs.fields(EmulatorConfig):
        if field.name == "accounts":
            continue
        # The annotations are strings (postponed evaluation): "float", "int | None", ...
        kind: type = types.get(str(field.type), str)
        specs.append(
            OptionSpec(
                name=field.name,
                flag="--" + field.name.replace("_", "-"),
                type=kind,
                default=COMMAND_LINE_DEFAULTS.get(field.name, field.default),
                help=field.metadata["help"],
                is_flag=kind is bool,
                choices=field.metadata.get("choices"),
            )
        )
    return specs
