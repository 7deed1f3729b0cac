"""authcore's pytest plugin, tested the way pytest plugins are: in a pytester sandbox.

The plugin is loaded into every pytest run of every project that has authcore
installed, so these tests also run it where pytest-asyncio cannot be imported,
under anyio's plugin, and check that loading it imports nothing heavy.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .sandbox import LEAN

INI = (
    "[pytest]\nasyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function\n"
    "filterwarnings = error\n"
)
NO_ASYNCIO_INI = "[pytest]\nfilterwarnings = error\n"

HEAVY = ("sqlalchemy", "aiosqlite", "passlib", "bcrypt", "jose")

# A `pytest_asyncio` package, first on PYTHONPATH, that fails to import as a
# missing one does (pytest itself is told `-p no:asyncio`, so it does not load
# the entry point it still finds in the environment's metadata).
SHADOW = "raise ModuleNotFoundError(\"No module named 'pytest_asyncio'\", name='pytest_asyncio')\n"


def run(
    pytester: pytest.Pytester, source: str | dict[str, str], *args: str, mode: str = "auto"
) -> pytest.RunResult:
    """Run *source* (one test module, or several by name) in a pytest subprocess."""
    pytester.makeini(INI.format(mode=mode))
    if isinstance(source, str):
        pytester.makepyfile(source)
    else:
        pytester.makepyfile(**source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *LEAN, *args)


def run_without_pytest_asyncio(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str, *args: str
) -> pytest.RunResult:
    """Run *source* where ``import pytest_asyncio`` fails, as in a project without it."""
    shadow = pytester.mkdir("shadow")
    (shadow / "pytest_asyncio").mkdir()
    (shadow / "pytest_asyncio" / "__init__.py").write_text(SHADOW, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    pytester.makeini(NO_ASYNCIO_INI)
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", *LEAN, *args)


def test_plugin_is_registered_and_inert(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        def test_plain(request):
            assert "authcore_engine" not in request.fixturenames
        """,
        "--fixtures",
    )
    out = result.stdout.str()
    for name in (
        "authcore_clock",
        "authcore_engine",
        "authcore_store",
        "authcore_users",
        "authcore_hasher",
        "authcore_sqlite_path",
    ):
        assert name in out
    result = run(
        pytester,
        "def test_plain(request):\n"
        "    assert not [f for f in request.fixturenames if f.startswith('authcore')]\n",
    )
    result.assert_outcomes(passed=1)


def test_fixtures_work_together(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        from datetime import timedelta
        import pytest
        from authcore import SessionStore, TokenExpiredError

        async def test_store_and_clock(authcore_store, authcore_clock):
            token = await authcore_store.create_session("alice")
            assert (await authcore_store.validate(token)).user_id == "alice"
            authcore_clock.advance(days=14)
            with pytest.raises(TokenExpiredError):
                await authcore_store.validate(token)

        async def test_users(authcore_users, authcore_hasher):
            user = await authcore_users.create_user("alice", "plum-kettle-88-orbit")
            assert authcore_users.hasher is authcore_hasher
            logged_in = await authcore_users.authenticate("ALICE", "plum-kettle-88-orbit")
            assert logged_in.id == user.id

        async def test_engine_is_fresh_per_test(authcore_engine):
            store = SessionStore(authcore_engine)
            assert await store.list_sessions("alice") == []
        """,
    )
    result.assert_outcomes(passed=3)


def test_sqlite_path_is_unique_and_removed_after_disposal(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import os
        import pytest
        from authcore import SessionStore, create_engine, create_schema, dispose_engine

        SEEN = []

        @pytest.fixture
        async def file_store(authcore_sqlite_path):
            engine = create_engine(f"sqlite+aiosqlite:///{authcore_sqlite_path}")
            await create_schema(engine)
            yield SessionStore(engine)
            await dispose_engine(engine)

        @pytest.mark.parametrize("n", range(3))
        async def test_uses_a_file(file_store, authcore_sqlite_path, n):
            assert not any(os.path.exists(p) for p in SEEN)  # earlier files are gone
            assert authcore_sqlite_path not in SEEN
            SEEN.append(authcore_sqlite_path)
            await file_store.create_session("u")
            assert authcore_sqlite_path.exists()
            assert os.environ.get("PYTEST_XDIST_WORKER", "main") in authcore_sqlite_path.name
        """,
    )
    result.assert_outcomes(passed=3)


def test_fixtures_under_xdist(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    source = "\n".join(
        f"""
async def test_{n}(authcore_store, authcore_sqlite_path):
    assert authcore_sqlite_path.name.startswith("authcore-gw")
    assert await authcore_store.create_session("u{n}")
"""
        for n in range(8)
    )
    result = run(pytester, source, "-n", "2")
    result.assert_outcomes(passed=8)


# -- a project without pytest-asyncio -------------------------------------------

SYNC_PROJECT = """
import importlib

import pytest


def test_pytest_asyncio_cannot_be_imported():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pytest_asyncio")


def test_plain(authcore_clock, authcore_sqlite_path):
    assert authcore_clock().year == 2030
    assert not authcore_sqlite_path.exists()
"""


def test_a_sync_project_without_pytest_asyncio_passes(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_without_pytest_asyncio(pytester, monkeypatch, SYNC_PROJECT)
    result.assert_outcomes(passed=2)
    assert result.ret == 0


def test_without_any_async_plugin_only_the_tests_using_async_fixtures_fail(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pytest-asyncio, no anyio: collection works; pytest refuses the async fixture."""
    source = SYNC_PROJECT + "\n\nasync def test_async(authcore_store):\n    pass\n"
    result = run_without_pytest_asyncio(pytester, monkeypatch, source, "-p", "no:anyio")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*requested an async fixture 'authcore_engine'*"])


# -- what loading the plugin imports ----------------------------------------------

REPORT_MODULES = """
import sys

HEAVY = {heavy!r}


def pytest_collection_finish(session):
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
    plugin = "authcore.testing.plugin" in sys.modules
    print("MODULES", repr({{"plugin": plugin, "heavy": loaded}}))
"""


def loaded_modules(result: pytest.RunResult) -> dict[str, object]:
    for line in result.outlines:
        if line.startswith("MODULES "):
            return dict(ast.literal_eval(line.removeprefix("MODULES ")))
    raise AssertionError(result.stdout.str())


@pytest.mark.parametrize("pytest_asyncio", ["active", "blocked"])
def test_loading_the_plugin_imports_nothing_heavy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, pytest_asyncio: str
) -> None:
    pytester.makeconftest(REPORT_MODULES.format(heavy=HEAVY))
    source = "def test_one():\n    pass\n"
    if pytest_asyncio == "active":
        result = run(pytester, source, "--co", "-s")
    else:
        result = run_without_pytest_asyncio(pytester, monkeypatch, source, "--co", "-s")
    assert result.ret == 0, result.stdout.str()
    assert loaded_modules(result) == {"plugin": True, "heavy": []}


# -- pytest-asyncio: strict and auto mode ---------------------------------------

ASYNC_PROJECT = """
import pytest
from authcore import SessionStore

pytestmark = pytest.mark.asyncio  # required in strict mode, harmless in auto mode


async def test_store(authcore_store, authcore_clock):
    token = await authcore_store.create_session("alice")
    assert (await authcore_store.validate(token)).user_id == "alice"
    authcore_clock.advance(days=14)
    assert await authcore_store.get_session(token) is None  # the store reads the clock


async def test_users(authcore_users):
    user = await authcore_users.create_user("alice", "plum-kettle-88-orbit")
    assert (await authcore_users.authenticate("alice", "plum-kettle-88-orbit")).id == user.id


async def test_engine(authcore_engine):
    assert await SessionStore(authcore_engine).list_sessions("alice") == []
"""


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_async_fixtures_under_pytest_asyncio(pytester: pytest.Pytester, mode: str) -> None:
    result = run(pytester, ASYNC_PROJECT, mode=mode)
    result.assert_outcomes(passed=3)


def test_strict_mode_without_the_mark_is_pytest_asyncios_usual_refusal(
    pytester: pytest.Pytester,
) -> None:
    """The fixtures change nothing about strict mode: an unmarked async test is not run."""
    source = ASYNC_PROJECT.replace("pytestmark = pytest.mark.asyncio", "")
    result = run(pytester, source, mode="strict")
    assert result.ret != 0
    assert "passed" not in result.stdout.str()


# -- anyio -----------------------------------------------------------------------

ANYIO_PROJECT = """
import asyncio

import pytest
from authcore import SessionStore

pytestmark = pytest.mark.anyio

LOOPS = []


@pytest.fixture
def anyio_backend():
    return "asyncio"  # SQLAlchemy's asyncio extension needs asyncio, not trio


@pytest.fixture
def loop_spy(monkeypatch):
    \"\"\"Record the event loop each engine is created on.\"\"\"
    import authcore.db

    create = authcore.db.create_engine

    def spying(*args, **kwargs):
        LOOPS.append(asyncio.get_running_loop())
        return create(*args, **kwargs)

    monkeypatch.setattr(authcore.db, "create_engine", spying)
    LOOPS.clear()


async def test_store(loop_spy, authcore_store, authcore_clock):
    token = await authcore_store.create_session("alice")
    assert (await authcore_store.validate(token)).user_id == "alice"
    assert LOOPS == [asyncio.get_running_loop()]  # the fixture ran on the test's loop


async def test_users(authcore_users, authcore_engine):
    user = await authcore_users.create_user("alice", "plum-kettle-88-orbit")
    assert (await authcore_users.authenticate("alice", "plum-kettle-88-orbit")).id == user.id
    assert await SessionStore(authcore_engine).list_sessions(user.id) == []
"""


def test_an_anyio_project_without_pytest_asyncio(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run_without_pytest_asyncio(pytester, monkeypatch, ANYIO_PROJECT)
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("anyio_first", [False, True])
def test_anyio_tests_beside_pytest_asyncio_in_strict_mode(
    pytester: pytest.Pytester, anyio_first: bool
) -> None:
    """Both plugins active: anyio tests get fixtures on anyio's loop, whatever the order.

    ``-p anyio`` registers anyio's plugin before pytest-asyncio's, which puts
    pytest-asyncio's fixture hook first: it would take the fixtures for its
    own loop if the plugin did not hand them to anyio.
    """
    args = ("-p", "anyio") if anyio_first else ()
    source = {"test_anyio": ANYIO_PROJECT, "test_asyncio": ASYNC_PROJECT}
    result = run(pytester, source, *args, mode="strict")
    result.assert_outcomes(passed=5)


# -- the documentation's test modules ----------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_test_modules_in_the_testing_docs_pass(pytester: pytest.Pytester, mode: str) -> None:
    """Each Python block of docs/testing.md is a complete test module; run them as tests."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)
    assert len(blocks) >= 5
    modules = {f"test_docs_block_{n}": block for n, block in enumerate(blocks)}
    result = run(pytester, modules, mode=mode)
    outcomes = result.parseoutcomes()
    assert result.ret == 0, result.stdout.str()
    assert set(outcomes) == {"passed"}, outcomes
    assert outcomes["passed"] >= 9


# -- the installed wheel in a fresh virtualenv ------------------------------------


def check_run(args: list[str], cwd: Path, timeout: float = 600) -> str:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_a_fresh_virtualenv_with_the_wheel_and_pytest_only(tmp_path: Path) -> None:
    """``pip install authcore pytest``, then ``pytest``: the plugin loads, the test passes.

    The same run with ``-p no:authcore`` is the baseline a start-up time
    comparison uses; here both only have to succeed (no timing assertion).
    uv (a dev dependency) builds the wheel with the project's backend, makes the
    virtualenv and installs into it, in a few seconds less than build, venv and
    pip; ``scripts/dev.py package`` installs the wheel with pip.
    """
    dist = tmp_path / "dist"
    uv = [sys.executable, "-m", "uv"]
    check_run([*uv, "build", "--wheel", "-q", "-o", str(dist), str(ROOT)], ROOT)
    (wheel,) = dist.glob("*.whl")
    check_run([*uv, "venv", "-q", "--python", sys.executable, str(tmp_path / "venv")], tmp_path)
    bin_dir = "Scripts" if os.name == "nt" else "bin"
    python = str(tmp_path / "venv" / bin_dir / ("python.exe" if os.name == "nt" else "python"))
    check_run([*uv, "pip", "install", "-q", "--python", python, str(wheel), "pytest"], tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    # Only pytest, authcore and their dependencies: no pytest-asyncio, no anyio.
    missing = subprocess.run(
        [python, "-c", "import pytest_asyncio"], capture_output=True, text=True, check=False
    )
    assert "ModuleNotFoundError" in missing.stderr
    pytest_cmd = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    assert "1 passed" in check_run(pytest_cmd, project)
    assert "1 passed" in check_run([*pytest_cmd, "-p", "no:authcore"], project)
    assert "authcore_engine" in check_run([*pytest_cmd, "--fixtures"], project)
    without = check_run([*pytest_cmd, "--fixtures", "-p", "no:authcore"], project)
    assert "authcore_engine" not in without
    code = (
        "import sys, authcore.testing.plugin\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    assert check_run([python, "-c", code], project).strip() == "[]"
