"""The wild part against a real nginx: its answers, every client, a tiny whole run.

Skipped where nginx or its echo module is missing (`apt-get install -y nginx
libnginx-mod-http-echo`).
"""

from __future__ import annotations

import json
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.suite.account import payload, payload_bytes
from benchmarks.suite.clients import CLIENTS
from benchmarks.suite.wild import runner
from benchmarks.suite.wild.nginx import NginxServer, TlsFiles, find_nginx, make_tls
from benchmarks.suite.wild.scenarios import Scenario, WildSizes
from benchmarks.suite.wild.worker import run_client
from haorui_async import AsyncSender
from haorui_async._defaults import SEND_SMS_PATH

INSTALL = find_nginx()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        INSTALL is None, reason="nginx or its echo module is not installed (see nginx.py)"
    ),
]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def server(tls_files: TlsFiles) -> Iterator[NginxServer]:
    assert INSTALL is not None
    with NginxServer(INSTALL, [(False, 0.0), (True, 0.0), (False, 0.1)], tls=tls_files) as nginx:
        yield nginx


@pytest.fixture
def context(tls_files: TlsFiles) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(tls_files.ca))


def test_nginx_echoes_the_uid_of_a_json_post_and_of_a_get(server: NginxServer) -> None:
    url = server.url(False, 0.0) + SEND_SMS_PATH
    posted = httpx.post(url, content=payload_bytes("post-uid-1"))
    assert posted.status_code == 200
    assert posted.headers["content-length"] == str(len(posted.content))
    answer = posted.json()
    assert answer["status"] == "S"
    assert answer["uid"] == "post-uid-1"
    assert answer["message_id"]
    # aiohttp and httpx's json= write a space after the colon.
    assert httpx.post(url, content=json.dumps(payload("spaced"))).json()["uid"] == "spaced"
    assert httpx.get(url, params={**payload(), "uid": "get-uid-2"}).json()["uid"] == "get-uid-2"


def test_the_tls_listener_is_trusted_through_the_runs_ca(
    server: NginxServer, context: ssl.SSLContext
) -> None:
    url = server.url(True, 0.0) + SEND_SMS_PATH
    assert httpx.post(url, content=payload_bytes(), verify=context).json()["status"] == "S"
    with pytest.raises(httpx.ConnectError):
        httpx.post(url, content=payload_bytes())


def test_the_slow_listener_waits_100_ms_before_answering(server: NginxServer) -> None:
    url = server.url(False, 0.1) + SEND_SMS_PATH
    with httpx.Client() as client:
        client.post(url, content=payload_bytes())
        started = time.perf_counter()
        client.post(url, content=payload_bytes())
        assert time.perf_counter() - started >= 0.1


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_the_sdk_keeps_its_normal_path_and_its_uid_check_passes(
    server: NginxServer, context: ssl.SSLContext, method: str
) -> None:
    async with AsyncSender(
        api_id="API43404236",
        api_password="pw",
        sender_id="HAORUI",
        base_url=server.url(True, 0.0),
        backend="fast",
        method=method,  # type: ignore[arg-type]  # parametrized over the two literals
        ssl_context=context,
    ) as sender:
        result = await sender.send("8613912345678", "hello", uid="mine-42")
    assert result.uid == "mine-42"
    assert result.message_id


def test_the_servers_worker_is_found(server: NginxServer) -> None:
    assert server.worker_pid is not None
    assert server.worker_pid != server.pid
    assert "worker_processes 1;" in server.config


@pytest.mark.parametrize("name", sorted(CLIENTS))
async def test_every_client_gets_its_messages_accepted_over_tls(
    name: str, server: NginxServer, context: ssl.SSLContext
) -> None:
    record = await run_client(
        name,
        server.url(True, 0.0),
        concurrency=3,
        ssl_context=context,
        cold=False,
        count=30,
        lead=0.05,
        seconds=20,
        grace=5,
        warmup_seconds=0.1,
        server_pid=server.worker_pid,
    )
    assert record["warmup"]["errors"] == {}
    assert record["result"]["errors"] == {}
    assert record["result"]["sent"] == 30
    assert record["result"]["ok"] > 0
    assert record["result"]["cpu"] >= 0
    assert record["result"]["server_cpu"] is not None


async def test_a_cold_start_opens_a_connection_per_send(
    server: NginxServer, context: ssl.SSLContext
) -> None:
    record = await run_client(
        "floor",
        server.url(True, 0.0),
        concurrency=20,
        ssl_context=context,
        cold=True,
        count=1,
        lead=0,
        seconds=0,
        grace=20,
        warmup_seconds=0,
    )
    assert record["warmup"] is None
    assert record["result"]["ok"] == 20
    assert record["result"]["window"] > 0


@pytest.mark.slow
def test_a_tiny_wild_run_writes_the_report_the_json_and_a_plot_per_scenario(
    tmp_path: Path,
) -> None:
    assert INSTALL is not None
    lines: list[str] = []
    sizes = WildSizes(
        rounds=1,
        seconds=0.3,
        lead=0.1,
        count=200,
        warmup_seconds=0.1,
        grace=5,
        cold_grace=20,
        wrk_seconds=1,
    )
    scenarios = [
        Scenario(tls=True, latency=0.1, concurrency=5, loop="uvloop"),
        Scenario(tls=True, latency=0.0, concurrency=20, cold=True),
    ]
    results = runner.run_wild(
        tmp_path,
        sizes=sizes,
        scenarios=scenarios,
        clients=["sdk-fast", "floor"],
        use_wrk=shutil.which("wrk") is not None,
        install=INSTALL,
        progress=lines.append,
    )
    raw = json.loads((tmp_path / "wild.json").read_text(encoding="utf-8"))
    assert [(r["scenario"], r["client"]) for r in raw["runs"]] == [
        ("tls-100ms-c5-uvloop", "sdk-fast"),
        ("tls-100ms-c5-uvloop", "floor"),
        ("cold-tls-c20-asyncio", "sdk-fast"),
        ("cold-tls-c20-asyncio", "floor"),
    ]
    for run in raw["runs"]:
        assert "crash" not in run, run
        assert run["result"]["errors"] == {}
    assert raw["cells"]["cold-tls-c20-asyncio"]["floor"]["ok"] == 20
    text = (tmp_path / "wild.md").read_text(encoding="utf-8")
    assert "## The issue's targets" in text
    assert "## Was the server the limit?" in text
    assert "`tls-100ms-c5-uvloop`" in text
    for scenario in scenarios:
        assert (tmp_path / f"wild-{scenario.name}.png").read_bytes().startswith(b"\x89PNG")
    assert len(results["files"]) == 4
    assert any(line.startswith("round 1/1 cold-tls-c20-asyncio floor: ") for line in lines)
