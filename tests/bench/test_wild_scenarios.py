"""The wild part's scenarios: names, selection, the clients each one runs (pure)."""

from __future__ import annotations

import pytest

from benchmarks.suite.wild.scenarios import (
    DEFAULT_NAMES,
    MATRIX,
    WILD_CLIENTS,
    Scenario,
    clients_for,
    select,
)


def test_a_scenario_name_says_scheme_latency_concurrency_and_loop() -> None:
    assert Scenario(tls=False, latency=0.0, concurrency=100).name == "plain-0ms-c100-asyncio"
    slow = Scenario(tls=True, latency=0.1, concurrency=3000, loop="uvloop")
    assert slow.name == "tls-100ms-c3000-uvloop"
    cold = Scenario(tls=True, latency=0.0, concurrency=1000, cold=True)
    assert cold.name == "cold-tls-c1000-asyncio"
    assert "1,000 new HTTPS connections" in cold.describe()
    assert slow.describe() == "HTTPS, 100 ms server latency, C=3,000, uvloop"


def test_the_ideal_rate_is_c_over_the_round_trip_where_the_server_waits() -> None:
    assert MATRIX["plain-100ms-c1000-asyncio"].ideal_rate == pytest.approx(10_000)
    assert MATRIX["plain-0ms-c1000-asyncio"].ideal_rate is None
    assert MATRIX["cold-tls-c1000-asyncio"].ideal_rate is None


def test_the_matrix_holds_every_combination_and_the_cold_starts() -> None:
    # 2 loops x 2 schemes x 2 latencies x 5 concurrencies, and a cold start per loop.
    assert len(MATRIX) == 42
    assert set(DEFAULT_NAMES) <= set(MATRIX)


def test_select_takes_names_and_globs_in_matrix_order() -> None:
    chosen = select(["tls-*-c3000-uvloop", "plain-0ms-c1-asyncio"])
    assert [s.name for s in chosen] == [
        "plain-0ms-c1-asyncio",
        "tls-0ms-c3000-uvloop",
        "tls-100ms-c3000-uvloop",
    ]
    assert len(select(["*"])) == len(MATRIX)


def test_select_refuses_a_pattern_that_matches_nothing() -> None:
    with pytest.raises(ValueError, match="no scenario matches tls-5ms"):
        select(["plain-0ms-c1-asyncio", "tls-5ms"])


@pytest.mark.parametrize(
    ("name", "trimmed", "bound"),
    [
        ("plain-0ms-c100-asyncio", False, True),
        ("plain-100ms-c1000-asyncio", True, False),
        ("plain-100ms-c3000-asyncio", True, True),
        ("cold-tls-c1000-asyncio", True, False),
    ],
)
def test_trimming_leaves_raw_httpx_out_where_it_only_waits(
    name: str, trimmed: bool, bound: bool
) -> None:
    clients = clients_for(MATRIX[name], WILD_CLIENTS, trim=True)
    assert ("httpx-pooled" not in clients) is trimmed
    # The floor keeping the SDK's contract runs where a target sets the SDK against the floor.
    assert ("floor-contract" in clients) is bound
    assert clients_for(MATRIX[name], WILD_CLIENTS, trim=False) == list(WILD_CLIENTS)
