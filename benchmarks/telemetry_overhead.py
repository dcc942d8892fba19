"""What telemetry costs per send: `sender.send` on `httpx.MockTransport`, off against on.

    python benchmarks/telemetry_overhead.py                  # about 20 s
    python benchmarks/telemetry_overhead.py --seconds 5      # a quick look

One interpreter, one event loop, one sender per mode, sends one at a time (so the figure is
the CPU cost of a send, with no socket and no waiting). The modes:

- `off`: `telemetry=False`, no hook: the baseline every ratio is against;
- `hook`: `on_outcome=` a function that does nothing, OpenTelemetry off;
- `sdk, no exporter`: the OpenTelemetry SDK's providers with no span processor and no metric
  reader: spans and measurements are made, and dropped;
- `sdk, spans sampled out`: the same with the `ALWAYS_OFF` sampler: what a send costs where
  its trace is not sampled (the metrics are still measured);
- `sdk, in-memory`: the SDK exporting every span at once (`SimpleSpanProcessor`,
  `InMemorySpanExporter`, cleared after each measurement) and aggregating every metric
  (`InMemoryMetricReader`), the costliest local setup.

Rounds alternate the order of the modes; each measurement is a fixed number of sends after a
warm-up, the number chosen so that all rounds fit in `--seconds`. Figures are medians over
the rounds, ratios against `off` measured in the same run. Needs opentelemetry-sdk.

Writes `benchmarks/results/telemetry.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import httpx

RESULTS = Path(__file__).resolve().parent / "results"
#: The whole run's time budget, in seconds, by default.
DEFAULT_SECONDS: Final = 20.0
#: Rounds, alternating the order of the modes: enough for a median on a shared machine.
DEFAULT_ROUNDS: Final = 5
#: Sends per mode before measuring (imports, caches, the pool's first connection).
WARMUP: Final = 200
MODES: Final = ("off", "hook", "sdk, spans sampled out", "sdk, no exporter", "sdk, in-memory")

_ANSWER: Final = (
    b'{"message_id":26471304,"status":"S","remarks":"Message Submitted Sucessfully","uid":null}'
)
_HEADERS: Final = {"content-type": "application/json"}


def _answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, headers=_HEADERS, content=_ANSWER)


class Mode:
    """One way of running the sender, and what to do after each measurement."""

    def __init__(self, name: str, options: dict[str, Any], reset: Callable[[], None]) -> None:
        self.name = name
        self.options = options
        self.reset = reset


def make_modes() -> list[Mode]:
    """The modes, each with its own providers (the global ones are never set)."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    from haorui_async import SendRecord, Telemetry

    def ignore(record: SendRecord) -> None:
        return None

    bare = Telemetry(
        tracer_provider=TracerProvider(shutdown_on_exit=False),
        meter_provider=MeterProvider(shutdown_on_exit=False),
    )
    sampled_out = Telemetry(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False),
        meter_provider=MeterProvider(shutdown_on_exit=False),
    )
    exporter = InMemorySpanExporter()
    traced = TracerProvider(shutdown_on_exit=False)
    traced.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    in_memory = Telemetry(
        tracer_provider=traced,
        meter_provider=MeterProvider(metric_readers=[reader], shutdown_on_exit=False),
    )

    def drain() -> None:
        exporter.clear()
        reader.get_metrics_data()

    def nothing() -> None:
        return None

    return [
        Mode("off", {"telemetry": False}, nothing),
        Mode("hook", {"telemetry": False, "on_outcome": ignore}, nothing),
        Mode("sdk, spans sampled out", {"telemetry": sampled_out}, nothing),
        Mode("sdk, no exporter", {"telemetry": bare}, nothing),
        Mode("sdk, in-memory", {"telemetry": in_memory}, drain),
    ]


async def per_send(sender: Any, sends: int) -> float:
    """Seconds per `sender.send` over `sends` sequential sends."""
    started = time.perf_counter()
    for _ in range(sends):
        await sender.send("8613912345678", "Your code is 112233")
    return (time.perf_counter() - started) / sends


async def measure(seconds: float, rounds: int) -> dict[str, Any]:
    """Every mode, `rounds` times, within about `seconds`; medians in microseconds."""
    from haorui_async import AsyncSender

    modes = make_modes()
    senders = {
        mode.name: AsyncSender(
            api_id="API43404236",
            api_password="secret",
            sender_id="HAORUI",
            transport=httpx.MockTransport(_answer),
            **mode.options,
        )
        for mode in modes
    }
    for mode in modes:
        await per_send(senders[mode.name], WARMUP)
        mode.reset()
    # Size the measurements from the slowest mode's cost, so the run keeps its time bound.
    probe = max([await per_send(senders[mode.name], WARMUP) for mode in modes])
    sends = max(100, int(seconds / (rounds * len(modes)) / probe))
    runs: dict[str, list[float]] = {mode.name: [] for mode in modes}
    for round_ in range(rounds):
        order = modes if round_ % 2 == 0 else modes[::-1]
        for mode in order:
            runs[mode.name].append(await per_send(senders[mode.name], sends))
            mode.reset()
    for sender in senders.values():
        await sender.aclose()
    medians = {name: statistics.median(values) * 1e6 for name, values in runs.items()}
    return {"sends_per_measurement": sends, "rounds": rounds, "microseconds": medians}


def report(result: dict[str, Any], machine: dict[str, Any]) -> str:
    """The markdown table of one run."""
    medians: dict[str, float] = result["microseconds"]
    off = medians["off"]
    lines = [
        "# Telemetry: the cost per send",
        "",
        "Command: `python benchmarks/telemetry_overhead.py` (one process; `sender.send` one at "
        "a time on `httpx.MockTransport`, httpx backend; "
        f"{result['rounds']} alternating rounds of {result['sends_per_measurement']:,} sends "
        "per mode; medians).",
        f"{machine['date']}; CPython {machine['python']}; {machine['platform']}; "
        f"{machine['cores']} cores, load average {machine['load_average']}; "
        f"opentelemetry-sdk {machine['opentelemetry_sdk']}.",
        "",
        "| mode | µs per send | against off |",
        "|---|---:|---:|",
    ]
    for name in MODES:
        lines.append(f"| {name} | {medians[name]:.1f} | x{medians[name] / off:.2f} |")
    lines += [
        "",
        "`off` is `telemetry=False` with no hook (what `telemetry=None` decides where no "
        "SDK provider is installed): the sender then holds no observer, and a send pays a "
        "few `is None` checks.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    try:
        from opentelemetry.sdk.version import __version__ as sdk_version
    except ImportError:
        parser.exit(2, "needs opentelemetry-sdk: pip install opentelemetry-sdk\n")
    result = asyncio.run(measure(options.seconds, options.rounds))
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        # A shared machine: the absolute figures move with the load, the ratios less.
        "load_average": tuple(round(load, 2) for load in os.getloadavg()),
        "opentelemetry_sdk": sdk_version,
    }
    text = report(result, machine)
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / "telemetry.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
