"""Delivery reports for a bulk job: the job's tracker on its journal, and the listener.

`JournalTracker` is the `DeliveryTracker` of one bulk job: its secret token is kept in the
job's journal (so reports that arrive after a run, or during a later one, still match), a
report is applied only to a uid the job attempted, and every report applied is recorded in
the journal, where reconciliation and the outcomes file read it. `serve_reports()` serves a
`DeliveryReportReceiver` on it while the command runs (`--listen HOST:PORT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import click

from .._delivery import DeliveryReport, DeliveryState
from .._journal import Journal
from .._receiver import DeliveryReportReceiver
from .._reconcile import DeliveryTracker

__all__ = [
    "DELIVERY_STATES",
    "NO_REPORT",
    "JournalTracker",
    "delivery_of",
    "listen_address",
    "serve_reports",
]

#: A sent row without any report yet.
NO_REPORT: Final = "no_report"
#: The delivery states a row of the outcomes file can show, in the summary's order.
DELIVERY_STATES: Final = ("delivered", "failed", "pending", NO_REPORT)
#: The states after which no report changes a row's delivery state.
FINAL_STATES: Final = tuple(state.value for state in DeliveryState if state.final)
#: Seconds an idle connection from the gateway is kept open.
KEEP_ALIVE: Final = 5.0


def delivery_of(state: str | None) -> str:
    """What the outcomes file shows for a row whose latest report is in `state`: a status
    word this SDK does not know counts as pending (a later report may still settle it)."""
    if state is None:
        return NO_REPORT
    if state in ("delivered", "failed"):
        return state
    return "pending"


class JournalTracker(DeliveryTracker):
    """The tracker of one bulk job, kept in its journal (see the module's docstring).

    Args:
        journal: the job's journal.
        callback_base: where the job's receiver is reached (`--callback-url`), or None: the
            messages then carry no callback URL of the job's, but reports that reach a
            receiver with the job's token are still applied.
    """

    def __init__(self, journal: Journal, callback_base: str | None) -> None:
        super().__init__(callback_base, token=journal.report_token())
        self.journal = journal
        #: Reports applied while this tracker ran.
        self.applied = 0

    def sent(self, uid: str) -> None:
        """Nothing to do: the journal recorded the row before its request could go out."""

    def knows(self, uid: str) -> bool:
        return self.journal.has_uid(uid)

    def record(self, report: DeliveryReport) -> bool:
        if report.uid is None or not self.journal.has_uid(report.uid):
            return False
        held = self.report_for(report.uid)
        if held is not None and held.final and not report.final:
            # A report that comes late (the gateway retried it) never undoes a final state.
            return True
        self.journal.record_report(report.uid, report.raw, delivery=report.state.value)
        self.applied += 1
        return True

    def report_for(self, uid: str) -> DeliveryReport | None:
        fields = self.journal.report_for(uid)
        return None if fields is None else report_from(fields)


def report_from(fields: Mapping[str, Any]) -> DeliveryReport | None:
    """The report recorded with `fields`, or None if they no longer read as one."""
    try:
        return DeliveryReport.from_json(fields)
    except ValueError:
        return None


def listen_address(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, int] | None:
    """The `--listen` option's callback: `HOST:PORT` (`[::1]:8080` for IPv6) as a pair."""
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise click.BadParameter(f"expected HOST:PORT (e.g. 127.0.0.1:8080), got {value!r}")
    return host, int(port)


@contextlib.asynccontextmanager
async def serve_reports(tracker: JournalTracker, host: str, port: int) -> AsyncIterator[None]:
    """Serve a `DeliveryReportReceiver` for `tracker` on `host:port` while the block runs.

    Raises:
        OSError: the address cannot be bound.
    """
    from ..testing._listener import listening_socket, uvicorn_server

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = listening_socket(family, host, port)
    receiver = DeliveryReportReceiver(tracker=tracker)
    server = uvicorn_server(receiver, KEEP_ALIVE)
    main_loop: asyncio.Task[None] | None = None
    try:
        await server.startup(sockets=[sock])
        main_loop = asyncio.ensure_future(server.main_loop())
        yield
    finally:
        server.should_exit = True
        if main_loop is not None:
            await main_loop
            await server.shutdown(sockets=[sock])
        await receiver.aclose()
        sock.close()
