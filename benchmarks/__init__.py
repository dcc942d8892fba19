"""The project's benchmarks, out of the wheel: `python benchmarks/run.py` (`nox -s bench`).

`suite/` is the peer-comparison suite; `bulk_memory.py` measures `send_many()`'s peak RSS.
A package, so the suite's worker processes run as `python -m benchmarks.suite.worker` and
its tests import it; nothing here is installed.
"""
