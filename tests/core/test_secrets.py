"""The password never appears in a repr, an exception, a traceback or a log record, in sends
and in lookups alike."""

from __future__ import annotations

import asyncio
import json
import logging
import pickle
import traceback
from collections.abc import Awaitable, Callable
from urllib.parse import quote, quote_plus

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haorui_async import RetryPolicy, SendError
from haorui_async._lookup import LookupFailed
from haorui_async._secrets import Secret, install_library_log_filter, scrub

from .._kit import make_test_sender
from .conftest import accepted

# Random passwords behind a marker the SDK never writes by itself, so a hit is a leak and never
# a password that happens to spell a word of the SDK's own messages ("OutcomeUnk").
passwords = st.text(
    alphabet=st.characters(min_codepoint=0x20, codec="utf-8"), min_size=6, max_size=40
).map(lambda p: "\U0001f511" + p)


def _handlers(password: str) -> dict[str, Callable[[httpx.Request], httpx.Response]]:
    def raise_with_url(request: httpx.Request) -> httpx.Response:
        # Lower layers put the URL (and so, in GET mode, the password) in their messages.
        raise httpx.ConnectError(f"cannot connect for {request.url}", request=request)

    def read_timeout_with_url(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out: {request.url}", request=request)

    def echo_password(request: httpx.Request) -> httpx.Response:
        remarks = f"Invalid api_password {password}"
        return httpx.Response(200, json={"status": "F", "remarks": remarks, "echo": password})

    return {
        "success": accepted,
        "status F echoing the password": echo_password,
        "429 exhausted": lambda r: httpx.Response(429),
        "500": lambda r: httpx.Response(500),
        "403": lambda r: httpx.Response(403),
        "malformed": lambda r: httpx.Response(200, text="oops"),
        "connect error with the URL": raise_with_url,
        "read timeout with the URL": read_timeout_with_url,
    }


def _forms(password: str) -> set[str]:
    return {password, quote(password, safe=""), quote_plus(password), json.dumps(password)[1:-1]}


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.lines.append(repr(record.args))


async def _exercise(password: str, method: str, use_client: bool) -> list[str]:
    texts: list[str] = []
    for name, handler in _handlers(password).items():
        transport = httpx.MockTransport(handler)
        client = httpx.AsyncClient(transport=transport) if use_client else None
        sender = make_test_sender(
            api_password=password,
            method=method,
            retry=RetryPolicy(attempts=2, backoff_base=0.0),
            transport=None if use_client else transport,
            client=client,
        )
        texts.append(repr(sender))
        async with sender:
            uid = name.replace(" ", "-")
            # A send, and the lookups of reconciliation, through the same failure.
            calls: list[Awaitable[object]] = [
                sender.send("8613912345678", "hi", uid=uid),
                sender.get_delivery_status(uid=uid),
                sender.check_balance(),
            ]
            for call in calls:
                try:
                    texts.append(repr(await call))
                except (SendError, LookupFailed) as exc:
                    texts.extend([str(exc), repr(exc), repr(exc.args), repr(exc.__dict__)])
                    texts.append("".join(traceback.format_exception(exc)))
        if client is not None:
            await client.aclose()
    return texts


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(password=passwords, method=st.sampled_from(["POST", "GET"]), use_client=st.booleans())
def test_password_never_leaks(password: str, method: str, use_client: bool) -> None:
    records = _Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    try:
        texts = asyncio.run(_exercise(password, method, use_client))
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    assert records.lines, "the SDK logs each attempt at DEBUG"
    everything = "\n".join(texts + records.lines)
    for form in _forms(password):
        assert form not in everything


def test_secret_shows_asterisks() -> None:
    secret = Secret("hunter2-hunter2")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}"
    assert secret.reveal() == "hunter2-hunter2"
    assert secret == Secret("hunter2-hunter2")
    assert secret != "hunter2-hunter2"
    assert hash(secret) == hash(Secret("hunter2-hunter2"))
    with pytest.raises(TypeError):
        pickle.dumps(secret)


def test_scrub_removes_query_passwords_of_any_secret() -> None:
    text = "GET https://x.test/api/SendSMS?api_id=1&api_password=p%40ss&x=1"
    assert scrub(text, Secret("other")) == (
        "GET https://x.test/api/SendSMS?api_id=1&api_password=********&x=1"
    )


def test_httpx_request_log_is_scrubbed_in_get_mode(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret("hunter2")
    install_library_log_filter(secret)
    install_library_log_filter(secret)  # idempotent
    logger = logging.getLogger("httpx")
    assert len([f for f in logger.filters if type(f).__name__ == "_SecretFilter"]) == 1
    with caplog.at_level(logging.INFO, logger="httpx"):
        logger.info("HTTP Request: %s %s", "GET", "https://x.test/?api_password=hunter2&a=1")
    assert "hunter2" not in caplog.text
    assert "api_password=********" in caplog.text


@pytest.mark.parametrize("name", ["httpcore.http11", "httpcore.connection", "httpcore.http2"])
def test_records_of_httpcores_child_loggers_are_scrubbed_in_every_form(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A filter on "httpcore" does not apply to its children's records: each is named.
    secret = Secret("hun/ter 2&\u00e9")
    install_library_log_filter(secret)
    logger = logging.getLogger(name)
    forms = [
        "hun/ter 2&\u00e9",
        "hun%2Fter%202%26%C3%A9",
        "hun%2Fter+2%26%C3%A9",
        "hun/ter 2&\\u00e9",
    ]
    with caplog.at_level(logging.DEBUG, logger=name):
        for form in forms:
            logger.debug("receive_response_headers.complete return_value=%r", (b"Location", form))
    assert len(caplog.records) == len(forms)
    assert "hun" not in caplog.text


async def test_the_cause_is_chained_without_frames_and_the_callers_exception_untouched() -> None:
    """A transport error is chained as a copy without its frames (they hold the request); a
    send made while the caller handles an exception of its own leaves that one as it was."""

    def lose(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    sender = make_test_sender(transport=httpx.MockTransport(lose), retry=RetryPolicy(attempts=1))
    mine = KeyError("the caller's own failure")
    async with sender:
        try:
            raise mine
        except KeyError:
            frames = traceback.extract_tb(mine.__traceback__)
            with pytest.raises(SendError) as caught:
                await sender.send("8613912345678", "hi")
    assert traceback.extract_tb(mine.__traceback__) == frames
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.ReadError)
    assert str(cause) == "connection reset by peer"
    assert (cause.__traceback__, cause.__context__, cause.__cause__) == (None, None, None)
