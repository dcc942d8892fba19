"""Scale-out: `haorui-async worker` processes sharing one Redis, and the shared limiter's cost.

    python benchmarks/scale_out.py                          # 3,000 messages; 1, 2, 4 workers
    python benchmarks/scale_out.py --messages 10000 --workers 1 2 4 8 --rounds 3

Needs the `[queue]` and `[cli]` extras (arq, redis-py, click), aiolimiter, and `redis-server`
on PATH. Everything runs on this machine, on 127.0.0.1, and stops by itself:

- a `redis-server` of its own: a free loopback port, a temporary directory, the append-only
  file on (as docs/scale-out.md recommends);
- the gateway: the package's emulator (`haorui-async emulator`: uvicorn, with uvloop and
  httptools when installed), the server of every throughput figure;
- **throughput**: for each worker count W, N messages are enqueued with
  `haorui-async campaign enqueue`, and held back (the queue's key renamed) until W
  `haorui-async worker` processes (no rate limit, 100 sends in flight each) have all said
  they are ready; then released. The rate is N over the time from the release to the last
  outcome recorded in the campaign's ledger, both on the Redis server's clock. Every round
  checks that the emulator accepted each message exactly once and that
  `haorui-async campaign status` exits 0. The CPU time of the emulator, of Redis and of the
  workers over the same span, and how busy the whole machine was, say what the limit was.
  One more row runs one worker with
  `--rate-limit 1000000` (the shared limiter on every message, never waiting);
- **the limiter's cost**: microseconds per message of `RedisRateLimiter.reserve()` and
  `acquire()` (at a rate so high that no turn ever waits) against the local limiter that
  `rate_limit=N` uses (aiolimiter's `AsyncLimiter`, via `local_limiter`), in this process,
  one call at a time and 100 at once;
- **memory**: what Redis holds per message: 10,000 ledger entries written with
  `Ledger.begin` + `Ledger.finish` (an outcome record as a worker writes it), and the keys of
  a campaign of the throughput run, enqueued (the rows, arq's jobs and queue) and finished
  (the rows, the ledger, arq's results).

Each measurement is bounded (`--timeout` seconds); rounds alternate the order of the worker
counts; the figures are medians over rounds. Writes `benchmarks/results/scale_out.json` and
`scale_out.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, cast

RESULTS: Final = Path(__file__).resolve().parent / "results"
#: Messages per measurement: a few seconds per worker count on a 2-core machine.
DEFAULT_MESSAGES: Final = 3_000
DEFAULT_WORKERS: Final = (1, 2, 4)
DEFAULT_ROUNDS: Final = 3
#: Sends in flight in each worker: the `worker` command's default.
WORKER_CONCURRENCY: Final = 100
#: The rate of the row that runs the shared limiter: so high that no turn ever waits.
UNWAITED_RATE: Final = 1_000_000.0
#: The longest one measurement (enqueue, start, run, stop) may take, in seconds.
DEFAULT_TIMEOUT: Final = 180.0
#: How long a process gets to start (say it listens, or that it is ready), in seconds.
START_TIMEOUT: Final = 60.0
#: How long a process gets to stop after SIGTERM before SIGKILL, in seconds.
STOP_TIMEOUT: Final = 30.0
#: Seconds between two looks at the queue while a campaign runs.
POLL: Final = 0.02
#: Calls of each limiter measured (after a tenth as many to warm up).
LIMITER_CALLS: Final = 5_000
#: Calls in flight in the concurrent limiter measurement: the worker's default concurrency.
LIMITER_CONCURRENCY: Final = 100
#: Ledger entries written for the memory figure.
LEDGER_ENTRIES: Final = 10_000
#: CPU share of one core above which a process counts as the limit of a figure.
SATURATED: Final = 0.9

ACCOUNT_PHONE: Final = "8613912345678"
SENDER_ID: Final = "HAORUI"
QUEUE: Final = "haorui_async:queue"
HELD_QUEUE: Final = "haorui_async:benchmark-held-queue"
LEDGER_PREFIX: Final = "haorui_async:campaign"
STATS_PATH: Final = "/_emulator/stats"


# -- processes ------------------------------------------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGTERM when this benchmark dies, even by SIGKILL."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(command: Sequence[str], *, log: Path, env: dict[str, str] | None = None) -> Any:
    """Start `command` with its stdout and stderr in `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def stop(process: Any, sig: int = signal.SIGTERM) -> None:
    """`sig`, then SIGKILL if the process has not exited within `STOP_TIMEOUT` seconds."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_line(process: Any, log: Path, text: str, timeout: float = START_TIMEOUT) -> str:
    """The first line of `log` holding `text`, once the process has written it."""
    deadline = time.monotonic() + timeout
    while True:
        for line in log.read_text(errors="replace").splitlines():
            if text in line:
                return line
        if process.poll() is not None:
            raise RuntimeError(f"{log.name}: exited with {process.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{log.name}: no {text!r} within {timeout}s")
        time.sleep(0.02)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cli() -> list[str]:
    """The `haorui-async` command of this interpreter's environment."""
    found = shutil.which("haorui-async", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("haorui-async is not installed here: pip install -e '.[cli,queue,fast]'")
    return [found]


class RedisServer:
    """A `redis-server` on a free loopback port, its data in `directory`."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not on PATH (Debian: apt-get install redis-server)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Any = None

    def start(self) -> None:
        log = self.directory / "redis.log"
        self.process = spawn(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--save", "",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            log=log,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {log.read_text()}")
            time.sleep(0.02)

    def version(self) -> str:
        done = subprocess.run([self.binary, "--version"], capture_output=True, text=True)
        return done.stdout.strip()


class Emulator:
    """`haorui-async emulator` on a free loopback port: the gateway of every figure."""

    def __init__(self, directory: Path) -> None:
        self.log = directory / "emulator.log"
        self.process: Any = None
        self.url = ""

    def start(self) -> None:
        self.process = spawn([*cli(), "emulator", "--record", "uids"], log=self.log)
        line = wait_for_line(self.process, self.log, "listening on ")
        self.url = line.split("listening on ", 1)[1].strip()

    def stats(self) -> dict[str, Any]:
        import httpx

        found: dict[str, Any] = httpx.get(self.url + STATS_PATH, timeout=10).json()
        return found


# -- throughput -----------------------------------------------------------------------------


def write_recipients(path: Path, count: int, tag: str) -> None:
    """`count` rows; `tag` makes the file (so its uids) differ from every other round's."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("phonenumber,textmessage\n")
        for n in range(count):
            out.write(f"{ACCOUNT_PHONE},Scale-out {tag} message {n}\n")


def machine_busy() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, every process included (Linux)."""
    try:
        fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def keys_memory(client: Any, pattern: str) -> int:
    """Bytes (`MEMORY USAGE`) of every key matching `pattern`."""
    keys = list(client.scan_iter(match=pattern, count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
    return sum(int(n or 0) for n in pipe.execute())


def campaign_memory(client: Any, name: str, messages: int, *, queued: bool) -> dict[str, int]:
    """Bytes per message a campaign holds in Redis, by part (`MEMORY USAGE`): enqueued and
    not run yet (`queued`: the rows, arq's jobs and its queue), or finished (the rows, the
    ledger, arq's results)."""
    prefix = f"{LEDGER_PREFIX}:{name}"
    parts = {"rows": keys_memory(client, f"{prefix}:rows")}
    if queued:
        parts["arq_jobs"] = keys_memory(client, f"arq:job:haorui_async:{name}:*")
        parts["arq_queue"] = keys_memory(client, HELD_QUEUE)
    else:
        parts["ledger"] = keys_memory(client, f"{prefix}:ledger")
        parts["arq_results"] = keys_memory(client, f"arq:result:haorui_async:{name}:*")
    per_message = {part: round(size / messages) for part, size in parts.items()}
    per_message["total"] = round(sum(parts.values()) / messages)
    return per_message


def server_time(client: Any) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1_000_000


def measure_workers(
    *,
    redis_server: RedisServer,
    emulator: Emulator,
    workers: int,
    messages: int,
    tag: str,
    directory: Path,
    timeout: float,
    rate_limit: float | None = None,
) -> dict[str, Any]:
    """One campaign of `messages` run by `workers` worker processes (see the module)."""
    import redis

    started = time.monotonic()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    accepted_before = emulator.stats()
    name = f"bench-{tag}"
    recipients = directory / f"{name}.csv"
    write_recipients(recipients, messages, tag)
    env = {
        **os.environ,
        "HAORUI_API_ID": "API43404236",
        "HAORUI_API_PASSWORD": "demo-password",
        "HAORUI_BASE_URL": emulator.url,
        "HAORUI_REDIS_URL": redis_server.url,
    }
    enqueue_started = time.perf_counter()
    enqueued = subprocess.run(
        [*cli(), "campaign", "enqueue", str(recipients), "--campaign", name,
         "--sender-id", SENDER_ID],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    enqueue_seconds = time.perf_counter() - enqueue_started
    if enqueued.returncode != 0:
        raise RuntimeError(f"campaign enqueue exited {enqueued.returncode}: {enqueued.stderr}")
    client.rename(QUEUE, HELD_QUEUE)  # held back until every worker is ready
    queued_memory = campaign_memory(client, name, messages, queued=True)
    command = [*cli(), "worker", "--concurrency", str(WORKER_CONCURRENCY)]
    if rate_limit is not None:
        command += ["--rate-limit", str(rate_limit)]
    logs = [directory / f"{name}-worker-{n}.log" for n in range(workers)]
    processes = [spawn(command, log=log, env=env) for log in logs]
    result: dict[str, Any] = {"workers": workers, "messages": messages, "rate_limit": rate_limit}
    try:
        for process, log in zip(processes, logs, strict=True):
            wait_for_line(process, log, "worker ready")
        pids = {
            "emulator": [emulator.process.pid],
            "redis": [redis_server.process.pid],
            "workers": [p.pid for p in processes],
        }
        cpu_before = {k: sum(cpu_seconds(pid) for pid in v) for k, v in pids.items()}
        busy_before = machine_busy()
        released = server_time(client)
        client.rename(HELD_QUEUE, QUEUE)
        while client.zcard(QUEUE) and time.monotonic() - started < timeout:
            time.sleep(POLL)
        cpu_after = {k: sum(cpu_seconds(pid) for pid in v) for k, v in pids.items()}
        busy_after = machine_busy()
        finished = server_time(client)
        entries = [
            json.loads(text)
            for text in cast(
                "dict[bytes, bytes]", client.hgetall(f"{LEDGER_PREFIX}:{name}:ledger")
            ).values()
        ]
    finally:
        for process in processes:
            stop(process)
    done = [e for e in entries if e.get("state") == "done"]
    sent = sum(1 for e in done if e.get("kind") == "sent")
    last = max((float(e["ended_at"]) for e in done if e.get("ended_at")), default=finished)
    span = max(last - released, 1e-9)
    status = subprocess.run(
        [*cli(), "campaign", "status", name],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    accepted_after = emulator.stats()
    memory = campaign_memory(client, name, messages, queued=False)
    client.close()
    ticks = busy_after[1] - busy_before[1]
    wall = finished - released
    result.update(
        {
            "complete": sent == messages,
            "sent": sent,
            "seconds": round(span, 3),
            "messages_per_second": round(sent / span, 1),
            "enqueue_seconds": round(enqueue_seconds, 3),
            "enqueue_rows_per_second": round(messages / enqueue_seconds, 1),
            "status_exit": status.returncode,
            "accepted": accepted_after["accepted"] - accepted_before["accepted"],
            "duplicates": accepted_after["duplicates"] - accepted_before["duplicates"],
            # CPU over the run, as a share of one core (the workers: all of them together).
            "cpu_share": {
                k: round((cpu_after[k] - cpu_before[k]) / max(wall, 1e-9), 2) for k in cpu_after
            },
            # The whole machine, every process included (a shared machine's other load too).
            "machine_busy": round((busy_after[0] - busy_before[0]) / ticks, 2) if ticks else None,
            "redis_bytes_per_message": {"queued": queued_memory, "finished": memory},
        }
    )
    return result


# -- the limiter's cost ---------------------------------------------------------------------


async def time_calls(call: Callable[[], Awaitable[object]], calls: int, concurrency: int) -> float:
    """Microseconds per call of `call`, `concurrency` calls in flight at once."""
    for _ in range(max(1, calls // 10)):
        await call()

    async def loop(count: int) -> None:
        for _ in range(count):
            await call()

    share, extra = divmod(calls, concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(loop(share + (n < extra)) for n in range(concurrency)))
    return (time.perf_counter() - started) * 1_000_000 / calls


async def measure_limiters(url: str, calls: int) -> dict[str, dict[str, float]]:
    """µs per message of each limiter, one call at a time and `LIMITER_CONCURRENCY` at once."""
    from redis.asyncio import Redis

    from haorui_async._admission import local_limiter
    from haorui_async.redis import RedisRateLimiter

    client = Redis.from_url(url)
    try:
        await client.flushall()
        shared = RedisRateLimiter(client, UNWAITED_RATE, key="haorui_async:rate:benchmark")
        local = local_limiter(UNWAITED_RATE)
        candidates: dict[str, Callable[[], Awaitable[object]]] = {
            "aiolimiter AsyncLimiter.acquire (local)": local.acquire,
            "RedisRateLimiter.reserve": shared.reserve,
            "RedisRateLimiter.acquire": shared.acquire,
        }
        found: dict[str, dict[str, float]] = {}
        for label, call in candidates.items():
            found[label] = {
                "sequential_us": round(await time_calls(call, calls, 1), 2),
                "concurrent_us": round(await time_calls(call, calls, LIMITER_CONCURRENCY), 2),
            }
        turn = await shared.reserve()
        if turn is None or turn.wait > 0:
            raise RuntimeError(f"a turn of the shared limiter waited: {turn}")
    finally:
        await client.aclose()
    return found


# -- memory ---------------------------------------------------------------------------------


async def measure_ledger_memory(url: str, entries: int) -> dict[str, Any]:
    """Redis memory of `entries` ledger entries, each begun then finished as a worker does."""
    from redis.asyncio import Redis

    from haorui_async import SMS, SendResult
    from haorui_async._outcome import Outcome
    from haorui_async.cli._records import outcome_record
    from haorui_async.redis._ledger import Ledger

    client = Redis.from_url(url)
    try:
        await client.flushall()
        before = int((await client.info("memory"))["used_memory"])
        ledger = Ledger(client, "memory")
        fingerprint = "2cd8a33cde056f57"
        for row in range(1, entries + 1):
            uid = f"{fingerprint}-{row}"
            sms = SMS(ACCOUNT_PHONE, f"Your code is {row:06}", uid=uid, sender_id=SENDER_ID)
            answer = {"message_id": f"2026083116353{row:07}", "status": "S", "uid": uid}
            result = SendResult(
                answer["message_id"], "S", "", uid, body=answer, message=sms, attempts=1
            )
            record = outcome_record(row, row + 1, Outcome(row - 1, sms, result=result))
            await ledger.begin(uid, row, row + 1)
            await ledger.finish(uid, "sent", record)
        after = int((await client.info("memory"))["used_memory"])
        key_bytes = int(await client.memory_usage(ledger.entries_key) or 0)
        sample = await client.hget(ledger.entries_key, f"{fingerprint}-1")
        await client.flushall()
    finally:
        await client.aclose()
    return {
        "entries": entries,
        "entry_json_bytes": len(sample or b""),
        "used_memory_bytes_per_entry": round((after - before) / entries),
        "memory_usage_bytes_per_entry": round(key_bytes / entries),
    }


# -- the report -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for name in ("haorui-async", "arq", "redis", "hiredis", "aiolimiter", "uvicorn", "uvloop",
                 "httptools", "httpx"):  # fmt: skip
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_before": os.getloadavg(),
        "versions": versions,
        "emulator_event_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "emulator_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
    }


def label(row: dict[str, Any]) -> str:
    workers = row["workers"]
    text = f"{workers} worker{'s' if workers > 1 else ''}"
    if row["rate_limit"] is not None:
        text += f", --rate-limit {row['rate_limit']:,.0f}"
    return text


def medians(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration: the median of its rounds."""
    grouped: dict[tuple[int, float | None], list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((row["workers"], row["rate_limit"]), []).append(row)
    merged = []
    # The rows without a rate limit first, by worker count; the limited row last.
    order = sorted(grouped, key=lambda key: (key[1] is not None, key[0]))
    for workers, rate_limit in order:
        group = grouped[(workers, rate_limit)]
        cpu = {
            k: round(statistics.median(r["cpu_share"][k] for r in group), 2)
            for k in group[0]["cpu_share"]
        }
        merged.append(
            {
                "workers": workers,
                "rate_limit": rate_limit,
                "rounds": len(group),
                "complete": all(r["complete"] for r in group),
                "exactly_once": all(
                    r["accepted"] == r["messages"] and r["duplicates"] == 0 for r in group
                ),
                "status_exit": sorted({r["status_exit"] for r in group}),
                "messages_per_second": round(
                    statistics.median(r["messages_per_second"] for r in group)
                ),
                "spread": [
                    round(min(r["messages_per_second"] for r in group)),
                    round(max(r["messages_per_second"] for r in group)),
                ],
                "enqueue_rows_per_second": round(
                    statistics.median(r["enqueue_rows_per_second"] for r in group)
                ),
                "cpu_share": cpu,
                "machine_busy": statistics.median(r["machine_busy"] or 0.0 for r in group),
                # The same campaign leaves the same keys whoever ran it: the first round's.
                "redis_bytes_per_message": group[0]["redis_bytes_per_message"],
            }
        )
    return merged


def report(summary: dict[str, Any]) -> str:
    """The markdown page of the results."""
    info = summary["machine"]
    rows = summary["throughput"]
    base = next((r for r in rows if r["workers"] == 1 and r["rate_limit"] is None), rows[0])
    cores = info["cores"] or 1
    lines = [
        "# Scale-out: worker processes on one Redis, and the shared limiter's cost",
        "",
        f"Command: `python benchmarks/scale_out.py --messages {summary['messages']} "
        f"--rounds {summary['rounds']}`. Machine: {cores} cores ({info['cpu']}), Python "
        f"{info['python']}, {summary['redis_version'].split(' sha=')[0]}, arq "
        f"{info['versions']['arq']}, redis-py {info['versions']['redis']}; load average "
        f"{info['load_average_before'][0]:.1f} before the run, "
        f"{info['load_average_after'][0]:.1f} after. Everything runs on this machine, on "
        "127.0.0.1. The gateway is the package's emulator (`haorui-async emulator`, "
        f"{info['emulator_event_loop']} + {info['emulator_http']}: one process, so one core "
        "at most); Redis runs with the append-only file on.",
        "",
        "## Throughput: `haorui-async worker` processes without a rate limit",
        "",
        f"{summary['messages']:,} messages per measurement, {WORKER_CONCURRENCY} sends in "
        "flight per worker, timed from the release of the queue (every worker ready) to the "
        "last outcome in the ledger. Median (min-max) over rounds. CPU: a share of one core "
        "over the run (the workers: all of them together); machine: how busy all its cores "
        "were, every process included.",
        "",
        "| workers | msg/s | vs 1 worker | CPU: emulator | CPU: workers | CPU: Redis "
        "| machine | exactly once | status exit |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        cpu = row["cpu_share"]
        ratio = row["messages_per_second"] / base["messages_per_second"]
        once = "yes" if row["exactly_once"] and row["complete"] else "NO"
        lines.append(
            f"| {label(row)} | {row['messages_per_second']:,} "
            f"({row['spread'][0]:,}-{row['spread'][1]:,}) | x{ratio:.2f} | "
            f"{cpu['emulator']:.0%} | {cpu['workers']:.0%} | {cpu['redis']:.0%} | "
            f"{row['machine_busy']:.0%} | {once} | {', '.join(map(str, row['status_exit']))} |"
        )
    limited = [r for r in rows if r["cpu_share"]["emulator"] >= SATURATED]
    saturated = [r for r in rows if r["machine_busy"] >= SATURATED]
    lines.append("")
    if limited:
        lines.append(
            f"The emulator used {SATURATED:.0%} of a core or more in: "
            f"{', '.join(label(r) for r in limited)}: there the server was the limit."
        )
    else:
        peak = max(r["cpu_share"]["emulator"] for r in rows)
        lines.append(
            f"The emulator used {peak:.0%} of a core at most: the server was not the limit."
        )
    if saturated:
        lines.append(
            f"The machine's {cores} cores were {SATURATED:.0%} busy or more in: "
            f"{', '.join(label(r) for r in saturated)}: the workers, Redis and the emulator "
            "(and anything else running) shared too few cores, so those figures show this "
            "machine's limit, not arq's or Redis's."
        )
    unlimited = [r for r in rows if r["rate_limit"] is None]
    if len(unlimited) > 1:
        lines.append(
            "Where the spreads (min-max over rounds) of two rows overlap, their difference is "
            "within this run's noise."
        )
    shared = next((r for r in rows if r["rate_limit"] is not None), None)
    if shared is not None:
        # Overlapping spreads, or faster with the limiter than without: no cost measurable.
        noise = shared["messages_per_second"] >= base["messages_per_second"] or (
            shared["spread"][0] <= base["spread"][1] and base["spread"][0] <= shared["spread"][1]
        )
        lines.append(
            "The last row is one worker with the shared limiter (`RedisRateLimiter`) on every "
            "message, at a rate so high that no turn waits: its ratio is the limiter's cost "
            "inside a worker" + (", here within the noise." if noise else ".")
        )
    lines += [
        f"`campaign enqueue` queued {base['enqueue_rows_per_second']:,} rows/s (median): one "
        "row at a time, a few Redis round trips each.",
        "",
        "## The limiter's cost per message",
        "",
        f"{summary['limiter_calls']:,} calls each, in this process (asyncio), against the same "
        f"Redis on loopback, at {UNWAITED_RATE:,.0f} requests/s so that no turn waits. The "
        "local limiter is what `rate_limit=N` uses.",
        "",
        "| limiter | one at a time (µs/msg) | vs local | "
        f"{LIMITER_CONCURRENCY} at once (µs/msg) | vs local |",
        "|---|---:|---:|---:|---:|",
    ]
    limiters = summary["limiters"]
    local = limiters["aiolimiter AsyncLimiter.acquire (local)"]
    for name, cost in limiters.items():
        lines.append(
            f"| {name} | {cost['sequential_us']:,.1f} | "
            f"x{cost['sequential_us'] / local['sequential_us']:,.0f} | "
            f"{cost['concurrent_us']:,.1f} | "
            f"x{cost['concurrent_us'] / local['concurrent_us']:,.0f} |"
        )
    reserve = limiters["RedisRateLimiter.reserve"]
    per_message = 1_000_000 / base["messages_per_second"]
    memory = summary["ledger_memory"]
    queued = base["redis_bytes_per_message"]["queued"]
    finished = base["redis_bytes_per_message"]["finished"]
    lines += [
        "",
        f"One call at a time, `reserve()` is a Redis round trip and the script: "
        f"{reserve['sequential_us']:,.0f} µs. One worker takes {per_message:,.0f} µs per "
        "message here (1 / its msg/s).",
        "",
        "## Redis memory per message",
        "",
        f"- The ledger alone: {memory['entries']:,} entries written with `Ledger.begin` + "
        f"`Ledger.finish` (a `sent` outcome, {memory['entry_json_bytes']} bytes of JSON each) "
        f"take {memory['memory_usage_bytes_per_entry']:,} bytes per entry (`MEMORY USAGE` of "
        f"the hash); `INFO memory` grew by {memory['used_memory_bytes_per_entry']:,} bytes "
        "per entry.",
        f"- A campaign of {summary['messages']:,} messages (`MEMORY USAGE` of its keys), "
        f"enqueued: {queued['total']:,} bytes per message (arq's jobs {queued['arq_jobs']:,}, "
        f"its queue {queued['arq_queue']:,}, the rows {queued['rows']:,}); finished: "
        f"{finished['total']:,} bytes per message (the ledger {finished['ledger']:,}, arq's "
        f"results {finished['arq_results']:,}, kept 7 days, the rows {finished['rows']:,}).",
        "",
    ]
    return "\n".join(lines)


# -- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def services(directory: Path) -> Iterator[tuple[RedisServer, Emulator]]:
    redis_server = RedisServer(directory)
    emulator = Emulator(directory)
    try:
        redis_server.start()
        emulator.start()
        yield redis_server, emulator
    finally:
        for process in (emulator.process, redis_server.process):
            if process is not None:
                stop(process)


def _raise_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # so the `finally` blocks stop the processes


def run(options: argparse.Namespace) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "machine": machine(),
        "messages": options.messages,
        "rounds": options.rounds,
        "limiter_calls": options.limiter_calls,
    }
    with tempfile.TemporaryDirectory(prefix="haorui-scale-out-") as tmp:
        directory = Path(tmp)
        with services(directory) as (redis_server, emulator):
            summary["redis_version"] = redis_server.version()
            summary["limiters"] = asyncio.run(
                measure_limiters(redis_server.url, options.limiter_calls)
            )
            print(json.dumps({"limiters": summary["limiters"]}), flush=True)
            summary["ledger_memory"] = asyncio.run(
                measure_ledger_memory(redis_server.url, LEDGER_ENTRIES)
            )
            print(json.dumps({"ledger_memory": summary["ledger_memory"]}), flush=True)
            raw: list[dict[str, Any]] = []
            plan: list[tuple[int, float | None]] = [(w, None) for w in options.workers]
            plan.append((1, UNWAITED_RATE))
            for round_ in range(options.rounds):
                order = plan if round_ % 2 == 0 else list(reversed(plan))
                for workers, rate_limit in order:
                    tag = f"r{round_}-w{workers}{'-limited' if rate_limit else ''}"
                    row = measure_workers(
                        redis_server=redis_server,
                        emulator=emulator,
                        workers=workers,
                        messages=options.messages,
                        tag=tag,
                        directory=directory,
                        timeout=options.timeout,
                        rate_limit=rate_limit,
                    )
                    row["round"] = round_
                    raw.append(row)
                    print(json.dumps(row), flush=True)
            summary["throughput"] = medians(raw)
            summary["raw"] = raw
    summary["machine"]["load_average_after"] = os.getloadavg()
    return summary


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--workers", type=int, nargs="+", default=list(DEFAULT_WORKERS))
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--limiter-calls", type=int, default=LIMITER_CALLS)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--report-from",
        type=Path,
        default=None,
        metavar="JSON",
        help="measure nothing: write the markdown of an earlier run's scale_out.json",
    )
    options = parser.parse_args(argv)
    if options.report_from is not None:
        text = report(json.loads(options.report_from.read_text()))
        (options.out / "scale_out.md").write_text(text)
        print(text)
        return
    if options.messages < 1 or options.rounds < 1 or min(options.workers) < 1:
        parser.error("--messages, --rounds and --workers must be at least 1")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    summary = run(options)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "scale_out.json").write_text(json.dumps(summary, indent=2) + "\n")
    text = report(summary)
    (options.out / "scale_out.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
