"""What only the SQL store can get wrong: I/O, files, processes, cancellation, drivers."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import (
    SessionStore,
    StorageError,
    TokenReuseError,
    create_schema,
    hash_token,
)
from authcore.sessions._table import sessions_table

from .conftest import SQL_BACKENDS, assert_no_checked_out

pytestmark = pytest.mark.parametrize("sql_engine", SQL_BACKENDS, indirect=True)


class IOCounter:
    """Counts statements and pool checkouts on an engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.statements = 0
        self.checkouts = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._on_statement)
        event.listen(engine.sync_engine.pool, "checkout", self._on_checkout)

    def _on_statement(self, *_: Any) -> None:
        self.statements += 1

    def _on_checkout(self, *_: Any) -> None:
        self.checkouts += 1


MALFORMED = ["garbage", "token_u_01_" + "a" * 64, "token_u_1_" + "a" * 64 + "\n", "x" * 10_000]


async def test_malformed_tokens_never_touch_the_database(sql_engine: AsyncEngine) -> None:
    store = SessionStore(sql_engine)
    counter = IOCounter(sql_engine)
    for bad in MALFORMED:
        with pytest.raises(Exception, match="malformed"):
            await store.validate(bad)
        with pytest.raises(Exception, match="malformed"):
            await store.rotate(bad)
        assert await store.get_session(bad) is None
        assert await store.revoke(bad) is False
        with pytest.raises(Exception, match="malformed"):
            await store.revoke_all("u", except_token=bad)
    assert (counter.statements, counter.checkouts) == (0, 0)
    # The counter does count: a well-formed token costs one checkout.
    await store.get_session(await SessionStore(sql_engine).create_session("u"))
    assert counter.checkouts >= 1


async def test_validate_is_one_read_and_a_throttled_write(sql_engine: AsyncEngine) -> None:
    store = SessionStore(sql_engine)
    token = await store.create_session("u")
    counter = IOCounter(sql_engine)
    for _ in range(5):
        await store.validate(token)
    assert counter.statements == 5  # one SELECT each, no touch within touch_interval


async def test_concurrent_rotations_of_one_token(sql_engine: AsyncEngine) -> None:
    store = SessionStore(sql_engine)
    token = await store.create_session("u")
    results = await asyncio.gather(store.rotate(token), store.rotate(token), return_exceptions=True)
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], TokenReuseError)
    # A replayed refresh token is treated as theft: the winner's family is revoked too.
    assert await store.get_session(winners[0]) is None


async def test_cancellation_leaves_all_or_nothing(sql_engine: AsyncEngine) -> None:
    store = SessionStore(sql_engine)
    rng = random.Random(1234)
    originals = [await store.create_session(f"user{n}") for n in range(60)]

    async def cancel_soon(task: asyncio.Task[Any], ticks: int) -> None:
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()

    rotations = [asyncio.create_task(store.rotate(token)) for token in originals]
    creations = [asyncio.create_task(store.create_session("creator")) for _ in range(60)]
    revocations = [asyncio.create_task(store.revoke_all(f"user{n}")) for n in range(0, 60, 7)]
    tasks = rotations + creations + revocations
    await asyncio.gather(*(cancel_soon(task, rng.randrange(0, 40)) for task in tasks))
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert any(isinstance(o, asyncio.CancelledError) for o in outcomes)
    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert_no_checked_out(sql_engine)

    revoked_users = {f"user{n}" for n in range(0, 60, 7)}
    for n, (token, outcome) in enumerate(zip(originals, rotations, strict=True)):
        user = f"user{n}"
        active = await store.list_sessions(user)
        old = await store.get_session(token)
        if user in revoked_users:
            assert len(active) <= 1
            continue
        # Never both, never neither.
        assert len(active) == 1, (user, outcome)
        if old is not None:
            assert active[0].id == old.id
    created = await store.list_sessions("creator")
    finished = [t for t in creations if not t.cancelled()]
    assert len(created) == len(finished)  # a cancelled create left nothing
    for n, (token, outcome) in enumerate(zip(originals, rotations, strict=True)):
        if f"user{n}" not in revoked_users and outcome.cancelled():
            assert await store.get_session(token) is not None  # the old token still works
    # The pool still works for the next hundred operations.
    for _ in range(100):
        await store.validate(await store.create_session("after"))
    assert_no_checked_out(sql_engine)


async def test_two_thousand_concurrent_creates(sql_engine: AsyncEngine) -> None:
    store = SessionStore(sql_engine)
    tokens = await asyncio.gather(*(store.create_session("crowd") for _ in range(2_000)))
    assert len(set(tokens)) == 2_000
    async with sql_engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(sessions_table))
    assert count == 2_000


async def test_storage_errors_chain_the_cause(sql_engine: AsyncEngine) -> None:
    store = SessionStore(sql_engine)
    token = await store.create_session("u")
    async with sql_engine.begin() as conn:
        await conn.run_sync(sessions_table.drop)
    try:
        with pytest.raises(StorageError) as info:
            await store.validate(token)
        assert info.value.__cause__ is not None
        assert token not in str(info.value)
        assert hash_token(token) not in str(info.value)
        with pytest.raises(StorageError):
            await store.create_session("u")
        with pytest.raises(StorageError):
            await store.get_session(token)
    finally:
        await create_schema(sql_engine)
