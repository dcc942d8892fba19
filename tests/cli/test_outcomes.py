"""One vocabulary of outcomes on the command line: the kinds of `send_many()`, their exit
codes, and the one-line description of a failed send."""

from __future__ import annotations

import re

import pytest

import haorui_async
from haorui_async._bulk import KINDS
from haorui_async.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_SENT,
    EXIT_UNKNOWN,
    describe_failure,
    exit_code_for,
    exit_code_for_counts,
)

from .conftest import ROOT

MESSAGE = haorui_async.SMS("8613912345678", "hi", uid="u-1")


def test_every_outcome_kind_has_an_exit_code() -> None:
    assert tuple(EXIT_CODES) == KINDS


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (None, EXIT_SENT),
        (
            haorui_async.SubmissionFailed("refused", message=MESSAGE, remarks="no", body={}),
            EXIT_FAILED,
        ),
        (
            haorui_async.Rejected("gateway answered HTTP 404", message=MESSAGE, status_code=404),
            EXIT_FAILED,
        ),
        (haorui_async.NotSent("connection refused", message=MESSAGE), EXIT_FAILED),
        (haorui_async.SenderClosed("closed"), EXIT_FAILED),
        (haorui_async.OutcomeUnknown("read timeout", message=MESSAGE), EXIT_UNKNOWN),
        (haorui_async.InvalidMessage("phonenumber", "12", "too short"), EXIT_BAD_INPUT),
        (haorui_async.ConfigurationError("api_id: required"), EXIT_BAD_INPUT),
    ],
)
def test_the_exit_code_of_one_send_follows_its_outcome_kind(
    error: haorui_async.HaoruiError | None, code: int
) -> None:
    assert exit_code_for(error) == code


@pytest.mark.parametrize(
    ("counts", "code"),
    [
        ({}, EXIT_SENT),
        ({"sent": 5}, EXIT_SENT),
        ({"sent": 5, "invalid": 1}, EXIT_BAD_INPUT),
        ({"invalid": 1, "not_sent": 1}, EXIT_FAILED),
        ({"rejected": 1}, EXIT_FAILED),
        ({"failed": 1, "unknown": 1, "invalid": 1}, EXIT_UNKNOWN),
    ],
)
def test_many_sends_exit_with_the_code_of_the_most_urgent_kind(
    counts: dict[str, int], code: int
) -> None:
    assert exit_code_for_counts(counts) == code


def test_a_failed_send_is_described_by_its_kind_and_each_fact_once() -> None:
    error = haorui_async.OutcomeUnknown(
        "gateway answered HTTP 500", message=MESSAGE, status_code=500, attempts=2
    )
    text = describe_failure(error)
    assert text.startswith("unknown: gateway answered HTTP 500 (OutcomeUnknown, ")
    assert text.count("HTTP 500") == 1
    assert text.count("uid='u-1'") == 1
    assert text.count("attempts=2") == 1
    assert text.count("may have been sent") == 1


def test_a_status_the_detail_does_not_name_is_still_stated() -> None:
    error = haorui_async.OutcomeUnknown(
        "gateway accepted the message but its answer is malformed",
        message=MESSAGE,
        status_code=200,
    )
    assert describe_failure(error).count("HTTP 200") == 1


def test_an_invalid_message_is_described_as_invalid() -> None:
    text = describe_failure(haorui_async.InvalidMessage("phonenumber", "12", "too short"))
    assert text == "invalid: phonenumber: too short (got '12')"


def test_the_readme_shows_the_demo_table_in_the_outcome_kinds() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("What the demo printed", 1)[1].split("```text", 1)[1].split("```")[0]
    labels = re.findall(r"^│ (\S+) +│", block, flags=re.MULTILINE)
    assert labels == [*KINDS, "total"], labels
