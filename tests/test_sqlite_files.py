"""SQLite files: what is on disk, and several processes sharing one database."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import func, select

from authcore import SessionStore, create_engine, create_schema, dispose_engine, hash_token
from authcore.sessions._table import sessions_table

from .test_postgres_scale import PROCESSES, all_at_once, start_workers


async def test_raw_token_is_not_in_the_file_or_its_wal(tmp_path: Path) -> None:
    database = tmp_path / "disk.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await create_schema(engine)
        store = SessionStore(engine)
        tokens = [await store.create_session("alice", data={"k": "v"}) for _ in range(20)]
        tokens.append(await store.rotate(tokens[0]))
        wal = database.with_name(database.name + "-wal")
        assert wal.exists()
        assert wal.stat().st_size > 0
        blobs = b"".join(p.read_bytes() for p in tmp_path.glob("disk.db*"))
    finally:
        await dispose_engine(engine)
    for token in tokens:
        assert token.encode() not in blobs
        assert token.rsplit("_", 1)[1].encode() not in blobs  # not even the random part
    assert hash_token(tokens[1]).encode() in blobs


WORKER = textwrap.dedent(
    """
    import asyncio, sys, time
    from pathlib import Path
    from authcore import SessionStore, create_engine, dispose_engine

    async def main(url, go, count):
        engine = create_engine(url)
        store = SessionStore(engine)
        while not Path(go).exists():
            time.sleep(0.01)
        try:
            sem = asyncio.Semaphore(16)
            async def one():
                async with sem:
                    return await store.create_session("shared-user")
            tokens = await asyncio.gather(*(one() for _ in range(count)))
            print("\\n".join(tokens))
        finally:
            await dispose_engine(engine)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


async def test_four_processes_create_sessions_in_one_file(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    url = f"sqlite+aiosqlite:///{database}"
    engine = create_engine(url)
    await create_schema(engine)
    go = tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(go), "400"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    go.touch()  # start together
    outputs = [worker.communicate(timeout=120) for worker in workers]
    try:
        for worker, (_, stderr) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, stderr
            assert stderr == ""
        tokens = [t for stdout, _ in outputs for t in stdout.split()]
        assert len(tokens) == 1_600
        assert len(set(tokens)) == 1_600
        async with engine.connect() as conn:
            count = await conn.scalar(select(func.count()).select_from(sessions_table))
        assert count == 1_600
        store = SessionStore(engine)
        for token in tokens[::97]:
            assert (await store.validate(token)).user_id == "shared-user"
    finally:
        await dispose_engine(engine)


def test_four_processes_create_a_sqlite_schema_at_once(tmp_path: Path) -> None:
    for workers in start_workers(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"):
        assert all_at_once(workers, "schema") == [True] * PROCESSES
        assert workers[0].ask("validate", "token_x_1_" + "0" * 64) == "InvalidTokenError"
        for worker in workers:
            worker.quit()
