"""The outcome table of `docs/outcomes.md`, checked row by row against the code.

Every row names a failure; this test makes that failure happen at the HTTP boundary
(`httpx.MockTransport`) and checks the row's error class, whether it is retried by default and
with `retry_ambiguous=True`, and `may_have_been_sent`. HTTP rows are also checked against
`haorui_async._protocol.error_for_status`, the function that holds the table in the code.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import httpx
import pytest

import haorui_async
from haorui_async import SMS, AsyncSender, RetryPolicy, SendError
from haorui_async._defaults import MAX_ANSWER_BODY, MAX_ANSWER_HEAD
from haorui_async._protocol import error_for_status

PAGE = Path(__file__).resolve().parents[2] / "docs" / "outcomes.md"
Handler = Callable[[httpx.Request], httpx.Response]


def raising(exc_type: type[httpx.HTTPError], text: str = "simulated") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type(text, request=request)  # type: ignore[call-arg]  # httpx errors take request=

    return handler


def answering(status: int, **kwargs: object) -> Handler:
    return lambda request: httpx.Response(status, **kwargs)  # type: ignore[arg-type]  # kwargs


#: HTTP rows: the statuses each stands for.
STATUS_ROWS: dict[str, list[int]] = {
    "HTTP 408": [408],
    "HTTP 429": [429],
    "HTTP 503": [503],
    "HTTP 400, 401, 403, 404": [400, 401, 403, 404],
    "Other HTTP 4xx": [402, 405, 409, 410, 413, 418, 422, 451, 499],
    "HTTP 3xx": [300, 301, 302, 303, 304, 307, 308],
    "HTTP 501, 505": [501, 505],
    "HTTP 500": [500],
    "HTTP 502": [502],
    "HTTP 504": [504],
    "Other HTTP 5xx": [506, 507, 508, 511, 599],
}

#: The other rows: how to make each failure happen.
FAILURE_ROWS: dict[str, list[Handler]] = {
    "Connection refused": [raising(httpx.ConnectError, "[Errno 111] Connection refused")],
    "DNS failure": [raising(httpx.ConnectError, "[Errno -2] Name or service not known")],
    "Connect timeout": [raising(httpx.ConnectTimeout)],
    "Pool timeout": [raising(httpx.PoolTimeout)],
    "Request that cannot be sent (unsupported scheme, malformed request)": [
        raising(httpx.UnsupportedProtocol),
        raising(httpx.LocalProtocolError),
    ],
    "Read timeout": [raising(httpx.ReadTimeout)],
    "Write timeout": [raising(httpx.WriteTimeout)],
    "Connection lost after the request was written": [
        raising(httpx.RemoteProtocolError, "Server disconnected without sending a response."),
        raising(httpx.ReadError),
    ],
    "HTTP 200 with a body that is not the documented JSON": [
        answering(200, text="<html>busy</html>"),
        answering(200, json=[1]),
        answering(200, json={"status": "S"}),
        answering(200, json={"status": "?"}),
    ],
    'HTTP 200 with `"status": "F"`': [answering(200, json={"status": "F", "remarks": "No"})],
    "HTTP 200 answering for another message (a `uid` that is not this message's)": [
        answering(200, json={"message_id": 1, "status": "S", "remarks": "", "uid": "other"}),
        answering(200, json={"status": "F", "remarks": "No", "uid": "other"}),
    ],
    "Answer past the size cap (a head over 16 KiB, a body over 64 KiB)": [
        answering(200, content=b" " * (MAX_ANSWER_BODY + 1)),
        raising(httpx.RemoteProtocolError, "the answer is too large"),
    ],
}


@attrs.frozen
class Row:
    failure: str
    error_class: type[SendError]
    retried: bool
    retried_ambiguous: bool
    may_have_been_sent: bool


def _yes_no(cell: str) -> bool:
    assert cell in ("yes", "no"), f"expected yes or no, got {cell!r}"
    return cell == "yes"


def read_table() -> list[Row]:
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index("## The table")
    rows: list[Row] = []
    for line in lines[start:]:
        if not line.startswith("|") or line.startswith(("|---", "| Failure")):
            if rows and not line.startswith("|"):
                break
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert len(cells) == 5, line
        error_class = getattr(haorui_async, cells[1].strip("`"))
        rows.append(Row(cells[0], error_class, *(_yes_no(c) for c in cells[2:])))
    return rows


ROWS = read_table()
SMS_ = SMS("8613912345678", "Your code is 112233", uid="table-1")


def test_the_table_has_a_row_for_every_failure_and_no_other() -> None:
    assert sorted(row.failure for row in ROWS) == sorted([*STATUS_ROWS, *FAILURE_ROWS])


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r.failure in STATUS_ROWS], ids=lambda row: row.failure
)
def test_http_rows_match_error_for_status(row: Row) -> None:
    for status in STATUS_ROWS[row.failure]:
        error = error_for_status(status, SMS_, attempts=1)
        assert type(error) is row.error_class, status
        assert error.may_have_been_sent is row.may_have_been_sent, status
        assert RetryPolicy().should_retry(error) is row.retried, status
        assert RetryPolicy(retry_ambiguous=True).should_retry(error) is row.retried_ambiguous


async def _requests_made(handler: Handler, *, retry_ambiguous: bool) -> tuple[int, SendError]:
    requests = 0

    def counting(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return handler(request)

    async def no_sleep(seconds: float) -> None:
        pass

    async with AsyncSender(
        api_id="API43404236",
        api_password="secret",
        sender_id="HAORUI",
        transport=httpx.MockTransport(counting),
        retry=RetryPolicy(attempts=2, retry_ambiguous=retry_ambiguous),
        sleep=no_sleep,
    ) as sender:
        with pytest.raises(SendError) as info:
            await sender.send_message(SMS_)
    return requests, info.value


@pytest.mark.parametrize("row", ROWS, ids=lambda row: row.failure)
async def test_every_row_holds_for_a_real_send(row: Row) -> None:
    handlers = FAILURE_ROWS.get(row.failure) or [
        answering(status) for status in STATUS_ROWS[row.failure]
    ]
    for handler in handlers:
        requests, error = await _requests_made(handler, retry_ambiguous=False)
        assert type(error) is row.error_class, error
        assert error.may_have_been_sent is row.may_have_been_sent
        assert requests == (2 if row.retried else 1), error
        requests, _ = await _requests_made(handler, retry_ambiguous=True)
        assert requests == (2 if row.retried_ambiguous else 1), error


def test_the_caps_the_table_names_are_the_codes() -> None:
    row = next(r for r in ROWS if r.failure.startswith("Answer past the size cap"))
    assert f"head over {MAX_ANSWER_HEAD // 1024} KiB" in row.failure
    assert f"body over {MAX_ANSWER_BODY // 1024} KiB" in row.failure
