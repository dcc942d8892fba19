"""Peak memory of `send_many()` against the input's length: flat, not growing with the list.

    python benchmarks/bulk_memory.py                 # 100,000 and 1,000,000 messages
    python benchmarks/bulk_memory.py --sizes 10000   # a quick look

Each measurement runs in a fresh interpreter of its own: messages are generated lazily and
sent through `send_many()` to the in-process `FakeGateway` (recording only totals, so the
fake's memory does not grow either), and the child reports its peak RSS
(`resource.getrusage(...).ru_maxrss`), its RSS before sending (imports and the sender), the
time taken and the outcomes counted. The peer, measured in the same run: the obvious
`asyncio.gather(*(sender.send_message(m) for m in messages))` over the same messages (one
task per message, created up front), at the smaller size only, since it grows with the list.

Writes `benchmarks/results/bulk_memory.json` and `bulk_memory.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
#: The target of the issue: peak RSS at most this many MB, whatever the input's length.
TARGET_MB = 150.0
#: The sizes measured by default: a tenfold step shows whether memory follows the length.
DEFAULT_SIZES = (100_000, 1_000_000)
#: Sends in flight: the SDK's default `max_concurrency`.
CONCURRENCY = 100


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MB (Linux reports kilobytes)."""
    kilobytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kilobytes / 1024


def current_rss_mb() -> float:
    """This process's resident set size now, in MB (from /proc; 0 where there is none)."""
    try:
        fields = Path("/proc/self/statm").read_text().split()
    except OSError:
        return 0.0
    return int(fields[1]) * resource.getpagesize() / (1024 * 1024)


async def measure(size: int, mode: str) -> dict[str, Any]:
    """Send `size` lazily built messages with `mode` ("send_many" or "gather")."""
    from haorui_async import SMS, AsyncSender
    from haorui_async._bulk import send_many
    from haorui_async.testing import DEMO_API_ID, DEMO_API_PASSWORD, FakeGateway

    def messages() -> Iterator[SMS]:
        for n in range(size):
            yield SMS("8613912345678", f"Your code is {n % 1_000_000:06}", uid=f"bench-{n}")

    gateway = FakeGateway(record="totals")
    counts: dict[str, int] = {}
    async with AsyncSender(
        api_id=DEMO_API_ID,
        api_password=DEMO_API_PASSWORD,
        sender_id="HAORUI",
        transport=gateway.transport,
        max_concurrency=CONCURRENCY,
    ) as sender:
        before = current_rss_mb()
        started = time.perf_counter()
        if mode == "send_many":
            async for outcome in send_many(sender, messages()):
                counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        else:
            results = await asyncio.gather(
                *(sender.send_message(m) for m in messages()), return_exceptions=True
            )
            counts["sent"] = sum(1 for r in results if not isinstance(r, BaseException))
            del results
        elapsed = time.perf_counter() - started
    return {
        "mode": mode,
        "messages": size,
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "seconds": round(elapsed, 2),
        "messages_per_second": round(size / elapsed),
        "outcomes": counts,
        "accepted_by_gateway": gateway.accepted,
    }


def run_child(size: int, mode: str) -> dict[str, Any]:
    """One measurement in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(size), "--mode", mode],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the results."""
    lines = [
        "# send_many(): peak memory against the input's length",
        "",
        "Command: `python benchmarks/bulk_memory.py` (each row: a fresh interpreter; messages",
        "generated lazily; in-process FakeGateway recording totals only; 100 sends in flight).",
        f"Target: peak RSS <= {TARGET_MB:.0f} MB and flat with the input's length.",
        "",
        "| mode | messages | RSS before sending (MB) | peak RSS (MB) | seconds | msg/s "
        "| outcomes |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['mode']} | {row['messages']:,} | {row['rss_before_mb']} | "
            f"{row['peak_rss_mb']} | {row['seconds']} | {row['messages_per_second']:,} | "
            f"{row['outcomes']} |"
        )
    many = {r["messages"]: r for r in rows if r["mode"] == "send_many"}
    gather = {r["messages"]: r for r in rows if r["mode"] == "gather"}
    lines.append("")
    if len(many) >= 2:
        small, large = min(many), max(many)
        growth = many[large]["peak_rss_mb"] / many[small]["peak_rss_mb"]
        lines.append(
            f"send_many peak RSS, {large:,} vs {small:,} messages: x{growth:.2f} "
            f"for x{large // small} the messages."
        )
    for size, peer in sorted(gather.items()):
        if size in many:
            ratio = many[size]["peak_rss_mb"] / peer["peak_rss_mb"]
            lines.append(
                f"At {size:,} messages, send_many's peak RSS is x{ratio:.2f} that of "
                "asyncio.gather over one task per message (the peer)."
            )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="send_many", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    if options.child is not None:
        print(json.dumps(asyncio.run(measure(options.child, options.mode))))
        return
    rows = []
    for size in options.sizes:
        rows.append(run_child(size, "send_many"))
        print(json.dumps(rows[-1]), flush=True)
    smallest = min(options.sizes)
    rows.append(run_child(smallest, "gather"))
    print(json.dumps(rows[-1]), flush=True)
    options.out.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # A shared machine: throughput figures move with the load, memory figures do not.
        "load_average": os.getloadavg(),
    }
    (options.out / "bulk_memory.json").write_text(
        json.dumps({"machine": machine, "target_mb": TARGET_MB, "results": rows}, indent=2) + "\n"
    )
    (options.out / "bulk_memory.md").write_text(report(rows))
    print(report(rows))


if __name__ == "__main__":
    main()
