"""Many app processes sharing one database: what each one writes, the others see.

Four real OS processes (``subprocess``), each with its own engine and pool,
take commands on stdin and answer one JSON line each on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from authcore import create_engine, dispose_engine
from authcore.sessions._table import sessions_table

PROCESSES = 4
SESSIONS_EACH = 400

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys
    from sqlalchemy import text
    from authcore import (
        InvalidTokenError, SessionStore, create_engine, create_schema, dispose_engine
    )

    async def main():
        engine = create_engine(sys.argv[1])
        store = SessionStore(engine)

        async def ping():
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        # A warm pool before the parent's go, so the batches really overlap.
        await asyncio.gather(*(ping() for _ in range(5)))
        print(json.dumps("ready"), flush=True)
        loop = asyncio.get_running_loop()
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command, arg = json.loads(line)
            if command == "schema":
                await create_schema(engine)
                answer = True
            elif command == "create":
                answer = await asyncio.gather(*(store.create_session(arg) for _ in range(400)))
            elif command == "validate":
                try:
                    answer = (await store.validate(arg)).user_id
                except InvalidTokenError as exc:
                    answer = type(exc).__name__
            elif command == "revoke":
                answer = await store.revoke(arg)
            elif command == "revoke_all":
                answer = await store.revoke_all(arg)
            else:
                break
            print(json.dumps(answer), flush=True)
        print(json.dumps(await dispose_engine(engine)), flush=True)

    asyncio.run(main())
    """
)


class Worker:
    """One app process: send a command, read its one-line JSON answer."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-W", "error", "-c", WORKER, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def read(self) -> Any:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=60)
            assert self.proc.stderr is not None
            pytest.fail(f"worker died ({self.proc.returncode}):\n{self.proc.stderr.read()}")
        return json.loads(line)

    def send(self, command: str, arg: object = None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([command, arg]) + "\n")
        self.proc.stdin.flush()

    def ask(self, command: str, arg: object = None) -> Any:
        self.send(command, arg)
        return self.read()

    def quit(self) -> None:
        """Stop the worker; it must exit 0 after a clean disposal, with nothing on stderr."""
        assert self.ask("quit") is True
        _, stderr = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, stderr
        assert stderr == ""

    def kill(self) -> None:
        """Make sure the process is gone and its pipes are closed."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=60)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def start_workers(url: str) -> Iterator[list[Worker]]:
    started = [Worker(url) for _ in range(PROCESSES)]
    try:
        # Everyone is connected before anyone starts: what follows runs at the same time.
        assert [w.read() for w in started] == ["ready"] * PROCESSES
        yield started
    finally:
        for worker in started:
            worker.kill()


def all_at_once(workers: list[Worker], command: str, arg: object = None) -> list[Any]:
    for worker in workers:
        worker.send(command, arg)
    with ThreadPoolExecutor(PROCESSES) as pool:
        return list(pool.map(Worker.read, workers))


@pytest.fixture
def workers(postgres_database: str) -> Iterator[list[Worker]]:
    yield from start_workers(postgres_database)


@pytest.mark.postgres
async def test_four_processes_share_one_database(
    workers: list[Worker], postgres_database: str
) -> None:
    # A fresh database: every process creates the schema at the same moment, as
    # app workers running the FastAPI lifespan do.
    assert all_at_once(workers, "schema") == [True] * PROCESSES
    batches: list[list[str]] = all_at_once(workers, "create", "crowd")

    tokens = [token for batch in batches for token in batch]
    assert [len(batch) for batch in batches] == [SESSIONS_EACH] * PROCESSES
    assert len(set(tokens)) == PROCESSES * SESSIONS_EACH
    engine = create_engine(postgres_database)
    try:
        async with engine.connect() as conn:
            stored = await conn.scalar(
                select(func.count())
                .select_from(sessions_table)
                .where(sessions_table.c.user_id == "crowd")
            )
        assert stored == PROCESSES * SESSIONS_EACH
    finally:
        assert await dispose_engine(engine)

    # Every process sees every other process's sessions...
    for n, worker in enumerate(workers):
        assert worker.ask("validate", batches[(n + 1) % PROCESSES][n]) == "crowd"
    # ...and a revoke in one is seen by the very next validate in any other.
    for n, revoker in enumerate(workers):
        token = batches[n][-1]
        others = [w for w in workers if w is not revoker]
        assert [w.ask("validate", token) for w in others] == ["crowd"] * (PROCESSES - 1)
        assert revoker.ask("revoke", token) is True
        assert [w.ask("validate", token) for w in others] == ["TokenRevokedError"] * (PROCESSES - 1)
    # The same for revoking everything at once.
    assert workers[0].ask("revoke_all", "crowd") == PROCESSES * SESSIONS_EACH - PROCESSES
    assert workers[3].ask("validate", batches[2][0]) == "TokenRevokedError"
    for worker in workers:
        worker.quit()
