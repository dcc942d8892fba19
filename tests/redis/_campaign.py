"""What the campaign tests run and ask: the `campaign` and `worker` commands as real
subprocesses, the emulator's counts, and the campaign's ledger read straight from Redis."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any, Final

import httpx
import redis

from haorui_async.redis._ledger import DEFAULT_PREFIX

from ..bulk._emulator import env_for

COMMAND: Final = (sys.executable, "-c", "from haorui_async.cli import main; main()")
#: What a worker prints on stderr once it runs jobs.
READY: Final = "worker ready"
#: Seconds a command or a worker gets to start: importing the command line and arq takes
#: seconds on a busy 2-core machine.
START_TIMEOUT: Final = 60.0
#: Seconds a command that does not wait (enqueue, status without --wait) may take.
COMMAND_TIMEOUT: Final = 120.0
#: How much of a worker's log a failure shows (its last traceback).
LOG_TAIL: Final = 2500
SENDER_ID: Final = "HAORUI"
PHONE: Final = "8613912345678"


def write_csv(path: Path, rows: Iterable[Sequence[str]], header: Sequence[str] = ()) -> Path:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header or ("phonenumber", "textmessage"))
        writer.writerows(rows)
    return path


def messages_csv(path: Path, count: int, tag: str) -> Path:
    """A recipients file of `count` messages without uids (they get generated ones)."""
    return write_csv(path, ((PHONE, f"{tag} {n}") for n in range(count)))


def campaign_env(base_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a campaign command: the demo account, the emulator, the Redis."""
    env = env_for(base_url)
    env["HAORUI_REDIS_URL"] = redis_url
    return env


def run_command(
    env: dict[str, str], *arguments: str, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `haorui-async ARGUMENTS...` to its end (killed and waited for if it overruns)."""
    return subprocess.run(
        [*COMMAND, *arguments],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def enqueue(
    env: dict[str, str], path: Path, campaign: str, *options: str
) -> subprocess.CompletedProcess[str]:
    return run_command(
        env, "campaign", "enqueue", str(path), "--campaign", campaign, "--sender-id", SENDER_ID,
        *options,
    )  # fmt: skip


def status(
    env: dict[str, str], campaign: str, *options: str, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return run_command(env, "campaign", "status", campaign, *options, timeout=timeout)


def status_while_working(
    env: dict[str, str],
    campaign: str,
    workers: Sequence[WorkerProcess],
    *options: str,
    wait: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """`campaign status CAMPAIGN --wait WAIT OPTIONS...`, failing at once if one of
    `workers` exits meanwhile (its log in the message), instead of waiting out WAIT."""
    process = subprocess.Popen(
        [*COMMAND, "campaign", "status", campaign, "--wait", str(wait), *options],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + wait + COMMAND_TIMEOUT
        while True:
            try:
                stdout, stderr = process.communicate(timeout=0.25)
            except subprocess.TimeoutExpired:
                pass
            else:
                return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            for worker in workers:
                if worker.exited():
                    raise AssertionError(
                        f"worker {worker.pid} exited while the campaign ran; its log ends:\n"
                        + worker.output()[-LOG_TAIL:]
                    )
            if time.monotonic() > deadline:
                raise AssertionError(f"campaign status --wait {wait:g} did not end")
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def status_counts(stdout: str) -> dict[str, int]:
    """The counts `campaign status` prints, one `STATE COUNT` line each."""
    counts: dict[str, int] = {}
    for line in stdout.splitlines():
        state, _, count = line.strip().rpartition(" ")
        if state.strip() and count.replace(",", "").isdigit():
            counts[state.strip()] = int(count.replace(",", ""))
    return counts


def out_lines(path: Path) -> dict[int, dict[str, Any]]:
    """The lines `campaign status --out` wrote, by row (each row once)."""
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    by_row = {line["row"]: line for line in lines}
    assert len(by_row) == len(lines), "a row has two lines"
    return by_row


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, *, every: float = 0.05
) -> None:
    """Return once `condition()` holds; fail after `timeout` seconds, naming `what`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not so after {timeout:g} s")
        time.sleep(every)


class WorkerProcess:
    """`haorui-async worker OPTIONS...` in a subprocess, its stderr in a file.

    A file, not a pipe: nobody reads a pipe while the test waits, and a full one would
    block the worker. `stop()` kills it if it still runs and waits for it: call it in a
    `finally`.
    """

    def __init__(self, env: dict[str, str], log: Path, *options: str, nice: int = 0) -> None:
        self.env = env
        self.log = log
        self.options = options
        self.nice = nice
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [*COMMAND, "worker", *self.options],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            preexec_fn=(lambda: os.nice(self.nice)) if self.nice else None,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the worker exited with {self.process.returncode}:\n{self.output()}"
                )
            return READY in self.output()

        wait_until(ready, timeout, f"worker {self.pid} ready")

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def kill(self) -> int:
        """SIGKILL (what `kill -9` does), then wait; its exit status."""
        assert self.process is not None
        self.process.kill()
        return self.process.wait()

    def stop(self) -> None:
        """Kill it (SIGKILL) unless it has exited, and wait for it; idempotent."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_workers(
    env: dict[str, str], directory: Path, count: int, *options: str, first: int = 0, nice: int = 0
) -> list[WorkerProcess]:
    """Start `count` workers (at the scheduling priority `nice` lower than the test's), then
    wait until every one is ready; the caller stops them (in a `finally`, also when this
    raises: the list is filled as they start)."""
    started: list[WorkerProcess] = []
    try:
        for n in range(first, first + count):
            log = directory / f"worker-{n}.log"
            started.append(WorkerProcess(env, log, *options, nice=nice).start())
        for worker in started:
            worker.wait_ready()
    except BaseException:
        stop_all(started)
        raise
    return started


def stop_all(workers: Iterable[WorkerProcess]) -> None:
    for worker in workers:
        worker.stop()


def drain(workers: Iterable[WorkerProcess], timeout: float = 60.0) -> None:
    """SIGTERM every worker (each finishes its sends in flight), and wait for each; each
    exits 0."""
    workers = list(workers)
    for worker in workers:
        if worker.process is not None and worker.process.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        code = worker.wait(timeout)
        assert code == 0, worker.output()


# -- the emulator ------------------------------------------------------------------------


def emulator_stats(base_url: str) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{base_url}/_emulator/stats", timeout=30).json()
    return stats


def accepted_count(base_url: str) -> int:
    return int(emulator_stats(base_url)["accepted"])


def acceptances(base_url: str) -> list[dict[str, Any]]:
    """Every message the emulator accepted (uid, accepted_at, ...), in order."""
    page = httpx.get(f"{base_url}/_emulator/messages", timeout=60).json()
    messages: list[dict[str, Any]] = page["messages"]
    return messages


def check_each_accepted_once(base_url: str, uids: Sequence[str]) -> None:
    """The emulator accepted every uid of `uids` exactly once, and nothing else."""
    counts = Counter(message["uid"] for message in acceptances(base_url))
    missing = [uid for uid in uids if counts[uid] == 0]
    doubled = {uid: n for uid, n in counts.items() if n > 1}
    strangers = set(counts) - set(uids)
    assert not missing, f"{len(missing)} never accepted, e.g. {missing[:5]}"
    assert not doubled, f"{len(doubled)} accepted more than once, e.g. {list(doubled.items())[:5]}"
    assert not strangers, f"accepted but not in the campaign: {sorted(strangers)[:5]}"
    assert emulator_stats(base_url)["duplicates"] == 0


def most_in_any_window(times: Sequence[float], window: float) -> int:
    """The most of `times` in any window [t, t + window) (sliding over the times)."""
    ordered = sorted(times)
    most, low = 0, 0
    for high, moment in enumerate(ordered):
        while ordered[low] <= moment - window:
            low += 1
        most = max(most, high - low + 1)
    return most


def per_second(times: Sequence[float]) -> list[int]:
    """How many of `times` fall in each second from the first."""
    if not times:
        return []
    first = min(times)
    counts = Counter(int(moment - first) for moment in times)
    return [counts[n] for n in range(max(counts) + 1)]


# -- the ledger, straight from Redis -------------------------------------------------------


def ledger_entries(redis_url: str, campaign: str) -> dict[str, dict[str, Any]]:
    """The campaign's ledger: uid -> entry (the JSON the workers wrote)."""
    client = redis.Redis.from_url(redis_url)
    try:
        found: dict[bytes, bytes] = client.hgetall(f"{DEFAULT_PREFIX}:{campaign}:ledger")  # type: ignore[assignment]
    finally:
        client.close()
    return {uid.decode(): json.loads(text) for uid, text in found.items()}


def campaign_uids(redis_url: str, campaign: str) -> list[str]:
    """The uids of the messages enqueued under `campaign`, by row (what `enqueue` recorded
    in its rows; a row that is not a message has none)."""
    client = redis.Redis.from_url(redis_url)
    try:
        found: dict[bytes, bytes] = client.hgetall(f"{DEFAULT_PREFIX}:{campaign}:rows")  # type: ignore[assignment]
    finally:
        client.close()
    by_row = {int(row): uid.decode() for row, uid in found.items()}
    return [by_row[row] for row in sorted(by_row) if by_row[row]]


def states(entries: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(entry["state"] for entry in entries.values())
