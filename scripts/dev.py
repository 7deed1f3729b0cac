#!/usr/bin/env python3
"""One entry point for working on authcore: it creates the virtualenv it needs.

    python3 scripts/dev.py demo      # run the demo on ./authcore-demo.db
    python3 scripts/dev.py test      # the whole suite under coverage (extra args go to pytest)
    python3 scripts/dev.py check     # ruff, ruff format --check, mypy --strict
    python3 scripts/dev.py shell     # print the virtualenv's python path

Only the standard library is used here, so this works on a fresh clone with
nothing but Python 3.11+. The virtualenv lives in ``.venv`` beside this
folder and is reinstalled whenever ``pyproject.toml`` changes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("AUTHCORE_VENV", ROOT / ".venv"))
STAMP = VENV / ".authcore-installed"


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def wanted_stamp() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return f"{sys.version_info[:3]} {digest}"


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
        subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
        STAMP.write_text(wanted_stamp())
    return python


def run(args: list[str], **kwargs: object) -> int:
    return subprocess.run(args, check=False, **kwargs).returncode  # type: ignore[call-overload, no-any-return]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "check", "shell"}:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    python = str(ensure_venv())
    if command == "demo":
        return run([python, "-m", "authcore", "demo", *rest])
    if command == "test":
        # The whole suite under coverage (subprocesses included), on every core;
        # extra arguments go to pytest. Fails below the coverage floor in pyproject.
        for stale in ROOT.glob(".coverage*"):
            stale.unlink()
        status = run(
            [python, "-m", "coverage", "run", "-m", "pytest", "-n", "auto", *rest], cwd=ROOT
        )
        if status != 0:
            return status
        run([python, "-m", "coverage", "combine", "-q"], cwd=ROOT)
        return run([python, "-m", "coverage", "report", "--skip-covered"], cwd=ROOT)
    if command == "check":
        steps = [
            [python, "-m", "ruff", "check", "."],
            [python, "-m", "ruff", "format", "--check", "."],
            [python, "-m", "mypy", "authcore"],
        ]
        return max(run(step, cwd=ROOT) for step in steps)
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
