"""The whole wild part: nginx, the server check, every client in every scenario, the report."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from .. import report as throughput_report
from ..clients import CLIENTS
from ..runner import run_worker_process
from ..server import ensure_wrk, run_wrk
from . import report
from .nginx import NginxInstall, NginxServer, ensure_nginx, make_tls, split_cores
from .results import summarize
from .scenarios import (
    DEFAULT_NAMES,
    DEFAULT_SIZES,
    MATRIX,
    WILD_CLIENTS,
    Scenario,
    WildSizes,
    clients_for,
)
from .targets import ISSUE_TARGETS, ServerCheck, check_server, evaluate

__all__ = ["JSON_NAME", "MARKDOWN_NAME", "default_scenarios", "run_wild"]

JSON_NAME: Final = "wild.json"
MARKDOWN_NAME: Final = "wild.md"


def default_scenarios() -> list[Scenario]:
    """The scenarios the issue's targets are judged on."""
    return [MATRIX[name] for name in DEFAULT_NAMES]


def _nginx_version(binary: str) -> str:
    try:
        done = subprocess.run(
            [binary, "-v"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):  # pragma: no cover - a broken nginx
        return "nginx"
    return done.stderr.strip().removeprefix("nginx version: ") or "nginx"


def _run_worker(
    client: str,
    scenario: Scenario,
    url: str,
    sizes: WildSizes,
    *,
    ca: Path | None,
    cpu: int | None,
    server_pid: int | None,
) -> dict[str, Any]:
    """One client in one scenario in a fresh interpreter; a crash is recorded, not raised."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.suite.wild.worker",
        f"--client={client}",
        f"--url={url}",
        f"--concurrency={scenario.concurrency}",
        f"--loop={scenario.loop}",
        f"--count={sizes.count}",
        f"--lead={sizes.lead}",
        f"--seconds={sizes.seconds}",
        f"--grace={sizes.cold_grace if scenario.cold else sizes.grace}",
        f"--warmup-seconds={sizes.warmup_seconds}",
    ]
    if scenario.cold:
        command.append("--cold")
    if ca is not None:
        command.append(f"--ca={ca}")
    if cpu is not None:
        command.append(f"--cpu={cpu}")
    if server_pid is not None:
        command.append(f"--server-pid={server_pid}")
    limit = sizes.warmup_seconds + sizes.lead + sizes.seconds + 2 * sizes.grace
    limit += sizes.cold_grace + 60
    return run_worker_process(command, client, limit)


def describe(record: dict[str, Any], scenario: Scenario) -> str:
    """One progress line's figures for a record."""
    if "crash" in record:
        return f"crashed: {record['crash']}"
    result = record["result"]
    errors = sum(result["errors"].values())
    if record.get("warmup"):
        errors += sum(record["warmup"]["errors"].values())
    cpu = result["cpu_per_message"]
    shown = [
        f"{result['window']:.2f} s to the last answer"
        if scenario.cold
        else f"{result['rate']:,.0f} msg/s",
        "—" if cpu is None else f"{cpu * 1e6:,.0f} µs/msg",
        f"{result['peak_rss'] / 1e6:,.0f} MB",
    ]
    if errors:
        shown.append(f"{errors:,} errors")
    return ", ".join(shown)


def _server_checks(
    server: NginxServer,
    scenarios: Sequence[Scenario],
    sizes: WildSizes,
    *,
    use_wrk: bool,
    cpu: int | None,
    progress: Callable[[str], None],
) -> tuple[dict[str, float], str]:
    """wrk's rate per load scenario (one run per listener and concurrency), and a note."""
    if not use_wrk:
        return {}, "turned off (--no-wrk)"
    wrk, note = ensure_wrk()
    if wrk is None:
        return {}, note
    rates: dict[tuple[bool, float, int], float] = {}
    failed = []
    for scenario in scenarios:
        key = (scenario.tls, scenario.latency, scenario.concurrency)
        if scenario.cold or key in rates:
            continue
        url = server.url(scenario.tls, scenario.latency)
        ceiling = run_wrk(
            wrk, url, [scenario.concurrency], seconds=sizes.wrk_seconds, note=note, cpu=cpu
        )
        rate = ceiling.rates.get(scenario.concurrency)
        # 0 req/s: wrk's own connections (3,000 TLS handshakes) took its whole run.
        if not rate or ceiling.non_2xx.get(scenario.concurrency):
            failed.append(scenario.name)
            continue
        rates[key] = rate
        progress(f"wrk {scenario.name.rsplit('-', 1)[0]}: {rate:,.0f} req/s")
    if failed:
        note += f"; no clean wrk figure for {', '.join(failed)}"
    # A cold start is judged by nginx's CPU alone: wrk measures warm connections.
    by_name = {
        s.name: rates[(s.tls, s.latency, s.concurrency)]
        for s in scenarios
        if not s.cold and (s.tls, s.latency, s.concurrency) in rates
    }
    return by_name, note


def run_wild(
    out_dir: Path,
    *,
    sizes: WildSizes = DEFAULT_SIZES,
    scenarios: Sequence[Scenario] | None = None,
    clients: Sequence[str] = WILD_CLIENTS,
    use_wrk: bool = True,
    trim: bool = False,
    install: NginxInstall | None = None,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the wild part and write `wild.json`, `wild.md` and one plot per scenario.

    `trim` leaves raw httpx out of the scenarios where it only waits out its time bound
    (`scenarios.clients_for`).

    Returns the results, `files` naming the files written. Raises `ValueError` for an
    unknown client, `NginxMissing` (a `RuntimeError`) when nginx or its echo module is not
    installed and cannot be, `RuntimeError` when nginx does not start. A client that fails
    or crashes is recorded as such, never dropped.
    """
    chosen = list(scenarios) if scenarios is not None else default_scenarios()
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        raise ValueError(f"unknown clients: {', '.join(unknown)}")
    if install is None:
        install, how = ensure_nginx()
        progress(how)
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    server_cpu, client_cpu = split_cores(available)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="haorui-bench-tls-") as tmp:
        tls = make_tls(Path(tmp)) if any(s.tls for s in chosen) else None
        variants = [(s.tls, s.latency) for s in chosen]
        with NginxServer(install, variants, tls=tls, cpu=server_cpu) as server:
            worker_pid = server.worker_pid
            progress(
                f"server: nginx at {', '.join(listener.url for listener in server.listeners)}"
                f" (worker pid {worker_pid}, CPU {server_cpu}); clients on CPU {client_cpu}"
            )
            wrk_rates, wrk_note = _server_checks(
                server, chosen, sizes, use_wrk=use_wrk, cpu=client_cpu, progress=progress
            )
            for round_number in range(sizes.rounds):
                # Alternate the order, so no client always runs right after the same one.
                order = list(clients) if round_number % 2 == 0 else list(reversed(clients))
                for scenario in chosen:
                    url = server.url(scenario.tls, scenario.latency)
                    for client in clients_for(scenario, order, trim=trim):
                        record = _run_worker(
                            client,
                            scenario,
                            url,
                            sizes,
                            ca=tls.ca if tls and scenario.tls else None,
                            cpu=client_cpu,
                            server_pid=worker_pid,
                        )
                        record.update(round=round_number, scenario=scenario.name)
                        runs.append(record)
                        progress(
                            f"round {round_number + 1}/{sizes.rounds} {scenario.name} "
                            f"{client}: {describe(record, scenario)}"
                        )
            error_log = server.error_log()
    cells = summarize(runs)
    server_checks: dict[str, ServerCheck] = {
        s.name: check_server(s.name, wrk_rates.get(s.name), cells.get(s.name, {})) for s in chosen
    }
    results: dict[str, Any] = {
        "machine": throughput_report.machine_info(),
        "settings": {
            **attrs.asdict(sizes),
            "scenarios": [s.name for s in chosen],
            "clients": list(clients),
            "trimmed": [
                f"{s.name}: {c}"
                for s in chosen
                for c in clients
                if c not in clients_for(s, clients, trim=trim)
            ],
            "client_cpu": client_cpu,
        },
        "server": {
            "name": _nginx_version(install.binary) + " with the echo module",
            "cpu": server_cpu,
            "error_log": error_log[-4000:],
        },
        "wrk": wrk_rates,
        "wrk_note": wrk_note,
        "runs": runs,
        "cells": cells,
        "checks": [evaluate(target, cells) for target in ISSUE_TARGETS],
        "server_checks": server_checks,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / JSON_NAME, out_dir / MARKDOWN_NAME]
    for scenario in chosen:
        if scenario.name in cells:
            path = out_dir / report.plot_name(scenario.name)
            report.write_plot(scenario.name, cells[scenario.name], list(clients), path)
            written.append(path)
    results["files"] = [str(path) for path in written]
    (out_dir / JSON_NAME).write_text(report.to_json_text(results), encoding="utf-8")
    (out_dir / MARKDOWN_NAME).write_text(report.render_markdown(results), encoding="utf-8")
    return results
