"""`SenderConfig`: every option of an `AsyncSender`, validated once, where it is built.

Each field's validator names the field, what it expects and what it got
(`ConfigurationError`, a `ValueError`); defaults are the named constants of `_defaults`.
`SenderConfig.from_options()` is what `AsyncSender(...)` calls: it reads the environment for
what was not given, and builds the `httpx.Timeout` and the `RetryPolicy`.
"""

from __future__ import annotations

import inspect
import os
import ssl
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs
import httpx

from . import _defaults as defaults
from ._exceptions import ConfigurationError, InvalidMessage
from ._message import check_encoding, check_sender_id, check_sms_type
from ._retry import RetryPolicy
from ._secrets import Secret
from ._telemetry import SendRecord, Telemetry

__all__ = ["SenderConfig"]


def _one_of(*choices: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            expected = " or ".join(repr(c) for c in choices)
            raise ConfigurationError(f"{attribute.name}: expected {expected}, got {value!r}")

    return check


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{attribute.name}: expected an int >= 1, got {value!r}")


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{attribute.name}: expected seconds > 0, got {value!r}")


def _boolean(instance: object, attribute: attrs.Attribute[bool], value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{attribute.name}: expected True or False, got {value!r}")


def _rate(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigurationError(f"{attribute.name}: expected messages/s > 0, got {value!r}")


def _on_outcome(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not callable(value):
        raise ConfigurationError(f"on_outcome: expected a callable or None, got {value!r}")
    if inspect.iscoroutinefunction(value) or inspect.iscoroutinefunction(
        getattr(value, "__call__", None)  # noqa: B004  # an object whose __call__ is async
    ):
        raise ConfigurationError(
            "on_outcome: expected a plain function; an async one's coroutine would never run "
            f"(got {value!r})"
        )


def _telemetry(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, (bool, Telemetry)):
        raise ConfigurationError(
            f"telemetry: expected None (auto), True, False or a Telemetry, got {value!r}"
        )


def _as_configuration_error(check: Callable[[object], str | None], value: object) -> str | None:
    # `_message`'s validators, so a bad default says what the same bad field of an SMS says.
    try:
        return check(value)
    except InvalidMessage as exc:
        raise ConfigurationError(str(exc)) from None


def _sender_id(value: object) -> str | None:
    return _as_configuration_error(check_sender_id, value)


def _sms_type(value: object) -> str:
    checked = _as_configuration_error(check_sms_type, value)
    return defaults.DEFAULT_SMS_TYPE if checked is None else checked


def _encoding(value: object) -> str:
    checked = _as_configuration_error(check_encoding, value)
    return defaults.DEFAULT_ENCODING if checked is None else checked


def _base_url(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"base_url: expected a URL string, got {value!r}")
    try:
        url = httpx.URL(value)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"base_url: not a URL ({exc})") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConfigurationError(
            f"base_url: expected an absolute http:// or https:// URL, got {value!r}"
        )
    if url.query or url.fragment or url.userinfo:
        raise ConfigurationError("base_url: must not carry a query, fragment or user info")
    return str(url).rstrip("/")


def _timeout(value: object) -> httpx.Timeout:
    if value is None:
        return httpx.Timeout(
            connect=defaults.DEFAULT_CONNECT_TIMEOUT,
            read=defaults.DEFAULT_READ_TIMEOUT,
            write=defaults.DEFAULT_WRITE_TIMEOUT,
            pool=defaults.DEFAULT_POOL_TIMEOUT,
        )
    if isinstance(value, httpx.Timeout):
        if any(v is None or v <= 0 for v in value.as_dict().values()):
            raise ConfigurationError(f"timeout: every timeout must be > 0 seconds, got {value!r}")
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return httpx.Timeout(float(value))
    raise ConfigurationError(f"timeout: expected seconds > 0 or an httpx.Timeout, got {value!r}")


def _ssl_context(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, ssl.SSLContext):
        raise ConfigurationError(f"ssl_context: expected an ssl.SSLContext, got {value!r}")


def _from_env(value: str | None, env: Mapping[str, str], name: str, variable: str) -> str:
    if value is None:
        value = env.get(variable)
    if not value:
        raise ConfigurationError(
            f"{name}: not given, and the environment variable {variable} is not set"
        )
    return value


@attrs.frozen(kw_only=True)
class SenderConfig:
    """The validated options of an `AsyncSender` (see its docstring for each).

    Raises:
        ConfigurationError: an option is missing or out of range; its text names the option.
    """

    api_id: str
    api_password: Secret = attrs.field(repr=False)
    sender_id: str | None = attrs.field(default=None, converter=_sender_id)
    base_url: str = attrs.field(default=defaults.DEFAULT_BASE_URL, converter=_base_url)
    method: Literal["POST", "GET"] = attrs.field(
        default=defaults.DEFAULT_METHOD, validator=_one_of("POST", "GET")
    )
    backend: Literal["httpx", "fast"] = attrs.field(
        default=defaults.DEFAULT_BACKEND, validator=_one_of("httpx", "fast")
    )
    sms_type: str = attrs.field(default=defaults.DEFAULT_SMS_TYPE, converter=_sms_type)
    encoding: str = attrs.field(default=defaults.DEFAULT_ENCODING, converter=_encoding)
    timeout: httpx.Timeout = attrs.field(default=None, converter=_timeout)
    deadline: float = attrs.field(default=defaults.DEFAULT_DEADLINE, validator=_positive_seconds)
    max_concurrency: int = attrs.field(
        default=defaults.DEFAULT_MAX_CONCURRENCY, validator=_positive_int
    )
    rate_limit: float | None = attrs.field(default=None, validator=_rate)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, validator=_ssl_context)
    reconcile_unknown: bool = attrs.field(default=False, validator=_boolean)
    reconcile_settle: float = attrs.field(
        default=defaults.DEFAULT_RECONCILE_SETTLE, validator=_positive_seconds
    )
    on_outcome: Callable[[SendRecord], object] | None = attrs.field(
        default=None, validator=_on_outcome
    )
    #: None: auto (on where a real OpenTelemetry provider is installed; `resolve_telemetry`).
    telemetry: bool | Telemetry | None = attrs.field(default=None, validator=_telemetry)
    #: Off: the phone number is personal data, kept out of telemetry unless asked for.
    telemetry_phonenumber: bool = attrs.field(default=False, validator=_boolean)

    @retry.validator
    def _check_retry(self, attribute: attrs.Attribute[RetryPolicy], value: object) -> None:
        if not isinstance(value, RetryPolicy):
            raise ConfigurationError(f"retry: expected a RetryPolicy, got {value!r}")

    @property
    def endpoint(self) -> str:
        """The SendSMS URL."""
        return self.base_url + defaults.SEND_SMS_PATH

    @classmethod
    def from_options(
        cls,
        *,
        api_id: str | None = None,
        api_password: str | None = None,
        base_url: str | None = None,
        sms_type: str | None = None,
        encoding: str | None = None,
        retry: RetryPolicy | None = None,
        retry_ambiguous: bool | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> SenderConfig:
        """Build from `AsyncSender`'s keyword arguments; credentials and the base URL not
        given come from the environment (`HAORUI_API_ID`, `HAORUI_API_PASSWORD`,
        `HAORUI_BASE_URL`)."""
        env = os.environ if env is None else env
        policy = RetryPolicy() if retry is None else retry
        if retry_ambiguous is not None and isinstance(policy, RetryPolicy):
            policy = attrs.evolve(policy, retry_ambiguous=retry_ambiguous)
        return cls(
            api_id=_from_env(api_id, env, "api_id", defaults.ENV_API_ID),
            api_password=Secret(
                _from_env(api_password, env, "api_password", defaults.ENV_API_PASSWORD)
            ),
            base_url=base_url or env.get(defaults.ENV_BASE_URL) or defaults.DEFAULT_BASE_URL,
            sms_type=sms_type,
            encoding=encoding,
            retry=policy,
            **options,
        )
