"""The documentation site builds with `mkdocs build --strict`; its pages hold what they should."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: A build takes a few seconds (the API reference imports and inspects the package).
BUILD_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("mkdocs", reason="the docs dependency group is not installed")
    pytest.importorskip("mkdocstrings", reason="the docs dependency group is not installed")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stderr}"
    return out


def test_the_home_page_has_the_quickstart(site: Path) -> None:
    html = (site / "index.html").read_text(encoding="utf-8")
    assert 'id="quickstart"' in html
    assert "AsyncSender" in html


def test_the_reference_documents_the_public_api_from_docstrings(site: Path) -> None:
    html = (site / "reference" / "index.html").read_text(encoding="utf-8")
    for name in ("AsyncSender.send", "SendResult", "OutcomeUnknown", "DeliveryReportReceiver"):
        assert f'id="haorui_async.{name}"' in html, name
    # The docstring of send() is rendered, not only its name.
    assert "Send one SMS and return the gateway" in html


def test_every_page_in_the_nav_is_built(site: Path) -> None:
    for page in ("outcomes", "rate-limits", "delivery-reports", "testing", "reference"):
        assert (site / page / "index.html").is_file(), page
