"""HTTP/1.1 on the wire, without I/O: the request's bytes, and a bounded reader of the answer.

`encode_request()` frames one request with a Content-Length (the only framing the SDK sends).
An `AnswerReader` takes the bytes of the connection as they arrive and says when the answer is
whole; it refuses an answer whose head or body is past the caps (`MAX_ANSWER_HEAD`,
`MAX_ANSWER_BODY`) as soon as that is known, so a hostile server costs a bounded amount of
memory. Bodies are returned as sent: the SDK asks for `Accept-Encoding: identity` and never
decodes an encoding it did not ask for.

Three readers, one interface: `PlainReader` (pure Python, strict: the default), `H11Reader`
(h11, which httpx already installs: ten times the CPU per answer, kept as the reference the
tests compare the plain reader with) and `HttptoolsReader` (llhttp, the `fast` extra).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Protocol, cast

import h11

from .. import _defaults as defaults
from .._native import caused_by

if TYPE_CHECKING:
    import httptools

__all__ = [
    "AnswerReader",
    "AnswerTooLarge",
    "H11Reader",
    "HttptoolsReader",
    "MalformedAnswer",
    "PlainReader",
    "RawAnswer",
    "Wire",
    "check_method",
    "encode_request",
    "header_block",
]

#: RFC 9110 token (method, header name), and what a header value must not hold.
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE: Final = re.compile(rb"[\r\n\0]|^[ \t]|[ \t]$")
_NOT_IN_TARGET: Final = re.compile(rb"[ \r\n]")
#: An answer's status line (the reason phrase may be empty or absent, as h11 allows).
_STATUS_LINE: Final = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: [^\r\n\0]*)?")
#: The end of an answer's head, and its line breaks (a bare LF is read as CRLF, as h11 does).
_HEAD_END: Final = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK: Final = re.compile(rb"\r?\n")
#: A header line: a token, a colon, the value (visible characters, inner spaces and tabs, as
#: h11 reads it) without the whitespace around it; an empty value leaves group 2 unset. The
#: value is matched run by run (character by character costs three times as much), and the
#: whitespace before it only where a value follows: a line of blanks then a bad byte would
#: otherwise be tried at every split of its blanks between the two `[ \t]*`, seconds of one
#: core for a 16 KiB head.
_HEADER_LINE: Final = re.compile(
    rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):"
    rb"(?:[ \t]*([\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*))?[ \t]*"
)
#: The lengths of the names of the headers that frame an answer (a cheap first test).
_FRAMING_LENGTHS: Final = frozenset({len(b"content-length"), len(b"transfer-encoding"), 10})
#: A chunk's size (hex digits; 16 of them cover any size), before any chunk extension.
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
#: Bytes a chunk's size line may take, extensions included.
_MAX_CHUNK_LINE: Final = 1024
#: Statuses whose answers have no body, whatever their headers say.
_NO_BODY: Final = frozenset({204, 304})
#: Headers that frame the message: the writer sets them, never a caller.
FRAMING: Final = frozenset({b"host", b"content-length", b"transfer-encoding"})


class MalformedAnswer(Exception):
    """What the server sent is not an HTTP/1.1 answer (or not one the SDK reads)."""


class AnswerTooLarge(MalformedAnswer):
    """The answer's head or body is past its cap; the rest is never read."""


class RawAnswer(NamedTuple):
    """A whole answer: status, raw headers, the body as sent, and whether the connection may
    carry another request."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool


def header_block(host: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """The header lines of requests to one origin, Host first.

    Raises ValueError: a name is not a token, a value holds CR, LF or NUL, or a header frames
    the body (Host, Content-Length and Transfer-Encoding are the writer's).
    """
    lines = [b"Host: %b\r\n" % host]
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _BAD_VALUE.search(value):
            raise ValueError(f"not a valid header: {name!r}")
        if name.lower() in FRAMING:
            raise ValueError(f"{name!r}: set by the request writer")
        lines.append(b"%b: %b\r\n" % (name, value))
    return b"".join(lines)


def check_method(method: bytes) -> None:
    """Raises ValueError: `method` is not an HTTP token (a space, CR or LF in it)."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"not an HTTP method: {method!r}")


class Wire:
    """The bytes of one request, as they go out. They carry the password (in the query or
    the body), so the repr shows only their length: a request's wire is a local of the
    frames its exchange awaits in, which a traceback printed with its locals shows (Sentry's
    default), for a failure or for the caller's cancellation alike."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"<Wire: {len(self.data)} bytes>"


def encode_request(method: bytes, target: bytes, block: bytes, body: bytes) -> bytes:
    """One request: `target` is the path and query, percent-encoded; `block` from
    `header_block()`.

    Raises ValueError: `target` is empty or holds a space, CR or LF.
    """
    # (One search, not `b" " in target`: bytes' `in` tries its operand as an int first, and
    # the TypeError it raises and drops costs more than the search.)
    if not target or _NOT_IN_TARGET.search(target):
        raise ValueError(f"not a request target: {target!r}")
    return b"%b %b HTTP/1.1\r\n%bContent-Length: %d\r\n\r\n%b" % (
        method,
        target,
        block,
        len(body),
        body,
    )


class AnswerReader(Protocol):
    """Reads one answer after another from the bytes of one connection."""

    def start(self, method: bytes) -> None:
        """A request went out: read its answer next."""

    def feed(self, data: bytes) -> RawAnswer | None:
        """Take bytes; the answer once it is whole, else None.

        Raises MalformedAnswer (AnswerTooLarge past a cap). Bytes after a whole answer make
        it not `keep_alive`: they answer nothing, and the connection is retired.
        """

    def eof(self) -> RawAnswer | None:
        """The server closed: the answer, where its body ran to the end of the connection."""


def _announced_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _head_size(headers: list[tuple[bytes, bytes]]) -> int:
    """The bytes of a head with these headers (the status line counted as its usual size)."""
    return sum(len(name) + len(value) + 4 for name, value in headers) + len(
        b"HTTP/1.1 200 OK\r\n\r\n"
    )


def _check_head(headers: list[tuple[bytes, bytes]], max_head: int) -> None:
    # Readers refuse an incomplete head past the cap as it arrives; a whole one can come in
    # one read, so it is measured too.
    if _head_size(headers) > max_head:
        raise AnswerTooLarge(f"the answer's head is past {max_head} bytes")


def _check_length(headers: list[tuple[bytes, bytes]], max_body: int) -> None:
    _check_announced(_announced_length(headers), max_body)


def _check_announced(length: int | None, max_body: int) -> None:
    if length is not None and length > max_body:
        raise AnswerTooLarge(f"the answer announces {length} bytes; the cap is {max_body}")


class _Reading:
    """What both readers collect of the answer being read."""

    def __init__(self, max_head: int, max_body: int) -> None:
        self._max_head = max_head
        self._max_body = max_body
        # The headers are the answer's own (its RawAnswer holds the list): a reader makes a
        # new list as it reads each head. The body's parts are joined into the answer, so
        # their list is cleared and reused: a request waiting for its answer holds no object
        # of its own here (each would be one more for the cyclic garbage collector to count
        # and walk, thousands of times over with thousands of requests in flight).
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._body.clear()
        self._size = 0


class _Phase(enum.Enum):
    HEAD = "head"
    LENGTH = "length"  # a Content-Length body
    CHUNK_SIZE = "chunk size"
    CHUNK_DATA = "chunk data"
    CHUNK_END = "chunk end"  # the CRLF after a chunk's data
    TRAILERS = "trailers"
    UNTIL_CLOSE = "until close"  # no framing: the body runs to the end of the connection
    DONE = "done"


class PlainReader(_Reading):
    """An `AnswerReader` in plain Python: HTTP/1.1 answers as RFC 9112 frames them.

    Strict where framing is concerned (the one thing that decides which bytes answer which
    request): a status line of HTTP/1.0 or 1.1, header names that are tokens, one
    Content-Length, `Transfer-Encoding` only as `chunked` and never beside a Content-Length,
    chunk sizes in hex; anything else is a `MalformedAnswer`. Interim (1xx) answers are
    skipped; 101 is refused. HTTP/1.0, `Connection: close` and bodies that run to the end of
    the connection are never kept alive. Each byte is looked at a bounded number of times,
    however the answer is cut into reads.
    """

    def __init__(
        self,
        *,
        max_head: int = defaults.MAX_ANSWER_HEAD,
        max_body: int = defaults.MAX_ANSWER_BODY,
    ) -> None:
        self._buf = bytearray()
        self._head_only = False
        self._done: RawAnswer | None = None
        super().__init__(max_head, max_body)

    def _reset(self) -> None:
        super()._reset()
        self._phase = _Phase.HEAD
        self._searched = 0  # bytes of the buffer already searched for the head's end
        self._left = 0  # bytes of the body (or chunk) still to come
        self._keep_alive = True
        self._trailer_size = 0

    def start(self, method: bytes) -> None:
        self._reset()
        self._buf.clear()
        self._done = None
        self._head_only = method == b"HEAD"

    def feed(self, data: bytes) -> RawAnswer | None:
        done = self._done
        if done is not None:
            # Bytes after the whole answer answer nothing: the connection is retired.
            return done._replace(keep_alive=False)
        buf = self._buf
        if not buf and self._phase is _Phase.HEAD:
            # The usual case, a whole answer in one read: parse it without copying it first.
            end = data.find(b"\r\n\r\n")
            head = data[:end] if 0 <= end <= self._max_head else None
            # A bare-LF break before the CRLF one ends the head earlier: the slow path finds it.
            # (`find`, not `in`: see `encode_request`.)
            if head is not None and head.find(b"\n\n") < 0 and head.find(b"\n\r\n") < 0:
                self._head(head)
                if self._is_body_left(len(data) - end - 4):
                    self._phase = _Phase.DONE
                    self._body.append(data[end + 4 :])
                    return self._advance()
                buf += memoryview(data)[end + 4 :]
                return self._advance()
        buf += data
        return self._advance()

    def eof(self) -> RawAnswer | None:
        if self._phase is not _Phase.UNTIL_CLOSE:
            return None  # no answer yet, or a framed one cut short
        self._phase = _Phase.DONE
        return RawAnswer(self._status, self._headers, b"".join(self._body), False)

    def _advance(self) -> RawAnswer | None:
        """Read what the buffer holds, phase by phase, as far as it goes."""
        buf = self._buf
        while True:
            phase = self._phase
            if phase is _Phase.HEAD:
                end = _HEAD_END.search(buf, max(0, self._searched - 3))
                if end is None:
                    if len(buf) > self._max_head:
                        raise AnswerTooLarge(f"the answer's head is past {self._max_head} bytes")
                    self._searched = len(buf)
                    return None
                if end.start() > self._max_head:
                    raise AnswerTooLarge(f"the answer's head is past {self._max_head} bytes")
                head = bytes(buf[: end.start()])
                del buf[: end.end()]
                self._searched = 0
                self._head(head)
            elif phase is _Phase.LENGTH or phase is _Phase.CHUNK_DATA:
                if not buf:
                    return None
                take = min(self._left, len(buf))
                self._body.append(bytes(buf[:take]))
                del buf[:take]
                self._left -= take
                if self._left:
                    return None
                self._phase = _Phase.DONE if phase is _Phase.LENGTH else _Phase.CHUNK_END
            elif phase is _Phase.CHUNK_SIZE:
                line = self._line(_MAX_CHUNK_LINE, "a chunk's size line")
                if line is None:
                    return None
                digits = line.split(b";", 1)[0].strip(b" \t")
                if not _CHUNK_SIZE.fullmatch(digits):
                    raise MalformedAnswer(f"not a chunk size: {bytes(digits[:20])!r}")
                size = int(digits, 16)
                if size == 0:
                    self._phase = _Phase.TRAILERS
                else:
                    self._grow(size)
                    self._left = size
                    self._phase = _Phase.CHUNK_DATA
            elif phase is _Phase.CHUNK_END:
                if buf[:2] == b"\r\n":
                    del buf[:2]
                elif buf[:1] == b"\n":
                    del buf[:1]
                elif buf == b"" or buf == b"\r":
                    return None
                else:
                    raise MalformedAnswer("a chunk's data is not followed by CRLF")
                self._phase = _Phase.CHUNK_SIZE
            elif phase is _Phase.TRAILERS:
                line = self._line(self._max_head - self._trailer_size, "the answer's trailers")
                if line is None:
                    return None
                self._trailer_size += len(line) + 2
                if not line:
                    self._phase = _Phase.DONE
            elif phase is _Phase.UNTIL_CLOSE:
                self._grow(len(buf))
                self._body.append(bytes(buf))
                buf.clear()
                return None
            else:
                answer = RawAnswer(
                    self._status, self._headers, b"".join(self._body), self._keep_alive and not buf
                )
                self._done = answer
                return answer

    def _is_body_left(self, size: int) -> bool:
        """Whether the head just read announced exactly `size` bytes of body."""
        return self._phase is _Phase.LENGTH and size == self._left

    def _line(self, cap: int, what: str) -> bytes | None:
        """The next line of the buffer without its line break, or None until it is whole."""
        buf = self._buf
        end = buf.find(b"\n", 0, cap + 2)
        if end < 0:
            if len(buf) > cap:
                raise AnswerTooLarge(f"{what} is past {cap} bytes")
            return None
        line = bytes(buf[: end - 1 if end and buf[end - 1] == 0x0D else end])
        del buf[: end + 1]
        return line

    def _grow(self, size: int) -> None:
        self._size += size
        if self._size > self._max_body:
            raise AnswerTooLarge(f"the answer's body is past {self._max_body} bytes")

    def _head(self, head: bytes) -> None:
        """Read a head: the status, the headers, and how the body is framed."""
        if head.count(b"\n") == head.count(b"\r\n"):
            lines = head.split(b"\r\n")
        else:
            lines = _LINE_BREAK.split(head)
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise MalformedAnswer(f"not an HTTP/1.1 status line: {lines[0][:40]!r}")
        status = int(status_line[2])
        headers = []
        length: int | None = None
        chunked = False
        keep_alive = status_line[1] == b"1"
        for line in lines[1:]:
            field = _HEADER_LINE.fullmatch(line)
            if field is None:
                raise MalformedAnswer(f"not a header line: {line[:40]!r}")
            name = field[1]
            value = field[2] or b""
            headers.append((name, value))
            if len(name) not in _FRAMING_LENGTHS:
                continue
            lowered = name.lower()
            if lowered == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise MalformedAnswer(f"not one valid Content-Length: {value[:20]!r}")
                length = int(value)
            elif lowered == b"transfer-encoding":
                codings = [c.strip(b" \t").lower() for c in value.split(b",")]
                if chunked or codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
                    raise MalformedAnswer(f"a transfer coding other than chunked: {value[:40]!r}")
                chunked = True
            elif lowered == b"connection" and b"close" in value.lower():
                keep_alive = False
        if status < 200:
            if status == 101:
                raise MalformedAnswer("the server switched protocols")
            return  # an interim answer: the real one follows (still in HEAD)
        if chunked and length is not None:
            raise MalformedAnswer("both Content-Length and Transfer-Encoding: chunked")
        _check_announced(length, self._max_body)
        self._status, self._headers, self._keep_alive = status, headers, keep_alive
        if self._head_only or status in _NO_BODY:
            self._phase = _Phase.DONE
        elif chunked:
            self._phase = _Phase.CHUNK_SIZE
        elif length is not None:
            self._left = length
            self._phase = _Phase.LENGTH if length else _Phase.DONE
        else:
            self._keep_alive = False
            self._phase = _Phase.UNTIL_CLOSE


class H11Reader(_Reading):
    """An `AnswerReader` on h11 (pure Python; httpx depends on it)."""

    def __init__(
        self,
        *,
        max_head: int = defaults.MAX_ANSWER_HEAD,
        max_body: int = defaults.MAX_ANSWER_BODY,
    ) -> None:
        self._conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head)
        super().__init__(max_head, max_body)

    def start(self, method: bytes) -> None:
        conn = self._conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        # h11 must see the request to frame its answer; the bytes themselves are ours.
        conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"h")]))
        conn.send(h11.EndOfMessage())
        self._reset()

    def feed(self, data: bytes) -> RawAnswer | None:
        self._conn.receive_data(data)
        return self._next()

    def eof(self) -> RawAnswer | None:
        if self._conn.their_state is not h11.SEND_BODY:
            return None
        self._conn.receive_data(b"")
        return self._next()

    def _next(self) -> RawAnswer | None:
        conn = self._conn
        try:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return None
                if isinstance(event, h11.Response):
                    self._status = event.status_code
                    self._headers = list(event.headers.raw_items())
                    _check_head(self._headers, self._max_head)
                    _check_length(self._headers, self._max_body)
                elif isinstance(event, h11.Data):
                    # A bytearray, though h11 declares bytes (compiled code would check it).
                    chunk: bytes | bytearray = cast(Any, event).data
                    self._size += len(chunk)
                    if self._size > self._max_body:
                        raise AnswerTooLarge(f"the answer's body is past {self._max_body} bytes")
                    self._body.append(bytes(chunk))
                elif isinstance(event, h11.EndOfMessage):
                    keep_alive = (
                        conn.our_state is h11.DONE
                        and conn.their_state is h11.DONE
                        and not conn.trailing_data[0]
                    )
                    return RawAnswer(self._status, self._headers, b"".join(self._body), keep_alive)
                elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover - eof() first
                    return None
                # h11.InformationalResponse (100 Continue): the real answer follows.
        except h11.RemoteProtocolError as exc:
            if "buffer" in str(exc).lower():
                raise caused_by(AnswerTooLarge(f"the answer's head is past its cap ({exc})"), None)
            raise caused_by(MalformedAnswer(str(exc)), None)


class HttptoolsReader(_Reading):
    """An `AnswerReader` on httptools (llhttp, in C): the `fast` extra.

    An answer that comes whole in one read (the usual case) is measured against the caps only
    where it could be past them: its head when the reads it came in are longer than the
    head's cap, its announced length when the answer is not over at the end of the read (the
    body's own bytes are counted as they come, whatever the length announced).
    """

    def __init__(
        self,
        *,
        max_head: int = defaults.MAX_ANSWER_HEAD,
        max_body: int = defaults.MAX_ANSWER_BODY,
    ) -> None:
        import httptools

        # The parts of httptools used per answer (an optional dependency, imported here).
        self._new_parser: type[httptools.HttpResponseParser] = httptools.HttpResponseParser
        self._upgrade: type[Exception] = httptools.HttpParserUpgrade
        self._parse_error: type[Exception] = httptools.HttpParserError
        self._parser = self._new_parser(self)
        self._done: RawAnswer | None = None
        self._too_large: str | None = None
        self._stray = False
        self._head_only = False
        self._renew = False
        super().__init__(max_head, max_body)

    def _reset(self) -> None:
        super()._reset()
        # The bytes of the earlier reads while this head was not over, and the length of the
        # read being parsed: the head is at most their sum.
        self._head_seen = 0
        self._reading = 0
        self._head_done = False
        self._length_checked = False

    def start(self, method: bytes) -> None:
        if self._renew:
            self._parser = self._new_parser(self)
            self._renew = False
        self._reset()
        self._done = None
        self._stray = False
        self._head_only = method == b"HEAD"

    def feed(self, data: bytes) -> RawAnswer | None:
        if self._done is not None:
            return self._trailing()
        self._reading = len(data)
        try:
            self._parser.feed_data(data)
        except self._upgrade:
            raise caused_by(MalformedAnswer("the server switched protocols"), None)
        except self._parse_error as exc:
            if self._too_large is not None:
                raise caused_by(AnswerTooLarge(self._too_large), None)
            if self._answer() is not None:
                # llhttp stopped at bytes after the whole answer: the answer stands, the
                # connection is retired.
                return self._trailing()
            raise caused_by(MalformedAnswer(str(exc)), None)
        if self._too_large is not None:
            raise AnswerTooLarge(self._too_large)
        done = self._answer()
        if done is None:
            if not self._head_done:
                # Everything read since the head began (or since an interim answer ended) is
                # counted as head.
                self._head_seen += len(data)
                if self._head_seen > self._max_head:
                    raise AnswerTooLarge(f"the answer's head is past {self._max_head} bytes")
            elif not self._length_checked:
                # More of the body is to come: refuse at once one announced past the cap.
                self._length_checked = True
                _check_announced(_announced_length(self._headers), self._max_body)
            return None
        if self._stray:
            return self._trailing()
        return done

    def _answer(self) -> RawAnswer | None:
        # A method, not `self._done` inline: the parser's callbacks set it during
        # `feed_data()`, which a type checker's narrowing (and compiled code's checks of what
        # it narrowed) cannot see.
        return self._done

    def _trailing(self) -> RawAnswer:
        done = self._done
        assert done is not None
        return done._replace(keep_alive=False)

    def eof(self) -> RawAnswer | None:
        if not self._head_done or self._status < 200 or self._done is not None:
            return None
        names = {name.lower() for name, _ in self._headers}
        if b"content-length" in names or b"transfer-encoding" in names:
            return None  # framed, and cut short
        return RawAnswer(self._status, self._headers, b"".join(self._body), False)

    # httptools callbacks: an exception here would be wrapped by httptools, so a cap sets
    # `_too_large` and pauses the parser instead.

    def on_message_begin(self) -> None:
        if self._done is not None:
            self._stray = True  # a second answer to one request
            return
        self._headers = []  # the answer's own: its RawAnswer keeps the list

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._done is None:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._done is not None:
            return
        self._head_done = True
        self._status = self._parser.get_status_code()
        if (
            self._head_seen + self._reading > self._max_head
            and _head_size(self._headers) > self._max_head
        ):
            self._too_large = f"the answer's head is past {self._max_head} bytes"
        elif (self._head_only or self._status in _NO_BODY) and not self._length_checked:
            # No body follows, so the check after the read would not come: a length past the
            # cap is refused here, as the other readers refuse it.
            self._length_checked = True
            length = _announced_length(self._headers)
            if length is not None and length > self._max_body:
                self._too_large = (
                    f"the answer announces {length} bytes; the cap is {self._max_body}"
                )
        if self._too_large is None and self._head_only and self._status >= 200:
            # The answer to HEAD has no body, whatever its Content-Length says. llhttp cannot
            # be told the method: the answer ends here, and the next one gets a fresh parser.
            keep_alive = self._parser.should_keep_alive()
            self._done = RawAnswer(self._status, self._headers, b"", keep_alive)
            self._renew = True

    def on_body(self, body: bytes) -> None:
        if self._done is not None:
            return
        self._size += len(body)
        if self._size > self._max_body:
            self._too_large = f"the answer's body is past {self._max_body} bytes"
        elif self._too_large is None:
            self._body.append(body)

    def on_message_complete(self) -> None:
        if self._done is not None:
            return
        if self._status < 200:
            # An interim answer (100 Continue): the real one follows, its head measured anew.
            reading = self._reading
            self._reset()
            self._reading = reading
            return
        if self._too_large is None:
            keep_alive = self._parser.should_keep_alive()
            self._done = RawAnswer(self._status, self._headers, b"".join(self._body), keep_alive)
