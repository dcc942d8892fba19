"""The fault plan: queued faults in order, then seeded random ones at the configured rates."""

from __future__ import annotations

from typing import Any

import pytest

from haorui_async.testing import (
    DropConnection,
    FaultPlan,
    FaultRates,
    Hang,
    LoseAnswer,
    MalformedBody,
    RefuseConnection,
    RespondWith,
)


def test_without_faults_every_request_is_answered() -> None:
    plan = FaultPlan()
    assert [plan.next() for _ in range(3)] == [None, None, None]
    assert plan.served == {}


def test_queued_faults_come_in_order_then_none() -> None:
    plan = FaultPlan()
    plan.inject(RespondWith(429, retry_after=1), Hang())
    assert plan.pending == 2
    assert plan.next() == RespondWith(429, retry_after=1)
    assert plan.next() == Hang()
    assert plan.next() is None
    assert plan.served == {"429": 1, "hang": 1}


def test_times_repeats_the_whole_sequence() -> None:
    plan = FaultPlan()
    plan.inject(RespondWith(503), DropConnection(), times=2)
    kinds = []
    while (fault := plan.next()) is not None:
        kinds.append(fault.kind)
    assert kinds == ["503", "drop", "503", "drop"]


def test_times_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="times"):
        FaultPlan().inject(Hang(), times=0)


def test_clear_drops_queued_faults() -> None:
    plan = FaultPlan()
    plan.inject(RefuseConnection(), MalformedBody())
    plan.clear()
    assert plan.next() is None


def test_random_faults_follow_the_rates_and_the_seed() -> None:
    rates = FaultRates(rate_429=0.2, rate_503=0.1, rate_500=0.1, rate_drop=0.1)
    first = FaultPlan(rates, seed=42)
    second = FaultPlan(rates, seed=42)
    draws = [first.next() for _ in range(5000)]
    assert draws == [second.next() for _ in range(5000)]
    assert 800 < first.served["429"] < 1200
    assert 350 < first.served["503"] < 650
    assert 2200 < draws.count(None) < 2800


def test_a_rate_of_one_fails_every_request() -> None:
    plan = FaultPlan(FaultRates(rate_hang=1.0, faults_accept=True))
    assert {plan.next() for _ in range(50)} == {Hang(accepted=True)}


def test_faults_accept_applies_to_ambiguous_faults_only() -> None:
    table = {
        fault.kind: fault
        for _, fault in FaultRates(
            rate_429=0.1,
            rate_503=0.1,
            rate_500=0.1,
            rate_hang=0.1,
            rate_drop=0.1,
            rate_malformed=0.1,
            faults_accept=True,
        ).table()
    }
    assert not table["429"].accepted
    assert not table["503"].accepted
    assert all(table[kind].accepted for kind in ("500", "hang", "drop", "malformed"))


def test_an_empty_retry_after_sends_no_header() -> None:
    ((_, fault),) = FaultRates(rate_429=1.0, retry_after="").table()
    assert fault == RespondWith(429, retry_after=None)


@pytest.mark.parametrize(
    "rates", [{"rate_500": 1.5}, {"rate_503": -0.1}, {"rate_429": 0.6, "rate_500": 0.6}]
)
def test_rates_out_of_range_are_refused(rates: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultRates(**rates)


def test_refuse_connection_never_accepts() -> None:
    assert RefuseConnection().accepted is False
    assert RefuseConnection().kind == "refuse"


def test_lose_answer_always_accepts_whatever_faults_accept_says() -> None:
    assert LoseAnswer().accepted is True
    assert LoseAnswer().kind == "lose_answer"
    ((_, fault),) = FaultRates(rate_lose_answer=1.0, faults_accept=False).table()
    assert fault == LoseAnswer()


def test_lost_answers_count_in_the_total_of_the_rates() -> None:
    assert FaultRates(rate_lose_answer=0.25, rate_drop=0.25).total == 0.5
    with pytest.raises(ValueError, match="more than 1"):
        FaultRates(rate_lose_answer=0.6, rate_503=0.6)
    plan = FaultPlan(FaultRates(rate_lose_answer=0.5), seed=1)
    draws = [plan.next() for _ in range(1000)]
    assert 400 < plan.served["lose_answer"] < 600
    assert set(draws) == {None, LoseAnswer()}
