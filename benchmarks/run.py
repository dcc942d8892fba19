"""Run the peer-comparison benchmark suite and write its results beside this file, in `results/`.

    python benchmarks/run.py            # the default sizes: a few minutes on 2 cores
    python benchmarks/run.py --full     # longer measurements, more rounds
    python benchmarks/run.py --help     # every option

`nox -s bench` installs what it needs (the `bench` dependency group) and runs it. The suite
lives in `benchmarks/suite/`, out of the wheel; the installed `haorui-async bench` is a
smaller tool that measures the SDK alone against a gateway of the user's.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `benchmarks` (and a checkout's `haorui_async`, when it is not installed) import from the
# checkout's root, whatever the working directory.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.suite.command import main

if __name__ == "__main__":
    main(prog_name="benchmarks/run.py")
