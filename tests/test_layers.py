"""The import-linter contracts in pyproject.toml: the package keeps them, and they bite.

``lint-imports`` runs in a subprocess on a copy of the package, so that a
deliberate violation can be planted without touching the real one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_layers(
    folder: Path, plant: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Check the layers contract on a copy of authcore in *folder*.

    *plant* maps a file of the package to a line appended to it (the file is
    created when missing).
    """
    copy = folder / "src" / "authcore"
    shutil.copytree(ROOT / "authcore", copy, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    for relative, line in (plant or {}).items():
        path = copy / relative
        before = path.read_text(encoding="utf-8") if path.exists() else '"""Planted."""\n'
        path.write_text(f"{before}\n{line}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(folder / "src")
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--contract", "layers", "--no-cache"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_package_keeps_its_layers(tmp_path: Path) -> None:
    result = lint_layers(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "message"),
    [
        pytest.param(
            "tokens.py",
            "from authcore.sessions import SessionStore",
            "authcore.tokens is not allowed to import authcore.sessions",
            id="primitive-imports-state",
        ),
        pytest.param(
            "cli/_demo.py",
            "from authcore.testing import FakeClock",
            "authcore.cli is not allowed to import authcore.testing",
            id="edge-imports-edge",
        ),
        pytest.param(
            "jwt/_parsing.py",
            "import authcore.passwords",
            "authcore.jwt is not allowed to import authcore.passwords",
            id="primitive-imports-primitive",
        ),
        pytest.param(
            "_time.py",
            "from authcore.db import metadata",
            "authcore._time is not allowed to import authcore.db",
            id="foundation-imports-state",
        ),
        pytest.param(
            "newthing.py",
            "",
            "- authcore.newthing",
            id="module-without-a-layer",
        ),
    ],
)
def test_a_violation_breaks_the_contract(
    tmp_path: Path, module: str, line: str, message: str
) -> None:
    result = lint_layers(tmp_path, {module: line})
    assert result.returncode == 1, result.stdout + result.stderr
    assert message in result.stdout
    assert "Contracts: 0 kept, 1 broken." in result.stdout


def test_imports_for_type_checkers_only_are_not_dependencies(tmp_path: Path) -> None:
    # As the testing kit's force_login names AuthCore in its annotations.
    line = "if TYPE_CHECKING:\n    from authcore.fastapi import AuthCore"
    result = lint_layers(
        tmp_path, {"testing/_clock.py": f"from typing import TYPE_CHECKING\n{line}"}
    )
    assert result.returncode == 0, result.stdout + result.stderr
