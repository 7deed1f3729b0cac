"""Engine creation, schema and disposal."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from authcore import (
    InvalidTokenError,
    SessionStore,
    StorageError,
    create_engine,
    create_schema,
    dispose_engine,
    managed_engine,
    metadata,
)
from authcore.db._errors import caller_cancelled, run_to_completion


async def _pragma(engine: object, name: str) -> object:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return (await conn.execute(text(f"PRAGMA {name}"))).scalar()


async def test_sqlite_file_settings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'a.db'}")
    try:
        assert await _pragma(engine, "journal_mode") == "wal"
        assert await _pragma(engine, "busy_timeout") >= 5000  # type: ignore[operator]
        assert await _pragma(engine, "foreign_keys") == 1
    finally:
        assert await dispose_engine(engine)


async def test_default_url_is_a_file_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = create_engine()
    try:
        await create_schema(engine)
        assert (tmp_path / "authcore.db").exists()
    finally:
        await dispose_engine(engine)


@pytest.mark.parametrize("url", ["sqlite+aiosqlite://", "sqlite+aiosqlite:///:memory:"])
async def test_memory_database_is_shared_and_survives_disposal(url: str) -> None:
    engine = create_engine(url)
    other = create_engine(url)
    try:
        await create_schema(engine)
        store = SessionStore(engine)
        token = await store.create_session("u")
        assert await dispose_engine(engine)
        # Used again after disposal: new connections see the same database.
        assert (await store.validate(token)).user_id == "u"
        # Another engine on the same URL has a database of its own.
        async with other.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert tables == []
    finally:
        await dispose_engine(engine)
        await dispose_engine(other)


async def test_create_schema_is_idempotent(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    try:
        await create_schema(engine)
        await create_schema(engine)
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
        assert sorted(tables) == sorted(metadata.tables)
    finally:
        await dispose_engine(engine)


def test_metadata_has_a_naming_convention() -> None:
    assert metadata.naming_convention["pk"] == "pk_%(table_name)s"
    names = {index.name for table in metadata.tables.values() for index in table.indexes}
    assert "ix_authcore_sessions_user_id" in names


# -- the schema: every table, whatever was imported first ----------------------------

ALL_TABLES = [
    "authcore_login_failures",
    "authcore_sessions",
    "authcore_user_tokens",
    "authcore_users",
]
SCHEMA_PROBE = """
import asyncio, sys
{imports}
from sqlalchemy import inspect
print("authcore.sessions" in sys.modules)

async def main():
    engine = create_engine("sqlite+aiosqlite://")
    await create_schema(engine)
    async with engine.connect() as conn:
        print(sorted(await conn.run_sync(lambda c: inspect(c).get_table_names())))
    await dispose_engine(engine)

asyncio.run(main())
"""


def run_fresh(code: str, *flags: str) -> list[str]:
    """Run *code* in a fresh interpreter; its output lines."""
    done = subprocess.run(
        [sys.executable, *flags, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.parametrize(
    ("imports", "stores_loaded"),
    [
        ("from authcore.db import create_engine, create_schema, dispose_engine", False),
        ("from authcore import create_engine, create_schema, dispose_engine", False),
        ("import authcore.throttle\nfrom authcore.db import *", True),
        ("from authcore.db import *\nfrom authcore.sessions import SessionStore", True),
    ],
)
def test_create_schema_makes_every_table_whatever_was_imported_first(
    imports: str, stores_loaded: bool
) -> None:
    lines = run_fresh(SCHEMA_PROBE.format(imports=imports), "-W", "error")
    assert lines == [str(stores_loaded), str(ALL_TABLES)]


@pytest.mark.parametrize(
    "imports",
    [
        "from authcore.db import metadata",
        "import authcore; metadata = authcore.metadata",
        "import authcore.db; metadata = authcore.db.metadata",
        "from authcore import metadata",
    ],
)
def test_metadata_holds_every_table_on_first_use(imports: str) -> None:
    code = f"{imports}\nprint(sorted(metadata.tables))"
    assert run_fresh(code, "-W", "error") == [str(ALL_TABLES)]


def test_create_schema_knows_every_module_that_defines_a_table() -> None:
    # Every module of the package imported: the tables defined anywhere are the
    # ones that create_schema loads by name (a new table module must be listed).
    code = (
        "import importlib, pkgutil, authcore\n"
        "from authcore.db._schema import metadata\n"
        "for info in pkgutil.walk_packages(authcore.__path__, 'authcore.'):\n"
        "    if info.name != 'authcore.__main__':\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(metadata.tables))"
    )
    loaded = "from authcore.db._schema import load_tables\nprint(sorted(load_tables().tables))"
    assert run_fresh(code) == run_fresh(loaded) == [str(ALL_TABLES)]


def _aiosqlite_workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "_connection_worker" in t.name}


async def test_unreachable_database_is_a_storage_error(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    others = _aiosqlite_workers()  # other tests' engines still open in this process
    try:
        with pytest.raises(StorageError) as info:
            await create_schema(engine)
        assert info.value.__cause__ is not None
        # aiosqlite's worker thread is gone before the error reaches us, so it can
        # never reply to an event loop that has closed in the meantime.
        assert _aiosqlite_workers() - others == set()
    finally:
        await dispose_engine(engine)


async def test_managed_engine_disposes_on_error(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    engines = []

    async def failing_app() -> None:
        async with managed_engine(url) as engine:
            engines.append(engine)
            await SessionStore(engine).create_session("u")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_app()
    pool = engines[0].sync_engine.pool
    assert (pool.checkedin(), pool.checkedout()) == (0, 0)


async def test_managed_engine_disposes_on_cancellation(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'f.db'}"
    entered = asyncio.Event()
    engines = []

    async def user() -> None:
        async with managed_engine(url) as engine:
            engines.append(engine)
            await SessionStore(engine).create_session("u")
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(user())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    pool = engines[0].sync_engine.pool
    assert (pool.checkedin(), pool.checkedout()) == (0, 0)


async def test_managed_engine_without_schema() -> None:
    async with (
        managed_engine("sqlite+aiosqlite://", create_schema=False) as engine,
        engine.connect() as conn,
    ):
        assert await conn.run_sync(lambda c: inspect(c).get_table_names()) == []


async def test_run_to_completion_finishes_before_the_cancellation() -> None:
    steps: list[str] = []
    release = asyncio.Event()

    async def work() -> str:
        steps.append("started")
        await release.wait()
        steps.append("finished")
        return "done"

    task = asyncio.create_task(run_to_completion(work()))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    assert not task.done()  # still waiting for the work
    task.cancel()  # a second cancellation does not abandon it either
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps == ["started", "finished"]


async def test_run_to_completion_returns_and_raises() -> None:
    async def ok() -> int:
        return 7

    async def bad() -> int:
        raise KeyError("x")

    assert await run_to_completion(ok()) == 7
    with pytest.raises(KeyError):
        await run_to_completion(bad())


async def test_run_to_completion_under_a_timeout() -> None:
    release = asyncio.Event()

    async def work() -> None:
        await release.wait()

    async def release_soon() -> None:
        await asyncio.sleep(0.05)
        release.set()

    helper = asyncio.create_task(release_soon())
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await run_to_completion(work())
    assert release.is_set()  # the timeout waited for the work to finish
    await helper


async def test_the_work_sees_its_callers_cancellation() -> None:
    release = asyncio.Event()
    seen: list[bool] = []

    async def work() -> str:
        seen.append(caller_cancelled())
        await release.wait()
        seen.append(caller_cancelled())
        return "result"

    task = asyncio.create_task(run_to_completion(work()))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.01)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [False, True]
    assert caller_cancelled() is False  # outside run_to_completion


async def test_a_cancellation_as_the_work_finishes_is_not_swallowed() -> None:
    """Cancelled after the work finished but before the caller resumed: still cancelled."""
    finished = False
    undone: list[str] = []

    async def work() -> str:
        nonlocal finished
        await asyncio.sleep(0)
        finished = True
        return "token"

    async def undo(result: str) -> None:
        await asyncio.sleep(0)
        undone.append(result)

    task = asyncio.create_task(run_to_completion(work(), undo=undo))
    while not finished:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert undone == ["token"]  # the result nobody received was taken back


async def test_undo_runs_only_for_a_cancelled_caller_and_a_result() -> None:
    undone: list[object] = []

    async def undo(result: object) -> None:
        undone.append(result)

    async def ok() -> int:
        return 1

    async def gives_up() -> int:
        await asyncio.sleep(0)
        raise asyncio.CancelledError  # rolled back by itself: nothing to undo

    assert await run_to_completion(ok(), undo=undo) == 1
    task = asyncio.create_task(run_to_completion(gives_up(), undo=undo))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert undone == []


async def test_a_failing_undo_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "secret-result"

    async def undo(result: str) -> None:
        raise OSError(f"disk on fire while undoing {result}")

    task = asyncio.create_task(run_to_completion(work(), undo=undo))
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "could not undo" in caplog.text
    assert "secret-result" not in caplog.text


EXIT_SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from authcore import SessionStore, create_engine, create_schema

    engine = create_engine(sys.argv[1])

    async def main():
        await create_schema(engine)
        await SessionStore(engine).create_session("u")
        # no dispose_engine: the interpreter must still exit promptly

    asyncio.run(main())
    print("bye")
    """
)


@pytest.mark.parametrize("in_memory", [True, False])
def test_interpreter_exits_without_disposal(tmp_path: Path, in_memory: bool) -> None:
    url = "sqlite+aiosqlite://" if in_memory else f"sqlite+aiosqlite:///{tmp_path / 'g.db'}"
    done = subprocess.run(
        [sys.executable, "-c", EXIT_SCRIPT, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "bye"


# -- no secret in any log line --------------------------------------------------------

SENTINEL_PASSWORD = "Sentinel-pw-93f1c2d7e"


@pytest.mark.parametrize(
    "backend",
    ["sqlite-memory", "sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def test_debug_logging_shows_no_secret(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Root logger at DEBUG (every library's every line): no token, digest, password or hash."""
    import logging

    from sqlalchemy import select

    from authcore import SessionStore, UserStore, hash_token
    from authcore.testing import fast_hasher
    from authcore.users._table import users_table

    from .conftest import new_engine

    caplog.set_level(logging.DEBUG)  # before the engine exists: SQLAlchemy decides then
    caplog.set_level(logging.DEBUG, logger="sqlalchemy")  # it holds itself at WARNING
    engine = await new_engine(backend, request, tmp_path)
    try:
        users = UserStore(engine, hasher=fast_hasher())
        store = SessionStore(engine)
        user = await users.create_user("sentinel-user", SENTINEL_PASSWORD)
        assert await users.authenticate("sentinel-user", SENTINEL_PASSWORD) is not None
        await users.set_password(user.id, SENTINEL_PASSWORD + "-2")
        token = await store.create_session(user.id)
        await store.validate(token)
        rotated = await store.rotate(token)
        with pytest.raises(InvalidTokenError):
            await store.validate(token)  # reuse: the family is revoked
        await store.revoke(rotated)
        await store.purge_expired()
        async with engine.connect() as conn:
            stored_hash = await conn.scalar(select(users_table.c.password_hash))
    finally:
        assert await dispose_engine(engine)
    assert stored_hash
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "aiosqlite" in logged or backend == "postgres"  # DEBUG really was on
    names = {r.name for r in caplog.records}
    assert "sqlalchemy.engine.Engine" in names, names
    secrets = {
        "password": SENTINEL_PASSWORD,
        "password hash": stored_hash,
        "token": token,
        "digest": hash_token(token),
        "new token": rotated,
        "new digest": hash_token(rotated),
        "hash prefix": "$bcrypt-sha256$",
    }
    leaked = [name for name, secret in secrets.items() if secret in logged]
    assert leaked == []
