"""Every script in examples/ runs and exits 0 with no arguments; the example tests pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .sandbox import LEAN

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert list(tmp_path.iterdir()) == []  # leaves nothing behind


def test_example_test_suite_passes_in_strict_mode(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLES / "test_app_with_authcore.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            *LEAN,
            "-o",
            "asyncio_mode=strict",
            "-W",
            "error",
            f"--rootdir={tmp_path}",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "7 passed" in result.stdout
