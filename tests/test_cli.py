"""The command line, run in a subprocess as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def authcore(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", "-m", "authcore", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_demo_runs_twice_in_the_current_folder(tmp_path: Path) -> None:
    first = authcore("demo", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    for words in ("TokenReuseError", "revoked 2 session(s)", "<- this device", "deleted"):
        assert words in first.stdout
    assert (tmp_path / "authcore-demo.db").exists()
    second = authcore("demo", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "already registered" in second.stdout
    assert "left from an earlier run" in second.stdout


def test_demo_never_prints_a_whole_token(tmp_path: Path) -> None:
    out = authcore("demo", cwd=tmp_path).stdout
    for word in out.split():
        if word.startswith("token_"):
            assert word.endswith("…")
            assert len(word.rsplit("_", 1)[1]) < 16


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    result = authcore("no-such-command", cwd=tmp_path)
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_version(tmp_path: Path) -> None:
    result = authcore("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("authcore ")


def test_demo_failure_is_one_line(tmp_path: Path) -> None:
    result = authcore("demo", "--database", str(tmp_path / "missing" / "x.db"), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("authcore: error: ")
