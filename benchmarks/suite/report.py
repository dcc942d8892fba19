"""Medians over rounds, ratios against the peers, and the three outputs: JSON, markdown, PNG."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from .clients import CLIENTS
from .load import Measurement
from .micro import MICRO_STEPS

__all__ = [
    "PEERS",
    "Summary",
    "add_counts",
    "machine_info",
    "median",
    "ratios",
    "render_markdown",
    "summarize",
    "write_plot",
]

#: The peers every SDK client is divided by, in the ratio table's order.
PEERS: Final = {"httpx-default": "raw httpx (defaults)", "aiohttp": "aiohttp", "floor": "floor"}
_LIBRARIES: Final = (
    "haorui-async",
    "httpx",
    "httpcore",
    "aiohttp",
    "uvicorn",
    "uvloop",
    "httptools",
    "matplotlib",
)


def compiled_modules(package: Path | None = None) -> list[str]:
    """The modules of haorui-async (or of the package at `package`) that are compiled
    (`nox -s compiled`): each an extension module beside its source; none in the pure-Python
    build."""
    if package is None:
        import haorui_async

        package = Path(haorui_async.__file__).parent
    return sorted(
        # (An extension's name carries its interpreter: `_pool.cpython-311-x86_64-linux-gnu.so`.)
        ".".join((*path.relative_to(package.parent).parent.parts, path.name.split(".", 1)[0]))
        for path in package.rglob("*")
        if path.suffix in (".so", ".pyd")
    )


def machine_info() -> dict[str, Any]:
    """CPU model, cores, load, OS, Python and library versions, and the date (UTC)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:  # pragma: no cover - not Linux
        pass
    versions: dict[str, str | None] = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    compiled = compiled_modules()
    if compiled and versions.get("haorui-async"):
        versions["haorui-async"] = f"{versions['haorui-async']} (compiled: {len(compiled)} modules)"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "libraries": versions,
    }


@attrs.frozen
class Summary:
    """One client at one concurrency, over every round.

    Attributes:
        rate: the median of the rounds' accepted messages per second.
        p50, p99: the medians of the rounds' latency percentiles, in seconds (None: no success).
        ok: accepted sends, all rounds together.
        errors: failed sends by class, all rounds together (warm-ups apart).
        warmup_errors: failed sends of the warm-ups, by class.
        rounds: rounds that produced a measurement.
        crashes: why rounds produced none (the client could not be set up, the worker died).
    """

    rate: float
    p50: float | None
    p99: float | None
    ok: int
    errors: dict[str, int]
    warmup_errors: dict[str, int]
    rounds: int
    crashes: list[str]

    @property
    def failed(self) -> bool:
        """Whether nothing at all was accepted."""
        return self.ok == 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return attrs.asdict(self)


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values that are there (None where none is)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def add_counts(total: dict[str, int], more: Mapping[str, int]) -> None:
    """Add the counts of `more` into `total`, name by name."""
    for name, number in more.items():
        total[name] = total.get(name, 0) + number


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, Summary]]:
    """Fold the workers' records into one `Summary` per client and concurrency."""
    grouped: dict[str, dict[int, list[Mapping[str, Any]]]] = {}
    for record in records:
        by_c = grouped.setdefault(record["client"], {})
        by_c.setdefault(int(record["concurrency"]), []).append(record)
    summaries: dict[str, dict[int, Summary]] = {}
    for client, by_c in grouped.items():
        for concurrency, runs in sorted(by_c.items()):
            measured = [Measurement.from_json(r["result"]) for r in runs if "result" in r]
            errors: dict[str, int] = {}
            warmup_errors: dict[str, int] = {}
            for run in runs:
                if "result" in run:
                    add_counts(errors, run["result"]["errors"])
                    add_counts(warmup_errors, run["warmup"]["errors"])
            summaries.setdefault(client, {})[concurrency] = Summary(
                rate=statistics.median([m.rate for m in measured]) if measured else 0.0,
                p50=median([m.p50 for m in measured]),
                p99=median([m.p99 for m in measured]),
                ok=sum(m.ok for m in measured),
                errors=errors,
                warmup_errors=warmup_errors,
                rounds=len(measured),
                crashes=[str(r["crash"]) for r in runs if "crash" in r],
            )
    return summaries


def ratios(summaries: Mapping[str, Mapping[int, Summary]]) -> dict[str, dict[str, dict[int, Any]]]:
    """`ratios[sdk][peer][C]`: the SDK client's rate over the peer's, or None if either failed."""
    table: dict[str, dict[str, dict[int, Any]]] = {}
    for name, by_c in summaries.items():
        spec = CLIENTS.get(name)
        if spec is None or spec.kind != "sdk":
            continue
        for peer in PEERS:
            row = table.setdefault(name, {}).setdefault(peer, {})
            for concurrency, mine in by_c.items():
                theirs = summaries.get(peer, {}).get(concurrency)
                if theirs is None or theirs.failed or mine.failed:
                    row[concurrency] = None
                else:
                    row[concurrency] = mine.rate / theirs.rate
    return table


def _label(name: str) -> str:
    spec = CLIENTS.get(name)
    return spec.label if spec else name


def _main_error(errors: Mapping[str, int]) -> str:
    return max(errors.items(), key=lambda item: item[1])[0] if errors else "no answer"


def _rate_cell(summary: Summary | None) -> str:
    if summary is None:
        return "—"
    if summary.failed:
        if summary.crashes and not summary.errors:
            return f"crashed: `{summary.crashes[0][:60]}`"
        return f"fails: `{_main_error(summary.errors)}`"
    cell = f"{summary.rate:,.0f}"
    failures = sum(summary.errors.values())
    if failures:
        cell += f" ({failures:,} errors)"
    return cell


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f}"


def render_markdown(results: Mapping[str, Any]) -> str:
    """The report: settings, the server's ceiling, throughput, latency, errors, ratios, micro."""
    summaries: dict[str, dict[int, Summary]] = results["summary_objects"]
    clients = [c for c in results["settings"]["clients"] if c in summaries]
    concurrencies = results["settings"]["concurrency"]
    machine = results["machine"]
    settings = results["settings"]
    out = [
        "# Hot-path throughput: the SDK against its peers, in one run",
        "",
        f"{machine['date']}; {machine['cpu']}, {machine['cores']} cores "
        f"(load average {machine['load_average']}); {machine['python']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["libraries"].items() if v),
        "",
        f"Server: {results['server']} on 127.0.0.1, its own process. Each client in its own "
        f"process per round and concurrency; {settings['rounds']} alternating rounds after a "
        f"warm-up; each measurement bounded by {settings['count']:,} messages and "
        f"{settings['seconds']} s (in-flight sends then get {settings['grace']} s). "
        "Figures are medians over the rounds. The machine may be shared: read ratios.",
        "",
    ]
    ceiling = results["ceiling"]
    if ceiling["tool"]:
        out.append(
            "Server ceiling (wrk, one thread): "
            + ", ".join(f"C={c}: {r:,.0f} req/s" for c, r in ceiling["rates"].items())
            + f" ({ceiling['note']})."
        )
    else:
        out.append(f"Server ceiling: not measured with wrk ({ceiling['note']}).")
        floor = summaries.get("floor")
        best = max((s.rate for s in floor.values()), default=0.0) if floor else 0.0
        if best:
            out.append(f"The floor client's best figure stands in for it: {best:,.0f} msg/s.")
    out += ["", "## Messages per second", ""]
    out.append("| C | " + " | ".join(_label(c) for c in clients) + " |")
    out.append("|---:|" + "---:|" * len(clients))
    for c in concurrencies:
        cells = [_rate_cell(summaries[name].get(c)) for name in clients]
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    out += ["", "## Latency, p50 / p99 (ms)", ""]
    out.append("| C | " + " | ".join(_label(c) for c in clients) + " |")
    out.append("|---:|" + "---:|" * len(clients))
    for c in concurrencies:
        cells = []
        for name in clients:
            s = summaries[name].get(c)
            cells.append("—" if s is None else f"{_ms(s.p50)} / {_ms(s.p99)}")
        out.append(f"| {c} | " + " | ".join(cells) + " |")
    out += ["", "## Errors by class (all rounds; warm-ups apart)", ""]
    lines = []
    for name in clients:
        for c, s in summaries[name].items():
            parts = [f"{k}: {v:,}" for k, v in sorted(s.errors.items())]
            parts += [f"warm-up {k}: {v:,}" for k, v in sorted(s.warmup_errors.items())]
            parts += [f"crashed: {text}" for text in s.crashes]
            if parts:
                lines.append(f"- {_label(name)}, C={c}: " + "; ".join(parts))
    out += lines or ["None."]
    table = results["ratios"]
    if table:
        out += ["", "## Ratios (SDK / peer, messages per second; above 1: the SDK is faster)", ""]
        headers = []
        for sdk, by_peer in table.items():
            for peer in by_peer:
                prefix = f"{sdk} / " if len(table) > 1 else "SDK / "
                headers.append(prefix + PEERS[peer])
        out.append("| C | " + " | ".join(headers) + " |")
        out.append("|---:|" + "---:|" * len(headers))
        for c in concurrencies:
            cells = []
            for by_peer in table.values():
                for row in by_peer.values():
                    value = row.get(c)
                    cells.append("—" if value is None else f"{value:.2f}")
            out.append(f"| {c} | " + " | ".join(cells) + " |")
        out += ["", "— : one side failed at that concurrency, or was not run."]
    micro = results.get("micro")
    if micro:
        out += ["", "## Overhead per send, no sockets (µs, httpx.MockTransport)", ""]
        out += ["| step | µs |", "|---|---:|"]
        out += [f"| {MICRO_STEPS[k]} | {v:.1f} |" for k, v in micro.items()]
    bulk = results.get("bulk")
    if bulk:
        out += ["", "## Bulk: peak traced memory (MockTransport)", ""]
        out += ["| method | messages | peak MiB |", "|---|---:|---:|"]
        for name, row in bulk.items():
            peak = row.get("peak_bytes")
            shown = f"{peak / 2**20:.1f}" if peak is not None else row.get("note", "—")
            out.append(f"| {name} | {row['messages']:,} | {shown} |")
    return "\n".join(out) + "\n"


def write_plot(
    summaries: Mapping[str, Mapping[int, Summary]],
    clients: Sequence[str],
    path: Path,
    *,
    ceiling: float | None = None,
    ceiling_label: str = "server ceiling",
) -> None:
    """Messages per second against concurrency (log-log), one line per client, to a PNG.

    A client that fails at some concurrency is drawn as a cross on the bottom axis there.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5.5))
    rates = [s.rate for by_c in summaries.values() for s in by_c.values() if not s.failed]
    bottom = min(rates, default=1.0) / 3
    for name in clients:
        by_c = summaries.get(name, {})
        points = sorted((c, s.rate) for c, s in by_c.items() if not s.failed)
        failed = sorted(c for c, s in by_c.items() if s.failed)
        (line,) = axes.plot(
            [c for c, _ in points], [r for _, r in points], marker="o", label=_label(name)
        )
        if failed:
            axes.plot(
                failed,
                [bottom * 1.15] * len(failed),
                marker="x",
                linestyle="none",
                markersize=10,
                color=line.get_color(),
            )
    if ceiling:
        axes.axhline(ceiling, color="grey", linestyle="--", label=ceiling_label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_ylim(bottom=bottom)
    axes.set_xlabel("sends in flight (C)")
    axes.set_ylabel("messages per second (accepted)")
    axes.set_title("SendSMS over loopback: throughput by client (x on the axis: fails)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def to_json_text(results: Mapping[str, Any]) -> str:
    """The results as indented JSON (the `Summary` objects as dicts)."""
    plain = {k: v for k, v in results.items() if k != "summary_objects"}
    plain["summary"] = {
        name: {str(c): s.to_json() for c, s in by_c.items()}
        for name, by_c in results["summary_objects"].items()
    }
    return json.dumps(plain, indent=2) + "\n"
