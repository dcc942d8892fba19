"""Development tasks: `nox -s tests`, `nox -s lint`, `nox -s typing`, `nox -s demo`, ..."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests", "lint", "typing"]

#: The Pythons the package claims (its classifiers): `nox -s compat` tests each; CI runs the
#: oldest and the newest, beside the full `tests` session on the default one.
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]


def _select_pyenv_versions() -> None:
    """pyenv's shims run only the versions selected (`PYENV_VERSION`, which `pyenv exec` sets
    for nox itself): add every installed version of `PYTHONS` after the selected ones, so
    that `python3.10` ... `python3.13` are found."""
    if not shutil.which("pyenv"):
        return
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True)
        current = (
            os.environ.get("PYENV_VERSION")
            or subprocess.run(
                ["pyenv", "version-name"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    except (OSError, subprocess.CalledProcessError):
        return
    versions = Path(root.stdout.strip()) / "versions"
    installed = sorted(p.name for p in versions.iterdir()) if versions.is_dir() else []
    wanted = [v for v in installed if any(v.startswith(f"{py}.") for py in PYTHONS)]
    os.environ["PYENV_VERSION"] = ":".join(dict.fromkeys([*current.split(":"), *wanted]))


_select_pyenv_versions()

PYPROJECT = nox.project.load_toml("pyproject.toml")


#: The extras the test suite and the type check install: every part of the package.
EXTRAS = ".[cli,fast,ratelimit,redis,queue,otel]"


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


@nox.session(python=PYTHONS, default=False)
def compat(session: nox.Session) -> None:
    """The test suite on each Python the package claims (no coverage gate: `tests` has it)."""
    ensure_redis_server(session)
    session.install("-e", EXTRAS, *nox.project.dependency_groups(PYPROJECT, "test"))
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(default=False)
def package(session: nox.Session) -> None:
    """Build the sdist and the wheel, check them as an index would, and install the wheel
    into a fresh virtualenv (tests/package)."""
    session.install("build", "twine", *nox.project.dependency_groups(PYPROJECT, "test"))
    out = Path(session.create_tmp()) / "dist"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(out))
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    session.run("twine", "check", "--strict", str(wheel), str(sdist))
    env = {"HAORUI_WHEEL": str(wheel), "HAORUI_SDIST": str(sdist)}
    session.run("pytest", "tests/package", "-p", "no:cacheprovider", env=env)


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


#: The modules the compiled build compiles (mypyc, through hatch-mypyc): one list, the hook's.
COMPILED: list[str] = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["mypyc"][
    "include"
]


@nox.session(default=False)
def compiled(session: nox.Session) -> None:
    """The compiled build against the core, conformance, hostile and lookup suites.

    Builds the wheel from the sdist, as `pip install --no-binary` does, with
    `HATCH_BUILD_HOOK_ENABLE_MYPYC=1` (the modules of `COMPILED` compiled by mypyc, beside
    their source; built from the sdist, nothing is left in the working tree), installs it,
    and runs the suites from a copy of `tests/` and `benchmarks/` with no package source
    beside them, so they import the wheel. `nox -s compiled -- benchmarks/cost_layers.py`
    runs a script there instead of the tests.
    """
    session.install("build>=1.2", *nox.project.dependency_groups(PYPROJECT, "test"))
    tmp = Path(session.create_tmp()).resolve()
    dist, wheels, tree = tmp / "dist", tmp / "wheels", tmp / "tree"
    for made in (dist, wheels, tree):
        shutil.rmtree(made, ignore_errors=True)
    session.run("python", "-m", "build", "--sdist", "--outdir", str(dist), ".")
    (sdist,) = dist.glob("*.tar.gz")
    session.run(
        "python",
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--wheel-dir",
        str(wheels),
        str(sdist),
        env={"HATCH_BUILD_HOOK_ENABLE_MYPYC": "1"},
    )
    (wheel,) = wheels.glob("*.whl")
    session.install(f"{wheel}{EXTRAS.removeprefix('.')}")
    session.install("--force-reinstall", "--no-deps", str(wheel))
    for name in ("tests", "benchmarks"):
        shutil.copytree(name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2("pyproject.toml", tree)
    modules = [path.removesuffix(".py").replace("/", ".") for path in COMPILED]
    with session.chdir(tree):
        session.run(
            "python",
            "-c",
            "import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    where = importlib.import_module(name).__file__\n"
            "    if not where.endswith('.so') or 'site-packages' not in where:\n"
            "        sys.exit(f'{name} is not the compiled one: {where}')\n"
            f"print({len(modules)}, 'modules compiled')",
        )
        if session.posargs:
            session.run("python", *session.posargs)
        else:
            session.run(
                "python",
                "-m",
                "pytest",
                "tests/core",
                "tests/conformance",
                "tests/hostile",
                "tests/lookup",
            )


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Build the documentation site (`mkdocs build --strict`), then test its pages and examples."""
    session.install(
        "-e",
        # The command-line reference (mkdocs-click) imports every command.
        ".[cli,emulator,ratelimit,redis,queue,otel]",
        *nox.project.dependency_groups(PYPROJECT, "docs"),
        *nox.project.dependency_groups(PYPROJECT, "test"),
    )
    session.run("mkdocs", "build", "--strict", env={"NO_MKDOCS_2_WARNING": "1"})
    session.run("pytest", "tests/docs", "-p", "no:cacheprovider", *session.posargs)
