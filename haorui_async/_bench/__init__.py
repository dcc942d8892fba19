"""The benchmark suite shipped with the package: `haorui-async bench` and `benchmarks/run.py`.

Read in this order:

1. `_clients`: every client under test, one function each (the SDK, raw httpx, raw aiohttp,
   the asyncio-streams floor), behind one interface: an async context manager yielding `send()`.
2. `_load`: the load loop, `C` sends in flight, bounded in count and time, and its statistics.
3. `_worker`: the child process that runs one client at one concurrency (a fresh interpreter
   per client and round, so one client's state never affects another's).
4. `_server`: the gateway under load, the package's emulator in its own process on 127.0.0.1,
   and its own ceiling measured with `wrk`.
5. `_micro`: the SDK's overhead per send on `httpx.MockTransport`, and the cost of each step.
6. `_bulk`: the slot for the `send_many` memory benchmark.
7. `_report`: medians, ratios, the JSON, the markdown table and the plot.
8. `_runner`: the whole run, its command-line options and its sizes (default and `--full`).
"""
