"""The records of the `bulk` command, without I/O: the recipients CSV in, the outcomes out.

In: the recipients file, one SMS per row (`check_recipients` validates and fingerprints it in
one pass, `read_recipients` reads its rows, `build_message` turns a row into an `SMS`). A row
without a uid gets one from the file's fingerprint and its row number (`generated_uid`), so
the same file names the same messages on every run, whatever its path.

Out: one JSON line per row in the outcomes file (`outcome_record`, `bad_row_record`,
`unknown_record`, written by `record_line`); the journal keeps the same line for each row.

Nothing here opens a file, prints or sleeps: every function reads the file object or lines it
is given, or works on plain values; `cli/_bulk.py` opens the files and translates `BadCsv`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, Final

import attrs

from .._exceptions import SendError
from .._message import SMS

if TYPE_CHECKING:
    from _csv import Reader as CsvReader

    from _typeshed import WriteableBuffer

    from .._outcome import Outcome
    from .._reconcile import Reconciliation

__all__ = [
    "ENCODING",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "UNKNOWN_DETAIL",
    "BadCsv",
    "RecipientsFile",
    "Row",
    "bad_row_record",
    "build_message",
    "check_recipients",
    "fingerprint",
    "generated_uid",
    "outcome_record",
    "read_recipients",
    "reconciled_record",
    "record_line",
    "unknown_record",
    "with_delivery",
]

REQUIRED_COLUMNS: Final = ("phonenumber", "textmessage")
OPTIONAL_COLUMNS: Final = ("uid", "sms_type", "encoding", "sender_id", "callback_url")
#: The recipients file's encoding; "-sig" drops the byte-order mark that spreadsheets write.
ENCODING: Final = "utf-8-sig"
#: Read this many bytes at a time when fingerprinting the input.
FINGERPRINT_CHUNK: Final = 1 << 20
UNKNOWN_DETAIL: Final = (
    "attempted by an earlier run, which stopped before recording an outcome: it may have "
    "been sent; not sent again (--reconcile finds out whether it was)"
)


class BadCsv(ValueError):
    """The recipients file cannot be sent from: not UTF-8, not CSV, or a header without the
    required columns. The message says what is wrong, without the file's name."""


@attrs.frozen
class Row:
    """One record of the input: its number (from 1), its first line, and its fields."""

    row: int
    line: int
    fields: list[str]


@attrs.frozen
class RecipientsFile:
    """What one full read of a recipients file found, before anything is sent.

    Attributes:
        header: the column names, in lower case, the required ones among them.
        fingerprint: the SHA-256 of the file's bytes (see `fingerprint`).
        rows: how many records follow the header (blank lines not counted).
        repeated: rows whose uid an earlier row already has, with that row.
    """

    header: list[str]
    fingerprint: str
    rows: int
    #: Rows whose `uid` an earlier row of the file already has, with that earlier row: one
    #: uid names one message (a lookup or a report by uid could not tell two apart).
    repeated: dict[int, int] = attrs.field(factory=dict)


class _HashingReader(io.RawIOBase):
    """Reads `file` and hashes every byte read, so one pass both parses and fingerprints."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._file.read(len(view))
        view[: len(data)] = data
        self._digest.update(data)
        return len(data)

    def hexdigest(self) -> str:
        """The digest of the whole file: what was not read yet is read (and hashed) first."""
        while chunk := self._file.read(FINGERPRINT_CHUNK):
            self._digest.update(chunk)
        return self._digest.hexdigest()


def fingerprint(file: IO[bytes]) -> str:
    """The SHA-256 of the bytes `file` holds from where it stands: a journal belongs to
    exactly one input."""
    return _HashingReader(file).hexdigest()


def generated_uid(fingerprint: str, row: int, job: str = "") -> str:
    """The uid of a row that carries none: the same on every run of one job (`job`, its
    id), whatever the file's path; another job of the same file has other uids, so a lookup
    for one job's message never finds the other's. (No `job`: the form of journals made
    before jobs had ids.)"""
    if job:
        return f"{fingerprint[:16]}-{job}-{row}"
    return f"{fingerprint[:16]}-{row}"


def _header(fields: list[str]) -> list[str]:
    header = [name.strip().lower() for name in fields]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise BadCsv(
            f"the header lacks the column(s) {', '.join(missing)}; "
            f"expected {', '.join(REQUIRED_COLUMNS)} and optionally {', '.join(OPTIONAL_COLUMNS)}"
        )
    return header


def _rows(reader: CsvReader, *, line: int) -> Iterator[Row]:
    # `line_num` counts physical lines, so a quoted field spanning lines keeps later rows'
    # line numbers right.
    number = 0
    for fields in reader:
        if fields:
            number += 1
            yield Row(number, line, fields)
        line = reader.line_num + 1


def read_recipients(lines: Iterable[str]) -> tuple[list[str], Iterator[Row]]:
    """The header's column names (in lower case) and the records after it.

    `lines` is a text file opened with `newline=""` and `ENCODING`, or any iterable of lines.
    The header is read and checked now; the records lazily, blank lines skipped.

    Raises:
        BadCsv: the header lacks a required column (an empty file has no header).
        csv.Error, UnicodeDecodeError: from the lines, as they are read.
    """
    reader = csv.reader(lines)
    header = _header(next(reader, []))
    return header, _rows(reader, line=reader.line_num + 1)


def check_recipients(file: IO[bytes]) -> RecipientsFile:
    """Read the whole recipients file once: check that it is UTF-8 CSV with the required
    columns, fingerprint its bytes and count its records.

    Raises:
        BadCsv: naming what is wrong (the first problem met, in file order).
    """
    hashing = _HashingReader(file)
    # The same layers as `open()`, so the file decodes and splits into lines exactly as the
    # sending pass reads it. Closing them closes `hashing`, never `file`: the caller's.
    text = io.TextIOWrapper(io.BufferedReader(hashing), encoding=ENCODING, newline="")
    try:
        with text:
            header, rows = read_recipients(text)
            count = 0
            repeated: dict[int, int] = {}
            column = header.index("uid") if "uid" in header else None
            first_of: dict[str, int] = {}
            for row in rows:
                count += 1
                if column is not None and column < len(row.fields):
                    uid = row.fields[column].strip()
                    if uid:
                        first = first_of.setdefault(uid, row.row)
                        if first != row.row:
                            repeated[row.row] = first
    except UnicodeDecodeError as exc:
        # `exc.start` counts from the chunk being decoded, not the file: name only the byte.
        bad = exc.object[exc.start : exc.end]
        raise BadCsv(f"not UTF-8 text (it holds {bad!r}): save it as UTF-8") from None
    except csv.Error as exc:
        raise BadCsv(f"not a readable CSV file ({exc})") from None
    return RecipientsFile(header, hashing.hexdigest(), count, repeated)


def build_message(header: list[str], row: Row, *, fingerprint: str, job: str = "") -> SMS:
    """The `SMS` of one record; a row without a uid gets `generated_uid(fingerprint, row, job)`.

    Raises `InvalidMessage` naming the field, or a `ValueError` (a row of the wrong width).
    """
    if len(row.fields) != len(header):
        raise ValueError(f"expected {len(header)} fields, got {len(row.fields)}")
    values = {
        name: value.strip() or None
        for name, value in zip(header, row.fields, strict=True)
        if name in REQUIRED_COLUMNS or name in OPTIONAL_COLUMNS
    }
    return SMS(
        values.get("phonenumber") or "",
        row.fields[header.index("textmessage")],
        uid=values.get("uid") or generated_uid(fingerprint, row.row, job),
        sms_type=values.get("sms_type"),
        encoding=values.get("encoding"),
        sender_id=values.get("sender_id"),
        callback_url=values.get("callback_url"),
    )


def outcome_record(row: int, line: int, outcome: Outcome) -> dict[str, Any]:
    """The JSON line of one sent (or unsent) row."""
    record: dict[str, Any] = {"row": row, "line": line, "uid": outcome.uid}
    record["phonenumber"] = None if outcome.message is None else outcome.message.phonenumber
    record["kind"] = outcome.kind
    record["may_have_been_sent"] = outcome.may_have_been_sent
    if outcome.result is not None:
        record["message_id"] = outcome.result.message_id
        record["attempts"] = outcome.result.attempts
        if outcome.result.reconciled:
            record["reconciled"] = True
            record["detail"] = "its answer was lost; a lookup or a delivery report found it"
    error = outcome.error
    if isinstance(error, SendError):
        record["status_code"] = error.status_code
        record["attempts"] = error.attempts
        # The record has the status, uid and attempts in fields of their own.
        record["detail"] = error.detail
    elif error is not None:
        record["detail"] = str(error)
    return record


def bad_row_record(row: Row, error: Exception) -> dict[str, Any]:
    """The JSON line of a record that could not be read as a message."""
    return {
        "row": row.row,
        "line": row.line,
        "uid": None,
        "kind": "invalid",
        "may_have_been_sent": False,
        "field": getattr(error, "field", None),
        "detail": f"line {row.line}: {error}",
    }


def unknown_record(row: int, line: int, uid: str | None) -> dict[str, Any]:
    """The JSON line of a row an earlier run attempted without recording an outcome."""
    return {
        "row": row,
        "line": line,
        "uid": uid,
        "kind": "unknown",
        "may_have_been_sent": True,
        "detail": UNKNOWN_DETAIL,
    }


def reconciled_record(row: int, line: int, found: Reconciliation) -> dict[str, Any]:
    """The JSON line of a row whose outcome was unknown and which reconciliation found
    accepted: by a delivery report for its uid, or by a lookup."""
    return {
        "row": row,
        "line": line,
        "uid": found.uid,
        "kind": "sent",
        "may_have_been_sent": True,
        "message_id": found.message_id,
        "reconciled": True,
        "detail": f"reconciled by {found.source}: {found.detail}",
    }


def with_delivery(text: str, delivery: str) -> str:
    """The JSON line `text` with its `delivery` field set to `delivery`."""
    record = json.loads(text)
    record["delivery"] = delivery
    return record_line(record)


def record_line(record: dict[str, Any]) -> str:
    """One record as the outcomes file and the journal hold it: compact JSON, no newline."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
