"""Run the test suite on every supported Python found on this machine.

    nox -l                          # the sessions
    nox -s tests                    # every supported Python that is installed
    nox -s tests-3.13 -- -k jwt     # one Python; arguments after -- go to pytest

A Python that is not installed is skipped, never an error (also with ``CI``
set): ``.ci/run`` runs every one it finds. The README's ``scripts/dev.py test``
remains the main run, with coverage, on the default Python; these sessions
check the other versions and skip coverage.

Interpreters are looked up on ``PATH`` as ``python3.X`` and, because pyenv's
shims fail for versions that are installed but not selected, directly in
pyenv's ``versions`` folder too (``$PYENV_ROOT``, by default ``~/.pyenv``).
On Windows the ``py`` launcher finds them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

PYTHONS = ["3.11", "3.12", "3.13", "3.14"]
ROOT = Path(__file__).resolve().parent

nox.options.sessions = ["tests"]
nox.options.error_on_missing_interpreters = False
nox.options.download_python = "never"  # only the machine's own interpreters
nox.options.reuse_venv = "yes"
nox.options.default_venv_backend = "venv"


def _works(python: Path, version: str) -> bool:
    """Whether *python* runs and is *version* (a pyenv shim for another version fails)."""
    try:
        out = subprocess.run(  # noqa: S603 - a fixed command on a found interpreter
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == version


def _pyenv_candidates(version: str) -> list[Path]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    pattern = re.compile(rf"{re.escape(version)}\.\d+")
    folders = [p for p in (root / "versions").glob(f"{version}.*") if pattern.fullmatch(p.name)]
    folders.sort(key=lambda p: int(p.name.rsplit(".", 1)[1]), reverse=True)  # newest patch first
    return [folder / "bin" / f"python{version}" for folder in folders]


def _find(version: str) -> Path | None:
    """A working ``python{version}``: on ``PATH``, then in pyenv's versions folder."""
    on_path = shutil.which(f"python{version}")
    for candidate in [*([Path(on_path)] if on_path else []), *_pyenv_candidates(version)]:
        if _works(candidate, version):
            return candidate
    return None


def _put_interpreters_on_path() -> None:
    """Put the folder of each working interpreter first on ``PATH``, where nox looks."""
    if sys.platform == "win32":
        return  # nox asks the py launcher
    folders = []
    for version in PYTHONS:
        found = _find(version)
        if found is not None and str(found.parent) not in folders:
            folders.append(str(found.parent))
    if folders:
        os.environ["PATH"] = os.pathsep.join([*folders, os.environ.get("PATH", "")])


def _ignore_envdir() -> None:
    """Keep nox's virtualenvs out of git without touching the project's .gitignore."""
    envdir = ROOT / ".nox"
    envdir.mkdir(exist_ok=True)
    marker = envdir / ".gitignore"
    if not marker.exists():
        marker.write_text("*\n", encoding="utf-8")


_put_interpreters_on_path()
_ignore_envdir()


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite (or the pytest arguments after ``--``) on one Python, on every core."""
    session.install("--disable-pip-version-check", "-q", "-e", ".[dev]")
    session.run(
        "python",
        "-m",
        "pytest",
        "-n",
        "auto",
        "-p",
        "no:cacheprovider",
        *session.posargs,
    )
