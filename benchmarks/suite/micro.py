"""The SDK's own cost per send, without sockets: `httpx.MockTransport` answers at once.

`sender.send` is set against `client.post` on the same transport (what a hand-written client
pays for httpx alone), and the steps of the hot path are timed one by one: validation
(building an `SMS`), encoding detection, request building and response parsing.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Final

import httpx

from haorui_async import SMS, AsyncSender, detect_encoding
from haorui_async._backends._httpx import _SendSMSRequest, request_headers
from haorui_async._backends._wire import AnswerReader, H11Reader, HttptoolsReader, PlainReader
from haorui_async._defaults import SEND_SMS_PATH
from haorui_async._protocol import RequestBuilder, read_response
from haorui_async._secrets import Secret

from . import account

__all__ = ["MICRO_STEPS", "run_micro"]

_ANSWER: Final = (
    b'{"message_id":26471304,"status":"S","remarks":"Message Submitted Sucessfully","uid":null}'
)
_HEADERS: Final = {"content-type": "application/json"}
_RAW_HEADERS: Final = [(b"content-type", b"application/json")]

#: What each timed step is, in the order the report shows them.
MICRO_STEPS: Final = {
    "sender.send": "AsyncSender.send, whole (MockTransport)",
    "client.post": "httpx AsyncClient.post + .json() on the same transport",
    "validation": "building an SMS (validation, uid)",
    "encoding": "detect_encoding of the text",
    "request": "RequestBuilder: the POST request's target and body",
    "httpx-request": "httpx.Request(content=...) of it (httpx's own way)",
    "backend-request": "the same request as the default backend builds it (prepared headers)",
    "response": "_protocol.read_response of the answer",
    "reader-plain": "reading the answer's HTTP/1.1 bytes: PlainReader (the default backend)",
    "reader-httptools": "reading the answer's HTTP/1.1 bytes: HttptoolsReader (fast backend)",
    "reader-h11": "reading the answer's HTTP/1.1 bytes: H11Reader (h11, the reference)",
}

#: An answer as nginx sends it (the wire suite's server): the head a reader has to get through.
_WIRE_ANSWER: Final = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 15:20:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n"
    % len(_ANSWER)
) + _ANSWER


def _reading(reader: AnswerReader) -> Callable[[], object]:
    def read() -> object:
        reader.start(b"POST")
        answer = reader.feed(_WIRE_ANSWER)
        assert answer is not None
        return answer

    return read


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=_HEADERS, content=_ANSWER)


def _per_call_sync(function: Callable[[], object], number: int, repeat: int) -> float:
    """The median over `repeat` runs of the seconds per call of `number` calls."""
    runs = []
    for _ in range(repeat):
        begin = time.perf_counter()
        for _ in range(number):
            function()
        runs.append((time.perf_counter() - begin) / number)
    return statistics.median(runs)


async def _per_call_async(
    function: Callable[[], Awaitable[object]], number: int, repeat: int
) -> float:
    runs = []
    for _ in range(repeat):
        begin = time.perf_counter()
        for _ in range(number):
            await function()
        runs.append((time.perf_counter() - begin) / number)
    return statistics.median(runs)


async def _time_sends(number: int, repeat: int) -> dict[str, float]:
    api_id, password = account.API_ID, account.API_PASSWORD
    phone, text = account.PHONENUMBER, account.TEXTMESSAGE
    endpoint = "http://127.0.0.1:9" + SEND_SMS_PATH
    body = account.payload()
    async with (
        AsyncSender(
            api_id=api_id,
            api_password=password,
            sender_id=account.SENDER_ID,
            base_url="http://127.0.0.1:9",
            transport=httpx.MockTransport(_answer),
        ) as sender,
        httpx.AsyncClient(transport=httpx.MockTransport(_answer)) as client,
    ):

        async def post() -> object:
            response = await client.post(endpoint, json=body)
            return response.json()

        async def send() -> object:
            return await sender.send(phone, text)

        # One warm-up pass each, so first-call costs (imports, caches) are not timed.
        await _per_call_async(send, number, 1)
        await _per_call_async(post, number, 1)
        return {
            "sender.send": await _per_call_async(send, number, repeat),
            "client.post": await _per_call_async(post, number, repeat),
        }


def run_micro(number: int = 2000, repeat: int = 5) -> dict[str, float]:
    """Microseconds per call of each step of `MICRO_STEPS`: the median of `repeat` runs."""
    seconds = asyncio.run(_time_sends(number, repeat))
    api_id, password = account.API_ID, account.API_PASSWORD
    secret = Secret(password)
    phone, text = account.PHONENUMBER, account.TEXTMESSAGE
    sms = SMS(phone, text)
    url = httpx.URL("http://127.0.0.1:9" + SEND_SMS_PATH)
    headers = [("Content-Type", "application/json")]

    build = RequestBuilder(
        method="POST",
        path=SEND_SMS_PATH,
        api_id=api_id,
        api_password=secret,
        sms_type="T",
        encoding="auto",
        sender_id=account.SENDER_ID,
    )
    body = build(sms).body

    def http_request() -> httpx.Request:
        return httpx.Request("POST", url, headers=headers, content=body)

    head = request_headers(url.netloc, httpx.Headers(headers).raw, "POST", len(body))

    def backend_request() -> httpx.Request:
        return _SendSMSRequest.build("POST", url, head, body, {})

    steps: dict[str, Callable[[], object]] = {
        "validation": lambda: SMS(phone, text),
        "encoding": lambda: detect_encoding(text),
        "request": lambda: build(sms),
        "httpx-request": http_request,
        "backend-request": backend_request,
        "response": lambda: read_response(200, _RAW_HEADERS, _ANSWER, sms),
        "reader-plain": _reading(PlainReader()),
        "reader-httptools": _reading(HttptoolsReader()),
        "reader-h11": _reading(H11Reader()),
    }
    for name, step in steps.items():
        _per_call_sync(step, number, 1)
        seconds[name] = _per_call_sync(step, number, repeat)
    return {name: seconds[name] * 1e6 for name in MICRO_STEPS}
