"""Run the benchmark suite and write its results beside this file, in `results/`.

    python benchmarks/run.py            # the default sizes: a few minutes on 2 cores
    python benchmarks/run.py --full     # longer measurements, more rounds
    python benchmarks/run.py --help     # every option (the same as `haorui-async bench`)

The code lives in the package (`haorui_async._bench`), so an installed SDK runs the same
benchmark with `haorui-async bench`.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# A checkout that is not installed still runs: its package directory goes first on the path.
sys.path.insert(0, str(HERE.parent))

from haorui_async.cli._bench import bench  # noqa: E402


def main() -> None:
    """Run `haorui-async bench` with `--out benchmarks/results` unless told otherwise."""
    args = sys.argv[1:]
    if not any(arg == "--out" or arg.startswith("--out=") for arg in args):
        args += ["--out", str(HERE / "results")]
    bench.main(args=args, prog_name="benchmarks/run.py")


if __name__ == "__main__":
    main()
