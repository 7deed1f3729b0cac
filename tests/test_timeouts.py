"""A hung test fails fast, with every thread's traceback, under the suite's own settings.

The settings live in pyproject.toml (``timeout``, ``timeout_method = "thread"``,
``faulthandler_timeout``). Each test here copies that file into a pytester sandbox,
shortens the two limits with ``-o`` and runs a deliberately hanging test in a
subprocess: the run must end well within a generous bound, fail, and show where
each thread was stuck.
"""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path

import pytest

from .sandbox import LEAN

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# The main thread waits on a worker thread that waits forever: two stuck threads.
HANGING = """
import threading


def wait_forever_in_worker(never: threading.Event) -> None:
    never.wait()


def test_hangs() -> None:
    never = threading.Event()
    worker = threading.Thread(target=wait_forever_in_worker, args=(never,), name="stuck-worker")
    worker.start()
    worker.join()
"""

# Far above the 3 s limit below, far below the 25 minutes a real hang once took.
BOUND = 60.0


def ini_options() -> dict[str, object]:
    with PYPROJECT.open("rb") as f:
        options: dict[str, object] = tomllib.load(f)["tool"]["pytest"]["ini_options"]
    return options


def test_the_suite_is_configured_to_fail_fast() -> None:
    options = ini_options()
    assert options["timeout_method"] == "thread"  # "signal" can hang in the livelock itself
    timeout, dump = options["timeout"], options["faulthandler_timeout"]
    assert isinstance(timeout, int)
    assert isinstance(dump, int)
    assert 0 < dump < timeout <= 180  # tracebacks first, then the kill, well inside 3 minutes


def run_hanging_test(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, float]:
    pytester.makefile(".toml", pyproject=PYPROJECT.read_text(encoding="utf-8"))
    pytester.makepyfile(test_hang=HANGING)
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        "test_hang.py",
        "-p",
        "no:cacheprovider",
        *LEAN,
        "-o",
        "timeout=3",
        "-o",
        "faulthandler_timeout=1",
        *args,
        timeout=BOUND,
    )
    return result, time.monotonic() - started


def assert_every_thread_shown(output: str) -> None:
    # faulthandler's dump (written from C): both threads, innermost frame first.
    assert "Timeout (0:00:01)!" in output
    assert output.count("most recent call first") >= 2
    # pytest-timeout's dump, then it ends the process.
    assert "Timeout (3.0s)" in output or "+++ Timeout +++" in output
    assert "stuck-worker" in output
    assert "wait_forever_in_worker" in output
    assert "test_hangs" in output


def test_a_hanging_test_ends_with_every_threads_traceback(pytester: pytest.Pytester) -> None:
    result, elapsed = run_hanging_test(pytester)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert elapsed < BOUND
    assert_every_thread_shown(output)


@pytest.mark.skipif(sys.platform == "win32", reason="xdist's crash report differs on Windows")
def test_a_hanging_test_under_xdist_fails_the_run(pytester: pytest.Pytester) -> None:
    result, elapsed = run_hanging_test(pytester, "-n", "1")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret != 0
    assert elapsed < BOUND
    assert "worker 'gw0' crashed while running 'test_hang.py::test_hangs'" in output
    # pytest-timeout's dump stays in the dead worker; faulthandler's reaches the terminal.
    assert "Timeout (0:00:01)!" in output
    assert "wait_forever_in_worker" in output
    assert "test_hangs" in output
