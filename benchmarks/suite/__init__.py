"""The peer-comparison suite that `python benchmarks/run.py` (`nox -s bench`) runs.

Read in this order:

1. `clients`: every client under test, one function each (the SDK, raw httpx, raw aiohttp,
   the asyncio-streams floor), behind one interface: an async context manager yielding `send()`.
2. `load`: the load loop, `C` sends in flight, bounded in count and time, and its statistics.
3. `worker`: the child process that runs one client at one concurrency (a fresh interpreter
   per client and round, so one client's state never affects another's).
4. `server`: the gateway under load (the package's emulator, in its own process on
   127.0.0.1, started by `haorui_async.testing.EmulatorProcess`) and its ceiling under `wrk`.
5. `micro`: the SDK's overhead per send on `httpx.MockTransport`, and the cost of each step.
6. `bulk`: peak memory of `send_many` against a gather of `send()`.
7. `report`: medians, ratios, the JSON, the markdown table and the plot.
8. `runner`: the whole run and its sizes (default and `--full`).
9. `command`: the command line of `benchmarks/run.py`.
10. `wild/`: the `wild` part: nginx, TLS, latency, CPU per message, uvloop, the cold start,
    judged against the issue's targets (its own reading order in `wild/__init__.py`).

The installed `haorui-async bench` is another, smaller tool: the SDK alone against a gateway
of the user's, no peers (`haorui_async/cli/_bench.py`).
"""
