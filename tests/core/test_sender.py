from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import ssl
from collections.abc import Callable
from typing import Literal

import httpx
import pytest
import respx

from haorui_async import (
    SMS,
    AsyncSender,
    ConfigurationError,
    InvalidMessage,
    NotSent,
    OutcomeUnknown,
    RetryPolicy,
    SenderClosed,
    SendResult,
    SubmissionFailed,
)

from .._kit import API_ID, PASSWORD, CountingHandler, make_test_sender
from .conftest import FakeSleep, accepted, request_params, scripted


async def test_post_sends_the_documented_json_body(make_sender: Callable[..., AsyncSender]) -> None:
    handler = CountingHandler(accepted)
    async with make_sender(handler) as sender:
        result = await sender.send(
            "+86 139-1234-5678", "Your code is 112233", uid="u-1", callback_url="https://cb.test/"
        )
    (request,) = handler.requests
    assert request.method == "POST"
    assert str(request.url) == "https://api.haorui.com/api/SendSMS"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {
        "api_id": API_ID,
        "api_password": PASSWORD,
        "sms_type": "T",
        "encoding": "T",
        "sender_id": "HAORUI",
        "phonenumber": "8613912345678",
        "textmessage": "Your code is 112233",
        "uid": "u-1",
        "callback_url": "https://cb.test/",
    }
    assert (result.message_id, result.uid, result.ok) == ("26471304", "u-1", True)


async def test_get_sends_everything_in_the_query(make_sender: Callable[..., AsyncSender]) -> None:
    handler = CountingHandler(accepted)
    async with make_sender(handler, method="GET", sms_type="P") as sender:
        await sender.send("8613912345678", "你好", sender_id="LIASMT")
    (request,) = handler.requests
    assert request.method == "GET"
    assert request.content == b""
    params = request_params(request)
    assert params["api_password"] == PASSWORD
    assert (params["sms_type"], params["encoding"], params["sender_id"]) == ("P", "U", "LIASMT")


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_the_request_is_the_one_httpx_itself_would_build(
    make_sender: Callable[..., AsyncSender], method: str
) -> None:
    # The default backend builds its httpx.Request from prepared headers; a mocked test (and
    # a caller's transport) must see the very request httpx's own constructor makes.
    handler = CountingHandler(accepted)
    async with make_sender(handler, method=method) as sender:
        await sender.send("8613912345678", "Your code is 112233")
    (request,) = handler.requests
    fixed = [h for h in request.headers.raw if h[0].lower() not in (b"host", b"content-length")]
    own = httpx.Request(request.method, request.url, headers=fixed, content=request.content)
    assert request.headers.raw == own.headers.raw
    assert request.content == own.content
    assert b"".join(request.stream) == request.content  # type: ignore[arg-type]
    assert request.headers.raw[0][0] == b"Host"
    assert ("content-length" in request.headers) is (method == "POST")


async def test_long_message_ids_survive_exactly(make_sender: Callable[..., AsyncSender]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = b'{"message_id": 2026083116353908975, "status": "S", "remarks": "ok",'
        body += b' "uid": null, "peId": "x", "phonenumber": "86139"}'
        return httpx.Response(200, content=body)

    async with make_sender(handler) as sender:
        result = await sender.send("8613912345678", "hi")
    assert result.message_id == "2026083116353908975"
    assert result.uid is None
    assert result.body["peId"] == "x"


async def test_status_f_carries_remarks_and_body(make_sender: Callable[..., AsyncSender]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "F", "remarks": "Invalid sender", "x": 1})

    async with make_sender(handler) as sender:
        with pytest.raises(SubmissionFailed) as info:
            await sender.send("8613912345678", "hi")
    assert info.value.remarks == "Invalid sender"
    assert info.value.body["x"] == 1
    assert info.value.may_have_been_sent is False


async def test_missing_sender_id_fails_before_any_request(
    make_sender: Callable[..., AsyncSender],
) -> None:
    handler = CountingHandler(accepted)
    async with make_sender(handler, sender_id=None) as sender:
        with pytest.raises(InvalidMessage, match="^sender_id: required"):
            await sender.send("8613912345678", "hi")
        with pytest.raises(InvalidMessage, match="^phonenumber"):
            await sender.send("12", "hi", sender_id="X")
    assert handler.calls == 0


async def test_send_message_takes_a_prepared_sms(make_sender: Callable[..., AsyncSender]) -> None:
    sms = SMS("8613912345678", "queued earlier", uid="q-1", encoding="U")
    async with make_sender(lambda r: accepted(r)) as sender:
        result = await sender.send_message(sms)
    assert result.message is sms
    assert result.uid == "q-1"


async def test_respx_intercepts_the_default_backend() -> None:
    async with respx.mock(base_url="https://api.haorui.com") as mock:
        route = mock.post("/api/SendSMS").mock(side_effect=accepted)
        async with make_test_sender() as sender:
            result = await sender.send("8613912345678", "hi", uid="r-1")
    assert route.call_count == 1
    assert result.uid == "r-1"


@pytest.mark.parametrize("backend", ["httpx", "fast"])
@pytest.mark.parametrize("using", ["httpcore", "httpx"])
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_respx_intercepts_both_backends_in_either_mode(
    backend: Literal["httpx", "fast"], using: str, method: Literal["POST", "GET"]
) -> None:
    # The sender's own pool steps aside while a mock has patched httpx or httpcore: a
    # mocked test never reaches the network, whichever backend it builds.
    async with respx.mock(base_url="https://api.haorui.com", using=using) as mock:
        route = mock.route(method=method, path="/api/SendSMS").mock(side_effect=accepted)
        async with make_test_sender(backend=backend, method=method) as sender:
            results = [await sender.send("8613912345678", "hi", uid=f"r-{n}") for n in range(3)]
    assert route.call_count == 3
    assert [r.uid for r in results] == ["r-0", "r-1", "r-2"]


@pytest.mark.parametrize("way", ["transport", "respx-httpx", "respx-fast"])
@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_the_headers_are_the_same_whichever_way_the_request_goes(
    way: str, method: Literal["POST", "GET"]
) -> None:
    # Names as the SDK writes them, in httpx's order, on a caller's transport and under a mock
    # alike (a mock's route may match on them).
    handler = CountingHandler(accepted)
    if way == "transport":
        async with make_test_sender(method=method, transport=httpx.MockTransport(handler)) as s:
            await s.send("8613912345678", "hi")
    else:
        async with respx.mock(base_url="https://api.haorui.com") as mock:
            mock.route(path="/api/SendSMS").mock(side_effect=handler)
            async with make_test_sender(method=method, backend=way.split("-")[1]) as s:
                await s.send("8613912345678", "hi")
    (request,) = handler.requests
    names = [b"Host", b"Accept", b"Accept-Encoding", b"User-Agent"]
    names += [b"Content-Type", b"Content-Length"] if method == "POST" else []
    assert [name for name, _ in request.headers.raw] == names


async def test_a_request_respx_does_not_match_fails_and_never_reaches_the_network() -> None:
    async with respx.mock(base_url="https://api.haorui.com", assert_all_called=False) as mock:
        mock.post("/api/Other").mock(side_effect=accepted)
        async with make_test_sender(backend="fast") as sender:
            with pytest.raises(OutcomeUnknown, match="not mocked"):
                await sender.send("8613912345678", "hi")


async def test_a_callers_client_is_used_and_left_open() -> None:
    client = httpx.AsyncClient(transport=httpx.MockTransport(accepted))
    async with make_test_sender(client=client) as sender:
        assert sender.client is client
        await sender.send("8613912345678", "hi")
    assert not client.is_closed
    await client.aclose()


def test_credentials_fall_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAORUI_API_ID", "ENV_ID")
    monkeypatch.setenv("HAORUI_API_PASSWORD", "env-password")
    monkeypatch.setenv("HAORUI_BASE_URL", "http://127.0.0.1:8808/")
    sender = AsyncSender()
    assert sender.api_id == "ENV_ID"
    assert sender.base_url == "http://127.0.0.1:8808"
    assert "env-password" not in repr(sender)


@pytest.mark.parametrize(
    ("missing", "env"), [("api_id", "HAORUI_API_ID"), ("api_password", "HAORUI_API_PASSWORD")]
)
def test_missing_credentials_are_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, missing: str, env: str
) -> None:
    monkeypatch.delenv("HAORUI_API_ID", raising=False)
    monkeypatch.delenv("HAORUI_API_PASSWORD", raising=False)
    given = {"api_id": "A", "api_password": "p"}
    del given[missing]
    with pytest.raises(
        ConfigurationError, match=f"^{missing}: not given, and the environment variable {env}"
    ):
        AsyncSender(**given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("method", "PUT", "^method"),
        ("max_concurrency", 0, "^max_concurrency"),
        ("max_concurrency", True, "^max_concurrency"),
        ("deadline", 0, "^deadline"),
        ("base_url", "ftp://x.test", "^base_url"),
        ("base_url", "https://x.test/?q=1", "^base_url"),
        ("base_url", "http://[::1", "^base_url"),
        ("timeout", -1, "^timeout"),
        ("timeout", "5", "^timeout"),
        ("timeout", httpx.Timeout(None), "^timeout"),
        ("rate_limit", 0, "^rate_limit"),
        ("sms_type", "X", "^sms_type"),
        ("sender_id", "NOT VALID", "^sender_id"),
    ],
)
def test_bad_options_are_clear_errors(option: str, value: object, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_test_sender(**{option: value})


def test_transport_and_client_together_are_refused() -> None:
    client = httpx.AsyncClient()
    with pytest.raises(ConfigurationError, match="one or the other"):
        make_test_sender(transport=httpx.MockTransport(accepted), client=client)


async def test_use_after_close_is_a_clear_error(make_sender: Callable[..., AsyncSender]) -> None:
    sender = make_sender(accepted)
    await sender.send("8613912345678", "opened lazily")
    await sender.aclose()
    await sender.aclose()  # idempotent
    assert sender.closed
    assert "state='closed'" in repr(sender)
    with pytest.raises(SenderClosed):
        await sender.send("8613912345678", "hi")
    with pytest.raises(SenderClosed):
        async with sender:
            pass


async def test_timeouts_are_capped_by_the_remaining_deadline(
    make_sender: Callable[..., AsyncSender],
) -> None:
    handler = CountingHandler(accepted)
    async with make_sender(handler, timeout=httpx.Timeout(30.0), deadline=2.0) as sender:
        await sender.send("8613912345678", "hi")
    async with make_sender(handler, timeout=1.5) as sender:
        await sender.send("8613912345678", "hi")
    seen: list[dict[str, float]] = [request.extensions["timeout"] for request in handler.requests]
    assert all(0 < value <= 2.0 for value in seen[0].values())
    assert seen[1] == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}


async def test_waiting_for_a_slot_past_the_deadline_is_not_sent() -> None:
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        # A transport that ignores its deadline's cancellation holds the slot until released.
        # (It ignores one cancellation only: a second, the test's teardown, ends it.)
        with contextlib.suppress(asyncio.CancelledError):
            await release.wait()
        await release.wait()
        return accepted(request)

    class SlowTransport(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            return await slow(request)

    async with make_test_sender(
        transport=SlowTransport(), max_concurrency=1, deadline=0.2
    ) as sender:
        first = asyncio.ensure_future(sender.send("8613912345678", "holds the slot"))
        await asyncio.sleep(0)
        with pytest.raises(NotSent, match="no free slot"):
            await sender.send("8613912345678", "waits")
        release.set()
        await first


async def test_rate_limit_spaces_requests(make_sender: Callable[..., AsyncSender]) -> None:
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        starts.append(loop.time())
        return accepted(request)

    async with make_sender(handler, rate_limit=20) as sender:
        assert sender.rate_limit == 20
        await asyncio.gather(*(sender.send("8613912345678", f"m{i}") for i in range(10)))
    # A bucket of a tenth of a second's worth (2 requests) draining at 20/s: the 2 first go at
    # once, each later one waits 1/20 s, so the 10th cannot start before 8/20 s.
    assert len(starts) == 10
    assert starts[9] - starts[0] >= 0.39


def test_send_errors_pickle_with_their_fields() -> None:
    err = NotSent(
        "gateway answered HTTP 503",
        message=SMS("8613912345678", "hi", uid="p-1"),
        status_code=503,
        attempts=4,
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is NotSent
    assert (again.uid, again.status_code, again.attempts, str(again)) == ("p-1", 503, 4, str(err))


class _GatedTransport(httpx.AsyncBaseTransport):
    """Answers only once `gate` is set, so tests can hold a slot: `answers` in turn, then the
    documented success answer."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.gate = asyncio.Event()
        self._answer = scripted(*answers)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.gate.wait()
        return self._answer(request)


def _one_slot_sender(
    transport: _GatedTransport, sleep: FakeSleep, **options: object
) -> AsyncSender:
    """A sender of one slot over `transport`, one attempt a send, waiting with `sleep`."""
    return make_test_sender(
        transport=transport,
        max_concurrency=1,
        retry=RetryPolicy(attempts=1),
        sleep=sleep,
        **options,
    )


async def _send_behind_a_429(
    sender: AsyncSender, transport: _GatedTransport, *, gated_for: float
) -> asyncio.Future[SendResult]:
    """Start a send that takes the one slot and one that waits for it; open the gate after
    `gated_for` s, and check that the first was answered 429. Returns the waiting send."""
    first = asyncio.ensure_future(sender.send("8613912345678", "answered 429"))
    waiting = asyncio.ensure_future(sender.send("8613912345678", "waits for the slot"))
    await asyncio.sleep(gated_for)
    transport.gate.set()
    with pytest.raises(NotSent, match="429"):
        await first
    return waiting


async def test_a_send_waits_for_a_slot_then_goes_out() -> None:
    transport = _GatedTransport()
    async with make_test_sender(transport=transport, max_concurrency=1) as sender:
        sends = [asyncio.ensure_future(sender.send("8613912345678", f"m{i}")) for i in range(3)]
        await asyncio.sleep(0.01)
        transport.gate.set()
        results = await asyncio.gather(*sends)
    assert [r.message.textmessage for r in results] == ["m0", "m1", "m2"]


async def test_a_send_waiting_for_a_slot_when_the_sender_closes_is_refused() -> None:
    transport = _GatedTransport()
    sender = make_test_sender(transport=transport, max_concurrency=1)
    first = asyncio.ensure_future(sender.send("8613912345678", "holds the slot"))
    second = asyncio.ensure_future(sender.send("8613912345678", "waits"))
    await asyncio.sleep(0.01)
    await sender.aclose()
    transport.gate.set()
    await first
    with pytest.raises(SenderClosed):
        await second


async def test_rate_limit_wait_past_the_deadline_is_not_sent(
    make_sender: Callable[..., AsyncSender],
) -> None:
    async with make_sender(accepted, rate_limit=1, deadline=0.3) as sender:
        await sender.send("8613912345678", "takes the only token")
        loop = asyncio.get_running_loop()
        started = loop.time()
        # The wait in the limiter (a second for the next token) ends at the deadline.
        with pytest.raises(NotSent, match="deadline passed while waiting for the rate limit"):
            await sender.send("8613912345678", "waits a second for the next")
        assert loop.time() - started < 1.0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"backend": "curl"}, "^backend"),
        ({"backend": "fast", "transport": httpx.MockTransport(accepted)}, "^transport, client"),
        (
            {"ssl_context": ssl.create_default_context(), "client": httpx.AsyncClient()},
            "^transport",
        ),
    ],
)
def test_backend_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        make_test_sender(**options)


@pytest.mark.parametrize("backend", ["httpx", "fast"])
def test_tls_verification_cannot_be_turned_off(backend: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with pytest.raises(ConfigurationError, match="^ssl_context: must verify"):
        make_test_sender(backend=backend, ssl_context=context)


async def test_a_429_that_arrives_while_a_send_waits_for_its_slot_holds_it_too(
    fake_sleep: FakeSleep,
) -> None:
    transport = _GatedTransport(httpx.Response(429, headers={"Retry-After": "2"}))
    async with _one_slot_sender(transport, fake_sleep) as sender:
        waiting = await _send_behind_a_429(sender, transport, gated_for=0.01)
        # The waiter got the slot after the 429 and waited out the pause before sending.
        await waiting
        assert len(fake_sleep.calls) == 1
        assert 1.0 < fake_sleep.calls[0] <= 2.0


async def test_a_pause_past_the_deadline_after_a_slot_wait_gives_the_slot_back(
    fake_sleep: FakeSleep,
) -> None:
    transport = _GatedTransport(httpx.Response(429, headers={"Retry-After": "4"}))
    async with _one_slot_sender(transport, fake_sleep, deadline=5.0) as sender:
        waiting = await _send_behind_a_429(sender, transport, gated_for=1.5)
        # 3.5 s of its deadline left, a 4 s pause: it gives up, and gives its slot back.
        with pytest.raises(NotSent, match="pause"):
            await waiting
        # A later send (a fresh deadline) waits out the pause and finds the slot free.
        result = await sender.send("8613912345678", "after the pause")
    assert result.ok


async def test_a_callers_transport_that_never_answers_ends_at_the_deadline_as_unknown() -> None:
    never = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("unreachable")

    async def send(sender: AsyncSender, n: int) -> tuple[BaseException | None, int]:
        try:
            await sender.send("8613912345678", "hi", uid=f"d-{n}")
        except OutcomeUnknown as exc:
            error: BaseException | None = exc
        else:
            error = None
        # The deadline's cancellation is undone: the sending task is not left cancelling
        # (Task.cancelling() is Python 3.11's; before it there is nothing to undo).
        return error, getattr(asyncio.current_task(), "cancelling", lambda: 0)()

    async with make_test_sender(transport=httpx.MockTransport(handler), deadline=0.05) as sender:
        results = await asyncio.gather(*(send(sender, n) for n in range(5)))
    assert all(isinstance(error, OutcomeUnknown) for error, _ in results), results
    assert all("deadline" in str(error) for error, _ in results)
    assert [cancelling for _, cancelling in results] == [0] * 5


async def test_cancelling_a_send_on_a_callers_transport_is_a_cancellation_not_a_timeout() -> None:
    started = asyncio.Event()

    async def handler(request: httpx.Request) -> httpx.Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async with make_test_sender(transport=httpx.MockTransport(handler)) as sender:
        task = asyncio.ensure_future(sender.send("8613912345678", "hi"))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
