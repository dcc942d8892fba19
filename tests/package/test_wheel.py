"""The built wheel and sdist, as a user gets them: installed into a fresh virtualenv.

`nox -s package` builds them (`python -m build`), checks them (`twine check --strict`) and
runs this module with their paths in `HAORUI_WHEEL` and `HAORUI_SDIST`; elsewhere it skips.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

WHEEL = os.environ.get("HAORUI_WHEEL")
SDIST = os.environ.get("HAORUI_SDIST")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not WHEEL or not SDIST, reason="run by `nox -s package` on what it built"),
]


def test_the_wheel_and_the_sdist_carry_the_license() -> None:
    assert WHEEL is not None
    assert SDIST is not None
    with zipfile.ZipFile(WHEEL) as wheel:
        names = wheel.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: MIT" in text
    assert "Project-URL: Source, https://" in text
    # The long description has no relative link left: an index page cannot resolve one.
    assert "](docs/" not in text
    assert "](benchmarks/" not in text
    with tarfile.open(SDIST) as sdist:
        members = {Path(m.name).name for m in sdist.getmembers()}
    assert {"LICENSE", "CHANGELOG.md", "README.md"} <= members


def test_the_wheel_installs_into_a_fresh_venv_and_its_command_runs(tmp_path: Path) -> None:
    assert WHEEL is not None
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / ("Scripts" if sys.platform == "win32" else "bin")
    python = bin_dir / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", f"{WHEEL}[cli]"],
        check=True,
        timeout=540,
    )
    # Run away from the checkout, so the installed copy is the one imported.
    shown = subprocess.run(
        [
            python,
            "-c",
            "import haorui_async, sys; print(haorui_async.__version__, haorui_async.__file__)",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    assert str(tmp_path / "venv") in shown
    helped = subprocess.run(
        [bin_dir / "haorui-async", "--help"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout
    for command in ("send", "bulk", "demo", "emulator", "campaign", "worker"):
        assert command in helped
