"""The httptools answer reader's caps: each head measured alone, lengths refused as announced.

The reader measures an answer against its caps only where it could be past them (most
answers come whole in one read, well within them); these are the cases where that shortcut
must still give the other readers' verdict.
"""

from __future__ import annotations

import pytest

from haorui_async._backends._wire import AnswerTooLarge, HttptoolsReader, PlainReader, RawAnswer

pytest.importorskip("httptools")  # (the `fast` extra)

MAX_HEAD = 16 * 1024
MAX_BODY = 64 * 1024
FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def read(
    reader: HttptoolsReader | PlainReader, reads: list[bytes], method: bytes = b"GET"
) -> RawAnswer | str:
    """Feed `reads` one by one; the answer, or "too large", or "pending"."""
    reader.start(method)
    try:
        for data in reads:
            answer = reader.feed(data)
            if answer is not None:
                return answer
    except AnswerTooLarge:
        return "too large"
    return "pending"


def both(reads: list[bytes], method: bytes = b"GET") -> list[RawAnswer | str]:
    readers: list[HttptoolsReader | PlainReader] = [
        HttptoolsReader(max_head=MAX_HEAD, max_body=MAX_BODY),
        PlainReader(max_head=MAX_HEAD, max_body=MAX_BODY),
    ]
    return [read(reader, reads, method) for reader in readers]


def hints(size: int) -> bytes:
    return b"HTTP/1.1 103 Early Hints\r\nLink: <%b>\r\n\r\n" % (b"a" * size)


def big_head(size: int) -> bytes:
    lines = b"".join(b"X-%d: %b\r\n" % (i, b"v" * 100) for i in range(size // 106))
    return b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\nok"


def test_interim_heads_each_within_the_cap_are_not_added_up() -> None:
    for reads in ([hints(9000), hints(9000), FINAL], [hints(9000) + hints(9000) + FINAL]):
        for outcome in both(reads):
            assert isinstance(outcome, RawAnswer), outcome
            assert (outcome.status, outcome.body) == (200, b"ok")


def test_a_head_past_the_cap_after_an_interim_answer_in_the_same_read_is_refused() -> None:
    interim_with_body = b"HTTP/1.1 150 X\r\nContent-Length: 3\r\n\r\n"
    assert both([interim_with_body, b"abc" + big_head(2 * MAX_HEAD)]) == ["too large"] * 2
    assert both([interim_with_body + b"abc" + big_head(2 * MAX_HEAD)]) == ["too large"] * 2


def test_a_head_past_the_cap_in_one_read_or_in_many_is_refused() -> None:
    head = big_head(2 * MAX_HEAD)
    assert both([head]) == ["too large"] * 2
    assert both([head[i : i + 1000] for i in range(0, len(head), 1000)]) == ["too large"] * 2


@pytest.mark.parametrize(
    ("answer", "method"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n", b"HEAD"),
        (b"HTTP/1.1 204 No Content\r\nContent-Length: 1000000000\r\n\r\n", b"GET"),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000000000\r\n\r\n", b"GET"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\nx", b"GET"),
    ],
)
def test_a_length_announced_past_the_cap_is_refused_with_or_without_a_body(
    answer: bytes, method: bytes
) -> None:
    assert both([answer], method) == ["too large"] * 2


def test_an_answer_within_the_caps_in_one_read_is_read_whole() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%b" % (MAX_BODY, b"b" * MAX_BODY)
    for outcome in both([answer]):
        assert isinstance(outcome, RawAnswer), outcome
        assert outcome.body == b"b" * MAX_BODY
