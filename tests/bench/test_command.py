"""`python benchmarks/run.py`: the suite's command line (CliRunner, and the script itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from benchmarks.suite.command import INSTALL_HINT, RESULTS_DIR, main

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "run.py"


def _run_script(
    *arguments: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_command_lists_the_clients() -> None:
    result = CliRunner().invoke(main, ["--list"])
    assert result.exit_code == 0
    assert "sdk-httpx" in result.output
    assert "floor" in result.output


def test_the_command_refuses_an_unknown_client() -> None:
    result = CliRunner().invoke(main, ["--client", "nope"])
    assert result.exit_code == 2
    assert "unknown: nope" in result.output


def test_the_command_runs_and_prints_the_table(tmp_path: Path) -> None:
    args = ["--part", "load", "--client", "floor", "-c", "3", "--rounds", "1"]
    args += ["--seconds", "0.3", "--count", "30", "--no-wrk", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "## Messages per second" in result.output
    assert f"Written: {tmp_path / 'throughput.json'}" in result.output
    assert (tmp_path / "throughput.png").exists()


def test_the_results_go_beside_the_script_by_default() -> None:
    assert SCRIPT.parent / "results" == RESULTS_DIR


def test_the_script_runs_from_any_directory(tmp_path: Path) -> None:
    done = _run_script("--list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "httpx-default" in done.stdout


def test_the_script_without_the_peers_prints_the_install_hint_and_exits_2(
    tmp_path: Path,
) -> None:
    # A module of each name, first on the path, fails to import as a missing one does.
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    for name in ("aiohttp", "matplotlib"):
        text = f"No module named {name!r}"
        (blocked / f"{name}.py").write_text(
            f"raise ModuleNotFoundError({text!r}, name={name!r})\n", encoding="utf-8"
        )
    env = {**os.environ, "PYTHONPATH": str(blocked)}
    out = tmp_path / "results"
    arguments = ["--part", "load", "--client", "floor", "-c", "1", "--rounds", "1"]
    arguments += ["--seconds", "0.05", "--count", "5", "--no-wrk", "--out", str(out)]
    done = _run_script(*arguments, cwd=tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "aiohttp, matplotlib" in done.stderr
    assert INSTALL_HINT in done.stderr.replace("\n", " ")
    assert not out.exists()
