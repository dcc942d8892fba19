"""`python benchmarks/run.py --part wild`: refusals before anything runs (CliRunner)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.suite.command import PARTS, main
from benchmarks.suite.wild import nginx


def test_the_wild_part_is_one_of_the_default_parts() -> None:
    assert PARTS == ("load", "micro", "bulk", "wild")


def test_an_unknown_scenario_is_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--part", "wild", "--scenario", "tls-5ms", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "no scenario matches tls-5ms" in result.output
    assert not list(tmp_path.iterdir())


def test_without_nginx_the_wild_part_says_how_to_install_it_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(nginx, "NGINX_CANDIDATES", ())
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    out = tmp_path / "results"
    args = ["--part", "micro", "--part", "wild", "--rounds", "1", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "apt-get install -y nginx libnginx-mod-http-echo" in result.output
    # Nothing ran: not even the micro part.
    assert not out.exists()
