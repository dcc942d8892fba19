"""The wild part (`python benchmarks/run.py --part wild`): the SDK where users run it.

A real HTTP server that is never the limit (nginx, one worker on its own core), plain HTTP
and TLS, no latency and 100 ms, 1 to 3,000 sends in flight, asyncio and uvloop, the client's
CPU per message and peak RSS, and the cold start of 1,000 TLS connections; each SDK backend
against raw httpx, aiohttp and the floor in one run, judged against the issue's targets.

Read in this order:

1. `scenarios`: the matrix (TLS, latency, C, loop, cold start), the default selection, sizes.
2. `nginx`: the server: its configuration (pure), its TLS files, its process.
3. `probe`: the measurements: a steady window with CPU and RSS, and the cold start.
4. `worker`: the child process that runs one client in one scenario.
5. `results`: the records folded into one cell per scenario and client (best rounds, medians).
6. `targets`: the issue's targets as ratios with a verdict; whether the server was the limit.
7. `report`: `wild.json`, `wild.md`, one plot per scenario.
8. `runner`: the whole part.
"""
