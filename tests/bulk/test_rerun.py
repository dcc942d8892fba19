"""`haorui-async bulk` run again: what a rerun does with each recorded outcome, reconciliation,
and the delivery reports a job takes (`--callback-url`, `--listen`, `--collect-reports`).

The table of what a rerun does per recorded outcome is in `haorui_async/cli/_bulk_job.py`.
Every test checks the emulator's own counts too: a row the outcomes file calls sent was
accepted exactly once, and nothing a rerun keeps was sent again.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import attrs
import httpx
import pytest

from haorui_async._journal import Journal
from haorui_async.cli._records import fingerprint, generated_uid
from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD

from ._emulator import emulator_process, env_for
from .conftest import eventually
from .test_cli import outcomes, recipients, run_bulk, write_csv

SENDER_ID = "HAORUI"
COMMAND = "from haorui_async.cli import main; main()"
#: How long a bulk subprocess may take to start listening: on a busy machine starting the
#: interpreter and importing the command alone takes seconds.
START_TIMEOUT = 30.0
#: A bound on a bulk subprocess's whole run, which ends on an event (its last report, a
#: signal): only a test that fails waits this long.
RUN_TIMEOUT = 40.0
#: The wrong password of the refused runs.
WRONG_PASSWORD = "not-the-demo-password"


# -- the emulators ------------------------------------------------------------------------


@attrs.frozen
class Gateway:
    """An emulator process, and a client to ask it what it accepted."""

    url: str
    http: httpx.Client

    def stats(self) -> dict[str, Any]:
        """The counters: requests, accepted, duplicates, lookups, faults, reports."""
        answer: dict[str, Any] = self.http.get(f"{self.url}/_emulator/stats").json()
        return answer

    def sent_counts(self) -> tuple[int, int, int]:
        """What a run that sends nothing leaves as it was: SendSMS requests, messages
        accepted, lookups."""
        now = self.stats()
        return now["requests"], now["accepted"], now["lookups"]

    def accepted(self) -> Counter[str]:
        """How many times it accepted each uid."""
        return Counter(self.http.get(f"{self.url}/_emulator/uids").json()["uids"])

    def pushes(self, fate: str) -> int:
        """Delivery reports pushed so far with this fate: "sent" (answered 2xx), "failed"."""
        count: int = self.stats()["reports"].get(fate, 0)
        return count


@contextmanager
def running(*options: str) -> Iterator[Gateway]:
    with emulator_process(*options) as url, httpx.Client(timeout=10) as http:
        yield Gateway(url, http)


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """A healthy emulator: every message accepted, a "Delivered" report pushed for each
    message with a callback URL (once: a push that fails is not tried again)."""
    with running("--latency", "0.002", "--dlr-delay", "0.01") as emulator:
        yield emulator


# -- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on (as long as nothing else takes it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def digest_of(csv_path: Path) -> str:
    """The fingerprint of the CSV file, as the command records it in its journal."""
    with csv_path.open("rb") as file:
        return fingerprint(file)


def uids_of(csv_path: Path, count: int, journal: Path | None = None) -> list[str]:
    """The uids the command gives the `count` rows of a file without a uid column, in the
    job of `journal` (default: `out.jsonl.journal` beside the file), which is made now if
    it is not there yet: the uids hold the job's id."""
    digest = digest_of(csv_path)
    with Journal(journal or csv_path.with_name("out.jsonl.journal"), fingerprint=digest) as j:
        job = j.job
    return [generated_uid(digest, row, job) for row in range(1, count + 1)]


def by_row(out: Path) -> dict[int, dict[str, Any]]:
    """The outcomes file by row; fails if a row has two lines."""
    lines = outcomes(out)
    found = {line["row"]: line for line in lines}
    assert len(found) == len(lines), "a row has two outcome lines"
    return found


def flat(output: str) -> str:
    """The command's output on one line: rich wraps long sentences at the terminal width."""
    return " ".join(output.split())


def table(output: str, column: str) -> dict[str, int]:
    """The rows of the summary table whose first column is `column` ("outcome", "delivery"):
    label -> count. (Found by its header: rich wraps a title wider than its table.)"""
    lines = output.splitlines()
    header = next(n for n, line in enumerate(lines) if re.match(rf"\W*{column}\W+rows\W*$", line))
    rows: dict[str, int] = {}
    for line in lines[header + 1 :]:
        if line.startswith("└"):
            return rows
        found = re.fullmatch(r"\W*([a-z_ ]+?)\W+([\d,]+)\W*", line)
        if found:
            rows[found[1]] = int(found[2].replace(",", ""))
    raise AssertionError(f"the {column} table has no end")


def journal_token(path: Path) -> str:
    """The job's report token, as its journal keeps it (the meta table)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (token,) = db.execute("SELECT value FROM meta WHERE key = 'token'").fetchone()
    finally:
        db.close()
    assert isinstance(token, str)
    return token


def journal_reports(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """uid -> (report as JSON text, delivery state) of every journaled row with a uid."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT uid, report, delivery FROM rows WHERE uid IS NOT NULL")
        return {uid: (report, delivery) for uid, report, delivery in rows.fetchall()}
    finally:
        db.close()


def report(uid: str, message_id: str, status: str) -> dict[str, str]:
    """A delivery report in the gateway family's format."""
    return {"uid": uid, "message_id": message_id, "DLRStatus": status}


# -- a rerun after a fixed cause ----------------------------------------------------------


def test_rows_invalid_for_lack_of_a_sender_id_are_sent_by_a_rerun_with_sender_id(
    gateway: Gateway, tmp_path: Path
) -> None:
    # Rows 1 and 2 carry their own sender id; the others need --sender-id.
    csv_path = write_csv(
        tmp_path / "r.csv",
        [["8613912345678", f"no sender id {n}", "LIASMT" if n < 2 else ""] for n in range(12)],
        header=("phonenumber", "textmessage", "sender_id"),
    )
    out = tmp_path / "out.jsonl"
    uids = uids_of(csv_path, 12)
    result = run_bulk(gateway.url, csv_path, "--out", out)
    assert result.exit_code == 2, result.output
    lines = by_row(out)
    assert [lines[n]["kind"] for n in range(1, 13)] == ["sent"] * 2 + ["invalid"] * 10
    assert all(lines[n]["field"] == "sender_id" for n in range(3, 13))
    accepted = gateway.accepted()
    assert [accepted[uid] for uid in uids] == [1] * 2 + [0] * 10

    # The same command with --sender-id: the same CSV and journal finish the job.
    result = run_bulk(gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID)
    assert result.exit_code == 0, result.output
    lines = by_row(out)
    assert sorted(lines) == list(range(1, 13))
    assert {line["kind"] for line in lines.values()} == {"sent"}
    assert [lines[n]["uid"] for n in range(1, 13)] == uids
    accepted = gateway.accepted()
    assert [accepted[uid] for uid in uids] == [1] * 12
    # The rows sent by the first run were kept, not sent again.
    assert "10 sent in this run" in flat(result.output)


@pytest.mark.slow
def test_not_sent_rows_after_an_outage_are_sent_by_a_rerun(
    gateway: Gateway, tmp_path: Path
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 8, "outage")
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    uids = uids_of(csv_path, 8)
    # Nothing listens there: every connection is refused, so provably nothing was sent.
    nowhere = f"http://127.0.0.1:{free_port()}"
    result = run_bulk(nowhere, csv_path, "--out", out, "--sender-id", SENDER_ID)
    assert result.exit_code == 1, result.output
    lines = by_row(out)
    assert sorted(lines) == list(range(1, 9))
    assert {line["kind"] for line in lines.values()} == {"not_sent"}
    assert not any(line["may_have_been_sent"] for line in lines.values())
    assert journal.exists()
    assert [gateway.accepted()[uid] for uid in uids] == [0] * 8

    # The outage is over (here: the base URL is fixed): the same CSV, the same journal.
    result = run_bulk(gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID)
    assert result.exit_code == 0, result.output
    lines = by_row(out)
    assert {line["kind"] for line in lines.values()} == {"sent"}
    assert [lines[n]["uid"] for n in range(1, 9)] == uids
    assert [gateway.accepted()[uid] for uid in uids] == [1] * 8


@pytest.mark.parametrize(
    ("cause", "kind", "status"),
    [
        # The emulator refuses an unknown account as the gateway family does: HTTP 200 with
        # status "F", which the command records as "failed".
        ("password", "failed", 200),
        # An HTTP refusal (400, 401, 403, 404...) is "rejected"; a wrong path gives a 404.
        ("path", "rejected", 404),
    ],
)
def test_refused_rows_are_kept_until_retry_refused(
    gateway: Gateway, tmp_path: Path, cause: str, kind: str, status: int
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 6, f"refused: {cause}")
    out = tmp_path / "out.jsonl"
    uids = uids_of(csv_path, 6)
    if cause == "password":
        url, env = gateway.url, {"HAORUI_API_PASSWORD": WRONG_PASSWORD}
    else:
        url, env = gateway.url + "/nowhere", {}
    before = gateway.sent_counts()
    result = run_bulk(url, csv_path, "--out", out, "--sender-id", SENDER_ID, env=env)
    assert result.exit_code == 1, result.output
    lines = by_row(out)
    assert {line["kind"] for line in lines.values()} == {kind}
    assert {line["status_code"] for line in lines.values()} == {status}
    assert not any(line["may_have_been_sent"] for line in lines.values())
    if cause == "password":
        assert all("Invalid API credentials" in line["detail"] for line in lines.values())
    # A refusal is never retried: one request per row (refused before the model sees a
    # wrong path, so only a wrong password counts as SendSMS requests).
    assert {line["attempts"] for line in lines.values()} == {1}
    requests, accepted, lookups = gateway.sent_counts()
    assert (requests - before[0], accepted, lookups) == (
        6 if cause == "password" else 0,
        before[1],
        before[2],
    )
    assert [gateway.accepted()[uid] for uid in uids] == [0] * 6
    assert "--retry-refused" in flat(result.output)

    # The cause fixed, but without --retry-refused: the refused rows are kept as they are.
    before = gateway.sent_counts()
    result = run_bulk(gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID)
    assert result.exit_code == 1, result.output
    assert by_row(out) == lines
    assert gateway.sent_counts() == before
    assert [gateway.accepted()[uid] for uid in uids] == [0] * 6

    result = run_bulk(
        gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID, "--retry-refused"
    )
    assert result.exit_code == 0, result.output
    lines = by_row(out)
    assert {line["kind"] for line in lines.values()} == {"sent"}
    assert [gateway.accepted()[uid] for uid in uids] == [1] * 6

    # Once sent, --retry-refused sends nothing again.
    before = gateway.sent_counts()
    result = run_bulk(
        gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID, "--retry-refused"
    )
    assert result.exit_code == 0, result.output
    assert gateway.sent_counts() == before


# -- reconciliation -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lossy_gateway() -> Iterator[Gateway]:
    """An emulator that loses the answer to 30 % of the messages it accepts, and drops 10 %
    of the requests without accepting them: both leave the sender without an outcome."""
    with running("--rate-lose-answer", "0.3", "--rate-drop", "0.1", "--seed", "5") as emulator:
        yield emulator


def test_reconcile_settles_the_unknown_rows_and_sends_only_those_never_accepted(
    lossy_gateway: Gateway, tmp_path: Path
) -> None:
    rows = 60
    csv_path = recipients(tmp_path / "r.csv", rows, "reconcile")
    out = tmp_path / "out.jsonl"
    uids = uids_of(csv_path, rows)
    result = run_bulk(lossy_gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID)
    assert result.exit_code == 3, result.output
    lines = by_row(out)
    unknown = {n for n, line in lines.items() if line["kind"] == "unknown"}
    assert unknown
    assert {lines[n]["kind"] for n in set(lines) - unknown} == {"sent"}
    accepted = lossy_gateway.accepted()
    assert max(accepted.values()) == 1
    had_been = {n for n in unknown if accepted[uids[n - 1]] == 1}
    had_not = unknown - had_been
    # The seed makes both kinds of loss happen among the first run's requests.
    assert had_been
    assert had_not

    result = run_bulk(
        lossy_gateway.url,
        csv_path,
        "--out",
        out,
        "--sender-id",
        SENDER_ID,
        "--reconcile",
        "--reconcile-settle",
        "0.2",
    )
    assert result.exit_code == 0, result.output
    lines = by_row(out)
    assert sorted(lines) == list(range(1, rows + 1))
    assert {line["kind"] for line in lines.values()} == {"sent"}
    accepted = lossy_gateway.accepted()
    assert [accepted[uid] for uid in uids] == [1] * rows
    assert lossy_gateway.stats()["duplicates"] == 0
    for n in had_been:
        assert lines[n]["reconciled"] is True, lines[n]
        assert lines[n]["detail"].startswith("reconciled by lookup"), lines[n]
    # Rows the first run sent are written as it recorded them.
    for n in set(lines) - unknown:
        assert "reconciled" not in lines[n], lines[n]
    assert (
        f"Reconciled {len(unknown)} unknown rows: {len(had_been)} had been accepted, "
        f"{len(had_not)} had not (sent now), 0 could not be told."
    ) in flat(result.output)


# -- options that do not go together ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (("--reconcile", "--resend-unknown"), "--reconcile, --resend-unknown"),
        (("--listen", "127.0.0.1:8080"), "--listen needs --callback-url"),
        (("--collect-reports",), "--collect-reports needs --listen"),
        (("--callback-url", "http://127.0.0.1:8080/dlr", "--collect-reports"), "needs --listen"),
        (("--callback-url", "http://127.0.0.1:8080/dlr", "--listen", "nonsense"), "HOST:PORT"),
        (("--callback-url", "http://127.0.0.1:8080/dlr", "--listen", "127.0.0.1:"), "HOST:PORT"),
        (("--callback-url", "http://127.0.0.1:8080/dlr", "--listen", ":8080"), "HOST:PORT"),
        (("--callback-url", "http://127.0.0.1:8080/dlr", "--listen", "h:70000"), "HOST:PORT"),
    ],
)
def test_options_that_do_not_go_together_exit_2_before_anything_is_sent(
    gateway: Gateway, tmp_path: Path, options: tuple[str, ...], complaint: str
) -> None:
    csv_path = recipients(tmp_path / "r.csv", 3, "bad options")
    out = tmp_path / "out.jsonl"
    before = gateway.sent_counts()
    result = run_bulk(gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID, *options)
    assert result.exit_code == 2, result.output
    assert complaint in flat(result.output)
    assert not out.exists()
    assert not (tmp_path / "out.jsonl.journal").exists()
    assert gateway.sent_counts() == before


def test_a_listen_address_in_use_sends_nothing(gateway: Gateway, tmp_path: Path) -> None:
    csv_path = recipients(tmp_path / "r.csv", 3, "address in use")
    out = tmp_path / "out.jsonl"
    uids = uids_of(csv_path, 3)
    before = gateway.sent_counts()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_bulk(
            gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID,
            "--callback-url", f"http://127.0.0.1:{port}/dlr", "--listen", f"127.0.0.1:{port}",
        )  # fmt: skip
    assert f"--listen 127.0.0.1:{port}: cannot serve there" in flat(result.output)
    assert gateway.sent_counts() == before
    assert [gateway.accepted()[uid] for uid in uids] == [0] * 3
    assert out.read_text() == ""
    assert table(result.output, "outcome")["not yet attempted"] == 3
    assert "Interrupted" not in result.output
    assert result.exit_code == 2, result.output


# -- delivery reports while the command runs ----------------------------------------------


@pytest.fixture(scope="module")
def reporting_gateway() -> Iterator[Gateway]:
    """An emulator that reports 70 % of the messages delivered and 30 % failed."""
    with running(
        "--dlr-statuses", "Delivered:0.7,Failed:0.3", "--dlr-delay", "0.05", "--seed", "3"
    ) as emulator:
        yield emulator


def test_the_reports_of_a_run_are_taken_while_it_runs_and_written_to_each_line(
    reporting_gateway: Gateway, tmp_path: Path
) -> None:
    rows = 40
    csv_path = recipients(tmp_path / "r.csv", rows, "reports")
    out = tmp_path / "out.jsonl"
    uids = uids_of(csv_path, rows)
    port = free_port()
    callback = f"http://127.0.0.1:{port}/dlr"
    pushed = reporting_gateway.pushes("sent")
    result = run_bulk(
        reporting_gateway.url,
        csv_path,
        "--out",
        out,
        "--sender-id",
        SENDER_ID,
        "--callback-url",
        callback,
        "--listen",
        f"127.0.0.1:{port}",
        "--reports-wait",
        "60",
    )
    assert result.exit_code == 0, result.output
    lines = by_row(out)
    assert {line["kind"] for line in lines.values()} == {"sent"}
    deliveries = [line["delivery"] for line in lines.values()]
    assert set(deliveries) <= {"delivered", "failed"}
    # The seed gives this emulator's first 40 message ids both statuses.
    assert set(deliveries) == {"delivered", "failed"}
    assert table(result.output, "delivery") == {
        "delivered": deliveries.count("delivered"),
        "failed": deliveries.count("failed"),
        "pending": 0,
        "no_report": 0,
    }
    assert "no final delivery report" not in flat(result.output)
    # The journal recorded each report: the lines are written from it.
    recorded = journal_reports(tmp_path / "out.jsonl.journal")
    assert {line["uid"]: line["delivery"] for line in lines.values()} == {
        uid: delivery for uid, (_, delivery) in recorded.items()
    }
    assert [reporting_gateway.accepted()[uid] for uid in uids] == [1] * rows
    # Every message carried the job's callback URL with its token: the listener took each
    # report the emulator pushed. (The emulator counts a push once it has read the answer,
    # which may be a moment after the command, which answered it, is done.)
    token = journal_token(tmp_path / "out.jsonl.journal")
    messages = reporting_gateway.http.get(f"{reporting_gateway.url}/_emulator/messages").json()
    ours = [m for m in messages["messages"] if m["uid"] in set(uids)]
    assert len(ours) == rows
    assert {m["callback_url"] for m in ours} == {f"{callback}?haorui_token={token}"}

    def all_pushed() -> bool:
        return reporting_gateway.pushes("sent") - pushed == rows

    asyncio.run(eventually(all_pushed))
    assert reporting_gateway.pushes("failed") == 0
    # Each line has the state the emulator drew for its message (its lookup tells it too).
    for line in lines.values():
        found = reporting_gateway.http.get(
            f"{reporting_gateway.url}/api/GetDeliveryStatus",
            params={"api_id": DEMO_API_ID, "api_password": DEMO_API_PASSWORD, "uid": line["uid"]},
        ).json()
        assert found["message_id"] == line["message_id"]
        assert found["DLRStatus"].lower() == line["delivery"], (found, line)


# -- delivery reports after the run (--collect-reports) -----------------------------------


async def start_bulk(
    base_url: str, csv_path: Path, out: Path, *options: str, stderr: IO[bytes]
) -> asyncio.subprocess.Process:
    """The bulk command in a process of its own: this test posts reports to its listener."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", COMMAND, "bulk", str(csv_path), "--out", str(out),
        "--sender-id", SENDER_ID, *options,
        env=env_for(base_url),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=stderr,
    )  # fmt: skip


async def wait_listening(
    client: httpx.AsyncClient, url: str, process: asyncio.subprocess.Process
) -> None:
    """Wait until the command's receiver answers at `url` (403: a probe carries no token)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while True:
        try:
            answer = await client.get(url)
        except httpx.TransportError:
            assert process.returncode is None, "the command exited before it listened"
            assert loop.time() < deadline, f"nothing listens at {url} after {START_TIMEOUT} s"
            await asyncio.sleep(0.05)
            continue
        assert answer.status_code == 403, answer.text
        return


async def finish(process: asyncio.subprocess.Process, log: Path) -> int:
    """Wait for the command to exit (bounded: only a failing test waits long); its status."""
    try:
        return await asyncio.wait_for(process.wait(), RUN_TIMEOUT)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        errors = await asyncio.to_thread(log.read_text)
        raise AssertionError(f"the command did not exit: {errors}") from None


def wait_for_failed_pushes(gateway: Gateway, before: int, count: int) -> None:
    """Wait until the emulator has given up `count` more pushes than `before`."""

    def given_up() -> bool:
        return gateway.pushes("failed") - before >= count

    asyncio.run(eventually(given_up))
    assert gateway.pushes("failed") - before == count


@pytest.mark.slow
def test_collect_reports_takes_reports_after_the_run_and_sends_nothing(
    gateway: Gateway, tmp_path: Path
) -> None:
    rows = 6
    # Six rows with a sender id of their own, and a seventh without one: invalid in the first
    # run, and one that a run with --sender-id (as the collecting one is) would send.
    csv_path = write_csv(
        tmp_path / "r.csv",
        [["8613912345678", f"collect later {n}", SENDER_ID if n < rows else ""] for n in range(7)],
        header=("phonenumber", "textmessage", "sender_id"),
    )
    out = tmp_path / "out.jsonl"
    journal = tmp_path / "out.jsonl.journal"
    *uids, unsent = uids_of(csv_path, rows + 1)
    port = free_port()
    callback = f"http://127.0.0.1:{port}/dlr"
    failed_pushes = gateway.pushes("failed")
    # Sent with the job's callback URL, but nothing listens there yet.
    first = run_bulk(gateway.url, csv_path, "--out", out, "--callback-url", callback)
    assert first.exit_code == 2, first.output
    lines = by_row(out)
    assert lines.pop(rows + 1)["kind"] == "invalid"
    assert {line["kind"] for line in lines.values()} == {"sent"}
    assert {line["delivery"] for line in lines.values()} == {"no_report"}
    assert f"{rows} sent rows have no final delivery report yet" in flat(first.output)
    # The emulator pushes each report once and gives up when nothing listens: it never
    # pushes again, so the reports are posted here, as a gateway that retries would.
    wait_for_failed_pushes(gateway, failed_pushes, rows)
    token = journal_token(journal)
    before = gateway.sent_counts()
    states = ["Delivered", "Failed", "Delivered", "Undeliverable", "Delivered", "Delivered"]
    log = tmp_path / "collect.log"

    async def collect() -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            with log.open("wb") as stderr:
                process = await start_bulk(
                    gateway.url, csv_path, out, "--callback-url", callback,
                    "--listen", f"127.0.0.1:{port}", "--collect-reports", "--reports-wait", "50",
                    stderr=stderr,
                )  # fmt: skip
                await wait_listening(client, callback, process)
                # A pending report first: the command waits on for the final one.
                answer = await client.post(
                    callback,
                    params={"haorui_token": token},
                    json=report(uids[0], lines[1]["message_id"], "Pending"),
                )
                assert answer.status_code == 200, answer.text
                for n, state in enumerate(states, start=1):
                    answer = await client.post(
                        callback,
                        params={"haorui_token": token},
                        json=report(uids[n - 1], lines[n]["message_id"], state),
                    )
                    assert answer.status_code == 200, answer.text
                return await finish(process, log)

    # Exit 2: the invalid row is still there, not sent.
    assert asyncio.run(collect()) == 2, log.read_text()
    collected = by_row(out)
    assert collected.pop(rows + 1)["kind"] == "invalid"
    assert [collected[n]["delivery"] for n in range(1, rows + 1)] == [
        "delivered",
        "failed",
        "delivered",
        "failed",
        "delivered",
        "delivered",
    ]
    # Nothing else of the lines changed.
    assert {n: {**line, "delivery": "no_report"} for n, line in collected.items()} == lines
    recorded = journal_reports(journal)
    assert [json.loads(recorded[uid][0] or "null")["DLRStatus"] for uid in uids] == states
    assert gateway.sent_counts() == before
    assert [gateway.accepted()[uid] for uid in [*uids, unsent]] == [1] * rows + [0]
    summary = log.read_text()
    assert table(summary, "delivery") == {
        "delivered": 4,
        "failed": 2,
        "pending": 0,
        "no_report": 0,
    }
    assert "0 sent in this run" in flat(summary)


@pytest.mark.slow
def test_forged_reports_change_nothing_and_a_report_with_the_token_settles_unknown(
    gateway: Gateway, tmp_path: Path
) -> None:
    rows = 5
    csv_path = recipients(tmp_path / "r.csv", rows, "forged")
    out = tmp_path / "out.jsonl"
    journal_path = tmp_path / "out.jsonl.journal"
    uids = uids_of(csv_path, rows)
    port = free_port()
    callback = f"http://127.0.0.1:{port}/dlr"
    listen = ("--callback-url", callback, "--listen", f"127.0.0.1:{port}", "--collect-reports")
    # What a run killed right after journaling row 1 leaves: attempted, no outcome.
    with Journal(journal_path, fingerprint=digest_of(csv_path)) as journal:
        journal.record_attempts([(1, 2, uids[0])])
    failed_pushes = gateway.pushes("failed")
    first = run_bulk(
        gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID, "--callback-url", callback
    )
    assert first.exit_code == 3, first.output
    after_first = by_row(out)
    assert [after_first[n]["kind"] for n in range(1, rows + 1)] == ["unknown"] + ["sent"] * 4
    wait_for_failed_pushes(gateway, failed_pushes, rows - 1)
    token = journal_token(journal_path)
    before = gateway.sent_counts()

    async def forge() -> int:
        """A run that takes reports, fed forged ones, then stopped by a signal."""
        log = tmp_path / "forged.log"
        async with httpx.AsyncClient(timeout=10) as client:
            with log.open("wb") as stderr:
                process = await start_bulk(gateway.url, csv_path, out, *listen, stderr=stderr)
                await wait_listening(client, callback, process)
                wrong_tokens = [
                    httpx.QueryParams(),
                    httpx.QueryParams({"haorui_token": ""}),
                    httpx.QueryParams({"haorui_token": "x" + token}),
                    httpx.QueryParams({"haorui_token": token[:-1]}),
                    httpx.QueryParams([("haorui_token", token), ("haorui_token", token)]),
                ]
                for uid in uids:
                    for params in wrong_tokens:
                        forged = report(uid, "999", "Failed")
                        answer = await client.post(callback, params=params, json=forged)
                        assert answer.status_code == 403, (params, answer.text)
                # The right token, but a uid this job never sent: answered, and dropped.
                answer = await client.post(
                    callback,
                    params={"haorui_token": token},
                    json=report("never-sent-by-this-job", "998", "Delivered"),
                )
                assert answer.status_code == 200, answer.text
                process.send_signal(signal.SIGTERM)
                code = await finish(process, log)
        assert code == 130, log.read_text()
        return code

    asyncio.run(forge())
    assert by_row(out) == after_first
    assert journal_reports(journal_path) == dict.fromkeys(uids, (None, None))
    assert gateway.sent_counts() == before

    async def genuine() -> int:
        """A report with the token for the unknown row proves the gateway took it."""
        log = tmp_path / "genuine.log"
        async with httpx.AsyncClient(timeout=10) as client:
            with log.open("wb") as stderr:
                process = await start_bulk(gateway.url, csv_path, out, *listen, stderr=stderr)
                await wait_listening(client, callback, process)
                # The unknown row's first: the command ends once every sent row has a final
                # report, and the unknown row is not one of them yet.
                for n in range(1, rows + 1):
                    message_id = "777" if n == 1 else after_first[n]["message_id"]
                    answer = await client.post(
                        callback,
                        params={"haorui_token": token},
                        json=report(uids[n - 1], message_id, "Delivered"),
                    )
                    assert answer.status_code == 200, answer.text
                code = await finish(process, log)
        assert code == 0, log.read_text()
        return code

    asyncio.run(genuine())
    lines = by_row(out)
    assert {line["kind"] for line in lines.values()} == {"sent"}
    assert {line["delivery"] for line in lines.values()} == {"delivered"}
    assert lines[1]["reconciled"] is True
    assert lines[1]["message_id"] == "777"
    assert lines[1]["detail"].startswith("reconciled by report"), lines[1]
    assert {n: lines[n] for n in range(2, rows + 1)} == {
        n: {**after_first[n], "delivery": "delivered"} for n in range(2, rows + 1)
    }
    assert gateway.sent_counts() == before
    # The journal records row 1 as sent now: a plain rerun keeps it and sends nothing.
    rerun = run_bulk(gateway.url, csv_path, "--out", out, "--sender-id", SENDER_ID)
    assert rerun.exit_code == 0, rerun.output
    assert by_row(out) == lines
    assert gateway.sent_counts() == before
