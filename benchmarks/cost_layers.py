"""Where a send's CPU goes: instructions per message, layer by layer, against the floor.

    python benchmarks/cost_layers.py                 # about 3 minutes (valgrind, nginx)
    python benchmarks/cost_layers.py --loop uvloop

CPU time per message moves from run to run on a shared machine by more than the differences
between layers; on a quiet machine instruction counts repeat to within about 1%. Run it alone:
another busy process slows the server and so changes how many answers each turn of the
client's event loop finds, and with it the count (send was seen at 200k instead of 158k
while tests ran beside it). Each variant below runs in a child interpreter
under valgrind's callgrind, twice, with `--small` and `--large` messages after the same
warm-up; instructions per message = (large run - small run) / (large - small), so start-up,
imports, the warm-up and the connections' opening cancel out. Counted: user-space
instructions of the client (the interpreter, the libraries, OpenSSL, libc); not the kernel's
(the same send and recv system calls for every variant, a getpid and a getrandom more for
the SDK's own sends), not the server's.

The server is nginx on 127.0.0.1 (`benchmarks.suite.wild.nginx`: one worker, a fixed SendSMS
answer echoing the uid), never the limit at these rates. C = 100 sends in flight; the fast
backend; asyncio unless `--loop uvloop`. The variants, each one layer more than the one
before it:

- `floor`: the floor client of the benchmark suite (asyncio streams, one prebuilt request,
  `json.loads` of the answer): what Python itself needs to post SendSMS;
- `floor + contract`: the floor, and per message the least of what the SDK's contract asks
  (the number and the text checked, a fresh uid from the OS, the body written with them,
  the answer's uid checked): a lower bound on any SDK's `send` in Python, not a layer;
- `transport`: `FastBackend.exchange` of a prebuilt request: the pool, the connection, the
  request's bytes, the answer read by httptools, the connection handed back;
- `+ answer`: and the answer read into a `SendResult` (`read_response`);
- `+ request`: and the request built from the message (`RequestBuilder`);
- `send_message`: `AsyncSender.send_message` of a prebuilt `SMS`: and the sender's own work
  (admission, the deadline, the retry loop, the outcome), less the coroutine of the
  benchmark's own that the three rows above run in (the sender's calls are awaited directly,
  as a service awaits them and as the floor is);
- `send`: `AsyncSender.send(phone, text)`: and the message built and checked (with its uid).

Writes `benchmarks/results/cost_layers.md` (and `.json`). Needs valgrind (`apt-get install
valgrind`; installed with apt-get when run as root) and nginx with its echo module; without
either it exits 2 before anything runs.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.suite.report import machine_info  # noqa: E402
from benchmarks.suite.server import child_env, ensure_command  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VARIANTS: Final = (
    "floor",
    "floor + contract",
    "transport",
    "+ answer",
    "+ request",
    "send_message",
    "send",
)
#: What each variant adds to the one before it (the report's words).
ADDS: Final = {
    "floor": "asyncio streams, a prebuilt request, json.loads",
    "floor + contract": "number and text checked, uid from the OS, body, answer's uid checked",
    "transport": "pool, connection, request bytes, httptools, hand-back",
    "+ answer": "read_response: JSON, uid check, SendResult",
    "+ request": "RequestBuilder: the body from the message",
    "send_message": "the sender: admission, deadline, retry loop, outcome",
    "send": "SMS: the message built and checked, its uid",
}
CONCURRENCY: Final = 100
#: Messages of the warm-up, the same in both runs of a variant.
WARMUP: Final = 500
DEFAULT_SMALL: Final = 1000
DEFAULT_LARGE: Final = 4000
#: A bound on one child under valgrind (it runs some 50 times slower than without).
CHILD_TIMEOUT: Final = 600.0

_TOTALS = re.compile(rb"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


# -- the child: one variant, N messages -----------------------------------------------------


async def _variant_sends(name: str, url: str) -> tuple[Callable[[], Awaitable[object]], Any]:
    """The send function of variant `name` against `url`, and what to close after."""
    import contextlib

    from benchmarks.suite import account
    from benchmarks.suite.clients import floor_session
    from haorui_async import SMS, AsyncSender
    from haorui_async._protocol import read_response

    stack = contextlib.AsyncExitStack()
    if name in ("floor", "floor + contract"):
        contract = name == "floor + contract"
        return await stack.enter_async_context(floor_session(url, contract=contract)), stack
    sender = await stack.enter_async_context(
        AsyncSender(
            api_id=account.API_ID,
            api_password=account.API_PASSWORD,
            sender_id=account.SENDER_ID,
            base_url=url,
            backend="fast",
            max_concurrency=CONCURRENCY,
        )
    )
    # The layers below `send_message` are the sender's own parts, used as it uses them.
    backend, encode, secret = sender._backend, sender._encode, sender._password
    loop = asyncio.get_running_loop()
    sms = SMS(account.PHONENUMBER, account.TEXTMESSAGE)
    request = encode(sms)

    async def transport() -> None:
        answer = await backend.exchange(request, loop.time() + 30.0)
        answer.finish(keep=True)
        if answer.status != 200:
            raise RuntimeError(f"the server answered HTTP {answer.status}")

    async def with_answer() -> None:
        answer = await backend.exchange(request, loop.time() + 30.0)
        read_response(answer.status, answer.headers, answer.body, sms, secret=secret)
        answer.finish(keep=True)

    async def with_request() -> None:
        answer = await backend.exchange(encode(sms), loop.time() + 30.0)
        read_response(answer.status, answer.headers, answer.body, sms, secret=secret)
        answer.finish(keep=True)

    # The sender's own calls, as a service awaits them: no coroutine of the benchmark around.
    send_message = functools.partial(sender.send_message, sms)
    send = functools.partial(sender.send, account.PHONENUMBER, account.TEXTMESSAGE)

    sends: dict[str, Callable[[], Awaitable[object]]] = {
        "transport": transport,
        "+ answer": with_answer,
        "+ request": with_request,
        "send_message": send_message,
        "send": send,
    }
    return sends[name], stack


async def _drive(send: Callable[[], Awaitable[object]], count: int) -> int:
    """`count` sends, `CONCURRENCY` at a time (a failure raises); how many were made."""
    left = count
    done = 0

    async def worker() -> None:
        nonlocal left, done
        while left > 0:
            left -= 1
            await send()
            done += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return done


async def run_variant(name: str, url: str, count: int, warmup: int = WARMUP) -> int:
    """`warmup` messages, then `count` of variant `name`, C at a time; the latter's count."""
    send, stack = await _variant_sends(name, url)
    async with stack:
        await _drive(send, warmup)
        return await _drive(send, count)


def child_main(name: str, url: str, count: int, loop: str) -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.run(run_variant(name, url, count))
    else:
        asyncio.run(run_variant(name, url, count))


# -- the parent: callgrind, arithmetic, report ------------------------------------------------


def callgrind_total(out_file: Path) -> int:
    """The instructions a callgrind output file counts in all."""
    found = _TOTALS.search(out_file.read_bytes())
    if found is None:
        raise ValueError(f"no totals in {out_file}")
    return int(found.group(1))


def per_message(small: tuple[int, int], large: tuple[int, int]) -> float:
    """Instructions per message from two runs, each `(messages, instructions)`."""
    (n_small, i_small), (n_large, i_large) = small, large
    if n_large <= n_small:
        raise ValueError("the large run must send more messages than the small one")
    return (i_large - i_small) / (n_large - n_small)


def count_instructions(valgrind: str, name: str, url: str, count: int, loop: str) -> int:
    """Run variant `name` for `count` messages under callgrind; its instructions."""
    with tempfile.TemporaryDirectory(prefix="haorui-cost-") as tmp:
        out = Path(tmp) / "callgrind.out"
        command = [
            valgrind,
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            name,
            "--url",
            url,
            "--count",
            str(count),
            "--loop",
            loop,
        ]
        done = subprocess.run(
            command, env=child_env(), capture_output=True, timeout=CHILD_TIMEOUT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{name}: the child failed ({done.returncode}): {done.stderr.decode()[-2000:]}"
            )
        return callgrind_total(out)


def render(results: dict[str, float], meta: dict[str, Any]) -> str:
    """The markdown report of `results` (instructions per message by variant)."""
    floor = results["floor"]
    lines = [
        "# Where a send's CPU goes: instructions per message, layer by layer",
        "",
        f"{meta['date']}; {meta['cpu']}, {meta['cores']} cores; {meta['python']}; "
        f"haorui-async {meta['libraries'].get('haorui-async')}; "
        f"httptools {meta['libraries'].get('httptools')}; loop: {meta['loop']}; "
        f"{meta['small']:,} and {meta['large']:,} messages per variant after {WARMUP} of "
        f"warm-up, C={CONCURRENCY}; nginx on 127.0.0.1 (`python benchmarks/cost_layers.py"
        f"{' --loop uvloop' if meta['loop'] == 'uvloop' else ''}`, {meta['seconds']:.0f} s).",
        "",
        "Client user-space instructions per message counted by callgrind (on a quiet machine "
        "they repeat to within about 1%). The kernel's work is not counted: the same send "
        "and recv for every variant, and for `send_message` and `send` a getpid (Python "
        "3.10-3.11's `get_running_loop`), for `send` a getrandom (the uid). Each SDK row adds "
        "one layer to the row above. `transport`, `+ answer` and `+ request` each run in a "
        "coroutine of the benchmark's own (their steps need one); `send_message` and `send` "
        "are the sender's own calls, awaited as a service awaits them, as the floor is: "
        "`send_message` adds the sender's work less that one coroutine.",
        "",
        "| variant | what it adds | instructions / message | added | ÷ floor |",
        "|---|---|---:|---:|---:|",
    ]
    previous: float | None = None
    for name in VARIANTS:
        value = results[name]
        added = "" if previous is None or name == "transport" else f"{value - previous:+,.0f}"
        lines.append(f"| `{name}` | {ADDS[name]} | {value:,.0f} | {added} | {value / floor:.2f} |")
        previous = value
    lines += [
        "",
        "`added` is the row's count less the row above (the floor and `floor + contract` are "
        "no layer of the SDK: `transport` is compared with nothing). A row's `÷ floor` is what "
        "that much of the SDK costs against the least Python can do; `floor + contract` is the "
        "least a `send` that keeps the SDK's contract can cost, written by hand on the floor.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--small", type=int, default=DEFAULT_SMALL)
    parser.add_argument("--large", type=int, default=DEFAULT_LARGE)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child_main(args.child, args.url, args.count, args.loop)
        return 0
    if args.large <= args.small:
        parser.error("--large must be more than --small")

    from benchmarks.suite.wild.nginx import NginxMissing, NginxServer, ensure_nginx

    valgrind, note = ensure_command("valgrind")
    if valgrind is None:
        print(note, file=sys.stderr)
        return 2
    try:
        install, _ = ensure_nginx()
    except NginxMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    started = time.monotonic()
    results: dict[str, float] = {}
    with NginxServer(install, [(False, 0.0)]) as server:
        url = server.url(False, 0.0)
        for name in VARIANTS:
            runs = [
                (count, count_instructions(valgrind, name, url, count, args.loop))
                for count in (args.small, args.large)
            ]
            results[name] = per_message(runs[0], runs[1])
            print(f"{name:14s} {results[name]:10,.0f} instructions/message", flush=True)
    meta = {
        **machine_info(),
        "loop": args.loop,
        "small": args.small,
        "large": args.large,
        "seconds": time.monotonic() - started,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.loop == "asyncio" else f"-{args.loop}"
    (args.out / f"cost_layers{suffix}.md").write_text(render(results, meta), encoding="utf-8")
    (args.out / f"cost_layers{suffix}.json").write_text(
        json.dumps({"meta": meta, "instructions_per_message": results}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"Written: {args.out / f'cost_layers{suffix}.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
