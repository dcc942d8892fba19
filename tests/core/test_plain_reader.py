"""The plain answer reader against h11, the reference it replaces on the default path.

Generated answers (every framing, interim answers, any cut into reads) must read the same as
h11 reads them; answers whose framing is ambiguous or broken must be refused by both.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from haorui_async._backends._wire import (
    AnswerTooLarge,
    H11Reader,
    MalformedAnswer,
    PlainReader,
    RawAnswer,
)

Outcome = tuple[int, list[tuple[bytes, bytes]], bytes, bool] | str | None

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1)
VALUE = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 ;=/,.", max_size=30).map(
    lambda v: v.strip()
)
FRAMING_NAMES = {"content-length", "transfer-encoding", "connection"}


@st.composite
def answers(draw: st.DrawFn) -> bytes:
    """A well-formed HTTP/1.x answer: maybe interim answers first, then one framed body."""
    out = b""
    for _ in range(draw(st.integers(0, 2))):
        out += b"HTTP/1.1 100 Continue\r\n\r\n"
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 400, 429, 500, 503]))
    reason = draw(st.sampled_from([b" OK", b" ", b"", b" Some Reason"]))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    lines = [b"HTTP/%b %d%b" % (version, status, reason)]
    for name, value in draw(st.lists(st.tuples(TOKEN, VALUE), max_size=5)):
        if name.lower() not in FRAMING_NAMES:
            lines.append(f"{name}: {value}".encode())
    if draw(st.booleans()):
        lines.append(b"Connection: " + draw(st.sampled_from([b"close", b"keep-alive"])))
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if status == 204:
        framing = "length"
        body = b""
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 50), max_size=8))
        payload, at = b"", 0
        for size in sizes:
            part = body[at : at + size]
            if not part:
                break
            payload += b"%x\r\n%b\r\n" % (len(part), part)
            at += len(part)
        body = body[:at]
        payload += b"0\r\n" + draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"])) + b"\r\n"
    else:
        payload = body
    return out + eol.join(lines) + eol + eol + payload


def read(reader: PlainReader | H11Reader, data: bytes, cut: list[int], eof: bool) -> Outcome:
    """Feed `data` cut at `cut`; the answer, or the name of the error it raised."""
    reader.start(b"POST")
    bounds = [0, *sorted({c for c in cut if 0 < c < len(data)}), len(data)]
    answer: RawAnswer | None = None
    try:
        for start, end in itertools.pairwise(bounds):
            answer = reader.feed(data[start:end]) or answer
        if answer is None and eof:
            answer = reader.eof()
            if answer is not None:
                # Read to the end of the connection: it is gone, whatever the reader says.
                answer = answer._replace(keep_alive=False)
    except AnswerTooLarge:
        return "too large"
    except MalformedAnswer:
        return "malformed"
    if answer is None:
        return None
    return (answer.status, answer.headers, answer.body, answer.keep_alive)


@settings(max_examples=400, deadline=None)
@given(data=answers(), cut=st.lists(st.integers(0, 2000), max_size=6), eof=st.booleans())
def test_the_plain_reader_reads_every_answer_as_h11_does(
    data: bytes, cut: list[int], eof: bool
) -> None:
    assert read(PlainReader(), data, cut, eof) == read(H11Reader(), data, cut, eof)


@settings(max_examples=200, deadline=None)
@given(data=answers(), cut=st.lists(st.integers(0, 2000), max_size=6))
def test_a_reader_used_again_reads_the_next_answer_the_same(data: bytes, cut: list[int]) -> None:
    plain, h11 = PlainReader(), H11Reader()
    first = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert read(plain, first, [], False) == read(h11, first, [], False)
    assert read(plain, data, cut, True) == read(h11, data, cut, True)


REFUSED = {
    "not HTTP": b"SMTP ready\r\n\r\n",
    "HTTP/2 status line": b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    "status of two digits": b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
    "header without colon": b"HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n",
    "space before colon": b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    "folded header": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  more\r\nContent-Length: 0\r\n\r\n",
    "two lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "length not a number": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "length and chunked": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "gzip transfer coding": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc",
    "chunk size not hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n",
    "chunk without CRLF": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n"
    ),
    "switching protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
}


@pytest.mark.parametrize("data", list(REFUSED.values()), ids=list(REFUSED))
@pytest.mark.parametrize("pieces", [1, 3, 1000], ids=["at-once", "in-3", "byte-by-byte"])
def test_a_broken_answer_is_refused_however_it_arrives(data: bytes, pieces: int) -> None:
    size = max(1, -(-len(data) // pieces))
    cut = list(range(size, len(data), size))
    assert read(PlainReader(), data, cut, eof=True) == "malformed"


def test_a_body_past_the_cap_is_refused_in_every_framing() -> None:
    big = b"x" * 101
    framed = {
        "length": b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + big,
        "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n" + big,
        "close": b"HTTP/1.1 200 OK\r\n\r\n" + big,
    }
    for data in framed.values():
        assert read(PlainReader(max_body=100), data, [40, 60], eof=True) == "too large"


def test_a_chunk_size_line_and_trailers_are_bounded() -> None:
    endless_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 2000
    assert read(PlainReader(), endless_size, [], eof=False) == "too large"
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
    trailers = b"".join(b"X-T%d: %b\r\n" % (n, b"v" * 100) for n in range(200))
    assert read(PlainReader(max_head=4096), head + trailers, [], eof=False) == "too large"


def test_a_line_of_blanks_is_read_in_one_pass_however_long() -> None:
    # Blanks then a bad byte (or then a value): a pattern that tries every split of the
    # blanks between its two runs of optional whitespace takes seconds on a 16 KiB line, and
    # hours on this one (pytest's timeout ends it); a single pass, well under one.
    blanks = b" \t" * 500_000
    head = b"HTTP/1.1 200 OK\r\nX:" + blanks + b"\x0b\r\nContent-Length: 0\r\n\r\n"
    assert read(PlainReader(max_head=2**21), head, [], eof=False) == "malformed"
    head = b"HTTP/1.1 200 OK\r\nX:" + blanks + b"a" + blanks + b"\r\nContent-Length: 0\r\n\r\n"
    answer = read(PlainReader(max_head=2**22), head, [], eof=False)
    assert answer == (200, [(b"X", b"a"), (b"Content-Length", b"0")], b"", True)


def test_the_answer_to_head_has_no_body_whatever_it_announces() -> None:
    reader = PlainReader()
    reader.start(b"HEAD")
    answer = reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
    assert answer is not None
    assert (answer.body, answer.keep_alive) == (b"", True)
