"""Development tasks: `nox -s tests`, `nox -s lint`, `nox -s typing`, `nox -s demo`, ..."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typing"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


#: The extras the test suite and the type check install: every part of the package.
EXTRAS = ".[cli,fast,ratelimit,redis,queue]"


def ensure_redis_server(session: nox.Session) -> None:
    """The Redis tests run a real `redis-server`: install Debian's package when it is missing
    and this session may (root, with apt-get); else those tests skip (and fail in CI)."""
    if shutil.which("redis-server") or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    session.log("installing redis-server (Debian package) for the Redis tests")
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    session.run("apt-get", "update", "-qq", external=True, env=env)
    session.run("apt-get", "install", "-y", "-qq", "redis-server", external=True, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with branch coverage; fails under the coverage gate."""
    ensure_redis_server(session)
    session.install("-e", EXTRAS, *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", success_codes=[0, 1])
    session.run("coverage", "report")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install(*nox.project.dependency_groups(PYPROJECT, "lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install("-e", EXTRAS, *nox.project.dependency_groups(PYPROJECT, "typing"))
    session.run("mypy", "haorui_async", "tests", "benchmarks")


@nox.session
def demo(session: nox.Session) -> None:
    """Start the built-in emulator on loopback, send one SMS, then fan out 10,000 sends."""
    # uvloop and httptools (the `fast` extra) make the emulator subprocess faster.
    session.install("-e", ".[cli,fast]")
    session.run("haorui-async", "demo", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Throughput of the SDK against raw httpx, aiohttp and an asyncio floor, in one run.

    Writes benchmarks/results/throughput.{json,md,png}; `nox -s bench -- --full` runs longer.
    The suite lives in benchmarks/, out of the wheel; the `bench` dependency group is its needs.
    """
    session.install("-e", ".[fast]", *nox.project.dependency_groups(PYPROJECT, "bench"))
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site (`mkdocs build --strict`), then test its pages and examples."""
    session.install(
        "-e",
        ".[emulator,ratelimit]",
        *nox.project.dependency_groups(PYPROJECT, "docs"),
        *nox.project.dependency_groups(PYPROJECT, "test"),
    )
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("pytest", "tests/docs", "-p", "no:cacheprovider", *session.posargs)
