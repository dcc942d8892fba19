"""The wild part's outputs: `wild.json`, `wild.md` and one plot per scenario."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ..clients import BOUND_CLIENT, CLIENTS
from .results import Cell
from .scenarios import MATRIX, TRIMMED_CLIENT
from .targets import BUSY_LIMIT, HEADROOM, Check, ServerCheck

__all__ = [
    "PEERS",
    "plot_name",
    "render_markdown",
    "to_json_text",
    "verdict_mark",
    "write_plot",
]

#: The peers every SDK client is divided by in each scenario's ratio table.
PEERS: Final = {
    "httpx-pooled": "raw httpx",
    "aiohttp": "aiohttp",
    "floor": "floor",
    BOUND_CLIENT: "floor + contract",
}
SDKS: Final = ("sdk-httpx", "sdk-fast")
#: Where a default run leaves a client out, and why (`scenarios.clients_for`).
_LEFT_OUT: Final = {
    TRIMMED_CLIENT: (
        "at C >= 1000 and in the cold start (it spends those measurements waiting out its "
        "time bound)"
    ),
    BOUND_CLIENT: (
        "at C = 1000 and in the cold start (a bound for the targets that set the SDK against "
        "the floor, and none is there)"
    ),
}
_MARKS: Final = {"pass": "✅ pass", "fail": "❌ FAIL", "n/a": "— n/a"}


def verdict_mark(verdict: str) -> str:
    """How a verdict shows in the table."""
    return _MARKS.get(verdict, verdict)


def plot_name(scenario: str) -> str:
    """The plot's file name for a scenario."""
    return f"wild-{scenario}.png"


def _label(name: str) -> str:
    spec = CLIENTS.get(name)
    return f"{spec.label} (`{name}`)" if spec else name


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f}"


def _us(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e6:,.0f}"


def _mb(size: int | None) -> str:
    return "—" if size is None else f"{size / 1e6:,.0f}"


def _ratio(mine: float | None, theirs: float | None) -> str:
    if mine is None or theirs is None or theirs == 0:
        return "—"
    return f"{mine / theirs:.2f}"


def _main_error(cell: Cell) -> str:
    every = {**cell.warmup_errors, **cell.errors}
    if every:
        return max(every.items(), key=lambda item: item[1])[0]
    return cell.crashes[0][:60] if cell.crashes else "no answer"


def _errors_cell(cell: Cell) -> str:
    count = cell.error_count
    return "0" if not count else f"**{count:,}** (`{_main_error(cell)}`)"


def _check_cell(check: Check | None) -> str:
    if check is None:
        return "—"
    target = check.target
    if check.value is None:
        shown = check.detail
    elif target.ideal:
        shown = f"{check.value:.2f} of C/RTT ({check.detail})"
    elif target.peer is not None:
        shown = f"{check.value:.2f}x ({check.detail})"
    else:
        shown = check.detail
    parts = [verdict_mark(check.verdict) + (f": {shown}" if shown else "")]
    parts.append(f"target {target.wording}")
    if check.note:
        parts.append(check.note)
    return "; ".join(parts)


def _targets_table(checks: Sequence[Check]) -> list[str]:
    rows: dict[str, dict[str, Check]] = {}
    for check in checks:
        rows.setdefault(check.target.row, {})[check.target.client] = check
    out = [
        "| scenario | default backend (sdk-httpx) | fast backend (sdk-fast) |",
        "|---|---|---|",
    ]
    for row, by_client in rows.items():
        cells = [_check_cell(by_client.get(sdk)) for sdk in SDKS]
        out.append(f"| {row} | " + " | ".join(cells) + " |")
    counts = {v: sum(1 for c in checks if c.verdict == v) for v in ("pass", "fail", "n/a")}
    out += [
        "",
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['n/a']} not measurable "
        "(a side not run, or never succeeding). A target passes only where the SDK's own "
        "measurement had no error at all (warm-ups and crashed rounds included).",
    ]
    return out


def _server_table(
    checks: Mapping[str, ServerCheck], scenarios: Sequence[str], note: str
) -> list[str]:
    out = [
        "| scenario | wrk (req/s) | best client (msg/s) | nginx's core, busiest window | verdict |",
        "|---|---:|---:|---:|---|",
    ]
    for name in scenarios:
        check = checks.get(name)
        if check is None:
            continue
        wrk = "—" if check.wrk is None else f"{check.wrk:,.0f}"
        best = "—" if check.best_client is None else f"{check.best_client:,.0f}"
        busy = "—" if check.busiest is None else f"{check.busiest:.0%}"
        out.append(f"| `{name}` | {wrk} | {best} | {busy} | {check.verdict} |")
    out += [
        "",
        f"The server is not the limit where wrk (one thread, on the clients' core) took at "
        f"least {HEADROOM}x the best client's rate from the same listener at the same C (at "
        f"100 ms latency: or 95% of C/RTT), or where nginx's one worker used less than "
        f"{BUSY_LIMIT:.0%} of its core during every client's window (a cold start: only "
        f"this, wrk measures warm connections). wrk: {note}.",
    ]
    return out


def _scenario_section(name: str, cells: Mapping[str, Cell], clients: Sequence[str]) -> list[str]:
    scenario = MATRIX.get(name)
    title = scenario.describe() if scenario else name
    ideal = scenario.ideal_rate if scenario else None
    cold = bool(scenario and scenario.cold)
    present = [c for c in clients if c in cells]
    out = [f"### {title} (`{name}`)", ""]
    if cold:
        out += [
            "| client | time to the last answer (s) | accepted | p50 / p99 (ms) "
            "| CPU (ms) | peak RSS (MB) | nginx busy | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
    else:
        share = " | share of C/RTT" if ideal else ""
        out += [
            f"| client | msg/s{share} | CPU µs/msg | p50 / p99 (ms) | peak RSS (MB) "
            "| nginx busy | errors |",
            "|---|---:|" + ("---:|" if ideal else "") + "---:|---:|---:|---:|---:|",
        ]
    for client in present:
        cell = cells[client]
        busy = "—" if cell.server_busy is None else f"{cell.server_busy:.0%}"
        latency = f"{_ms(cell.p50)} / {_ms(cell.p99)}"
        if cold:
            time = "fails" if cell.failed or cell.time is None else f"{cell.time:.2f}"
            # Accepted and CPU per round (the cells sum the rounds).
            accepted = f"{cell.ok / max(cell.rounds, 1):,.0f}"
            out.append(
                f"| {_label(client)} | {time} | {accepted} | {latency} | "
                f"{_cpu_ms(cell)} | {_mb(cell.peak_rss)} | {busy} | {_errors_cell(cell)} |"
            )
            continue
        rate = "fails" if cell.failed else f"{cell.rate:,.0f}"
        share = f" | {cell.rate / ideal:.0%}" if ideal else ""
        out.append(
            f"| {_label(client)} | {rate}{share} | {_us(cell.cpu_per_message)} | {latency} | "
            f"{_mb(cell.peak_rss)} | {busy} | {_errors_cell(cell)} |"
        )
    sdks = [s for s in SDKS if s in cells]
    peers = [p for p in PEERS if p in cells]
    if sdks and peers:
        if cold:
            headers = [f"time ÷ {PEERS[p]}" for p in peers]
        else:
            headers = [f"CPU/msg ÷ {PEERS[p]}" for p in peers]
            headers += [f"msg/s ÷ {PEERS[p]}" for p in peers]
        out += ["", "| SDK ÷ peer | " + " | ".join(headers) + " |"]
        out.append("|---|" + "---:|" * len(headers))
        for sdk in sdks:
            mine = cells[sdk]
            if cold:
                values = [_ratio(_ok_time(mine), _ok_time(cells[p])) for p in peers]
            else:
                values = [_ratio(mine.cpu_per_message, cells[p].cpu_per_message) for p in peers]
                values += [_ratio(_ok_rate(mine), _ok_rate(cells[p])) for p in peers]
            out.append(f"| `{sdk}` | " + " | ".join(values) + " |")
    return [*out, ""]


def _ok_rate(cell: Cell) -> float | None:
    return None if cell.failed else cell.rate


def _ok_time(cell: Cell) -> float | None:
    return None if cell.failed else cell.time


def _cpu_ms(cell: Cell) -> str:
    if cell.cpu_per_message is None:
        return "—"
    per_round = cell.cpu_per_message * cell.ok / max(cell.rounds, 1)
    return f"{per_round * 1000:,.0f}"


def render_markdown(results: Mapping[str, Any]) -> str:
    """The report: settings, the issue's targets, the server check, every scenario, errors."""
    cells: dict[str, dict[str, Cell]] = results["cells"]
    checks: list[Check] = results["checks"]
    server_checks: dict[str, ServerCheck] = results["server_checks"]
    machine = results["machine"]
    settings = results["settings"]
    server = results["server"]
    scenarios = [s for s in settings["scenarios"] if s in cells]
    clients = settings["clients"]
    pinning = (
        f"nginx's worker pinned to CPU {server['cpu']} (`worker_cpu_affinity`), each client "
        f"pinned to CPU {settings['client_cpu']} (`os.sched_setaffinity`), wrk too"
        if server.get("cpu") is not None
        else "nothing pinned (fewer than two cores available)"
    )
    out = [
        "# Where users run it: TLS, latency, CPU per message, cold start (the wild part)",
        "",
        f"{machine['date']}; {machine['cpu']}, {machine['cores']} cores "
        f"(load average {machine['load_average']}); {machine['python']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["libraries"].items() if v),
        "",
        f"Server: {server['name']} on 127.0.0.1, one worker process, access log off, "
        "keep-alive unbounded, answering the fixed accepted SendSMS JSON with the message's "
        "own uid echoed (POST bodies are read by nginx; `return 200`, a Content-Length "
        f"answer); {pinning}. Each client in a fresh interpreter per scenario and round, "
        f"pools sized to C; {settings['rounds']} alternating rounds; after a warm-up "
        f"(2 x C messages or {settings['warmup_seconds']} s), sends run {settings['lead']} s "
        f"before a measured window of {settings['seconds']} s, which closes while they still "
        "run; a cold start times C sends at once on a fresh client (C new connections). "
        "Client CPU is `getrusage(RUSAGE_SELF)` user + system "
        "over the window, divided by the messages accepted in it; peak RSS is the worker's "
        "high-water mark (`VmHWM`: `ru_maxrss` would carry the parent's over `exec`). "
        "Messages per second, CPU per message and a cold start's time are each client's "
        "best round (another process's load only adds CPU time and takes throughput, so the "
        "best round is the closest to the client's own cost, as `timeit` reports its fastest "
        "run; every client is read the same way); latencies, RSS and the server's load are "
        "medians over the rounds. The machine may be shared: read ratios.",
    ]
    trimmed = sorted({t.split(": ", 1)[1] for t in settings.get("trimmed", [])})
    if trimmed:
        where = "; ".join(f"{name} {_LEFT_OUT.get(name, '')}".rstrip() for name in trimmed)
        out += ["", f"Left out of some scenarios (`--full` or `--client` run them there): {where}."]
    out += [
        "",
        "## The issue's targets",
        "",
    ]
    out += _targets_table(checks)
    out += ["", "## Was the server the limit?", ""]
    out += _server_table(server_checks, scenarios, results.get("wrk_note", ""))
    out += ["", "## Scenarios", ""]
    for name in scenarios:
        out += _scenario_section(name, cells[name], clients)
    out += ["## Errors by class (every measurement; warm-ups apart)", ""]
    lines = []
    for name in scenarios:
        for client, cell in cells[name].items():
            parts = [f"{k}: {v:,}" for k, v in sorted(cell.errors.items())]
            parts += [f"warm-up {k}: {v:,}" for k, v in sorted(cell.warmup_errors.items())]
            parts += [f"crashed: {text}" for text in cell.crashes]
            if parts:
                lines.append(f"- `{name}`, `{client}`: " + "; ".join(parts))
    out += lines or ["None: zero errors in every measurement."]
    return "\n".join(out) + "\n"


def write_plot(name: str, cells: Mapping[str, Cell], clients: Sequence[str], path: Path) -> None:
    """Two bar charts of one scenario: msg/s (a cold start: time to the last answer) and CPU
    per message, one bar per client; a client that never succeeded is marked "fails", one
    with errors carries their count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenario = MATRIX.get(name)
    cold = bool(scenario and scenario.cold)
    present = [c for c in clients if c in cells]
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    positions = list(range(len(present)))
    if cold:
        first = [0.0 if cells[c].failed else (cells[c].time or 0.0) for c in present]
        left.set_ylabel("seconds to the last answer (lower is better)")
    else:
        first = [cells[c].rate for c in present]
        left.set_ylabel("messages per second (accepted)")
        ideal = scenario.ideal_rate if scenario else None
        if ideal:
            left.axhline(ideal, color="grey", linestyle="--", label="C / RTT")
            left.legend(fontsize="small")
    second = [(cells[c].cpu_per_message or 0.0) * 1e6 for c in present]
    right.set_ylabel("client CPU per message, µs (lower is better)")
    for axes, values in ((left, first), (right, second)):
        bars = axes.bar(positions, values, color=[_colour(c) for c in present])
        for bar, client in zip(bars, present, strict=True):
            cell = cells[client]
            if cell.failed:
                text = "fails"
            elif cell.error_count:
                text = f"{cell.error_count:,} errors"
            else:
                continue
            axes.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize="small",
                color="red",
            )
        axes.set_xticks(positions, present, rotation=20, fontsize="small")
        axes.grid(True, axis="y", alpha=0.3)
    figure.suptitle(scenario.describe() if scenario else name)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _colour(client: str) -> str:
    spec = CLIENTS.get(client)
    if spec is None:
        return "tab:grey"
    return {"sdk": "tab:blue", "floor": "tab:green"}.get(spec.kind, "tab:orange")


def to_json_text(results: Mapping[str, Any]) -> str:
    """The results as indented JSON (cells, checks and server checks as plain dicts)."""
    plain = {k: v for k, v in results.items() if k not in ("cells", "checks", "server_checks")}
    plain["cells"] = {
        name: {client: cell.to_json() for client, cell in by_client.items()}
        for name, by_client in results["cells"].items()
    }
    plain["checks"] = [
        {
            "row": c.target.row,
            "client": c.target.client,
            "scenario": c.target.scenario,
            "target": c.target.wording,
            "value": c.value,
            "detail": c.detail,
            "verdict": c.verdict,
            "note": c.note,
        }
        for c in results["checks"]
    ]
    plain["server_checks"] = {
        name: {
            "wrk": s.wrk,
            "best_client": s.best_client,
            "busiest": s.busiest,
            "verdict": s.verdict,
            "reason": s.reason,
        }
        for name, s in results["server_checks"].items()
    }
    return json.dumps(plain, indent=2) + "\n"
