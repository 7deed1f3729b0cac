"""Storms of cancelled session operations: what a cancelled caller did not see did not happen.

Hundreds of ``create_session`` and ``rotate`` calls, each cancelled at a random
point (before it starts, after a random number of event-loop iterations, or
by a ``wait_for`` timeout), on a SQLite file, on the suite's PostgreSQL and
on the in-memory fake. Afterwards: every caller that got a token can use it;
every cancelled rotation's caller still holds a working old token and no
successor exists; every cancelled create left nothing behind; no connection
is left checked out; and the next operations succeed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import SessionStore, dispose_engine
from authcore.sessions import BaseSessionStore
from authcore.sessions._table import sessions_table
from authcore.testing import InMemorySessionStore

from .conftest import assert_no_checked_out, new_engine

T = TypeVar("T")
DOES_NOT_HANG = 60.0  # seconds: a generous bound for "finishes", never a timing claim
CANCELLED = (asyncio.CancelledError, TimeoutError)


@pytest_asyncio.fixture(
    params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres), "fake"]
)
async def storm_store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[BaseSessionStore]:
    if request.param == "fake":
        yield InMemorySessionStore()
        return
    engine = await new_engine(request.param, request, tmp_path)
    try:
        yield SessionStore(engine)
    finally:
        assert await dispose_engine(engine)


def _engine(store: BaseSessionStore) -> AsyncEngine | None:
    return store.engine if isinstance(store, SessionStore) else None


async def _rows(store: BaseSessionStore) -> int:
    engine = _engine(store)
    if engine is None:
        assert isinstance(store, InMemorySessionStore)
        return len(store)
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(sessions_table)) or 0)


async def _storm(
    rng: random.Random, calls: list[Callable[[], Awaitable[T]]]
) -> list[T | BaseException]:
    """Run *calls* concurrently, most of them cancelled at a random point."""

    async def cancel_after(task: asyncio.Task[Any], ticks: int) -> None:
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()

    tasks: list[asyncio.Task[Any]] = []
    cancellers = []
    for call in calls:
        how = rng.randrange(4)
        if how == 0:  # a deadline, as a request timeout would set
            task = asyncio.create_task(asyncio.wait_for(call(), rng.uniform(0, 0.03)))
        else:
            task = asyncio.create_task(call())  # type: ignore[arg-type]
            if how == 1:  # before it even starts
                task.cancel()
            elif how == 2:  # after a random number of event-loop iterations
                cancellers.append(cancel_after(task, rng.randrange(1, 120)))
            # how == 3: left alone, competing with the others
        tasks.append(task)
    await asyncio.wait_for(asyncio.gather(*cancellers), DOES_NOT_HANG)
    return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DOES_NOT_HANG)


def _tally(outcomes: list[Any]) -> Counter[str]:
    tally: Counter[str] = Counter()
    for outcome in outcomes:
        if isinstance(outcome, CANCELLED):
            tally["cancelled"] += 1
        elif isinstance(outcome, BaseException):
            raise AssertionError(f"unexpected {outcome!r}") from outcome
        else:
            tally["finished"] += 1
    return tally


async def _the_next_operations_succeed(store: BaseSessionStore) -> None:
    fresh = await asyncio.gather(*(store.create_session("after") for _ in range(20)))
    rotated = await asyncio.gather(*(store.rotate(token) for token in fresh))
    await asyncio.gather(*(store.validate(token) for token in rotated))
    assert len(await store.list_sessions("after")) == 20
    engine = _engine(store)
    if engine is not None:
        assert_no_checked_out(engine)


async def test_cancelled_creates_leave_no_session(storm_store: BaseSessionStore) -> None:
    store = storm_store
    outcomes = await _storm(
        random.Random("creates"),
        [lambda: store.create_session("crowd", ip="192.0.2.1") for _ in range(300)],
    )
    tally = _tally(outcomes)
    print(f"creates: {dict(tally)}")
    assert tally["cancelled"] >= 50, "the storm should cancel many creates"
    assert tally["finished"] >= 30, "and let others finish"
    tokens = [o for o in outcomes if isinstance(o, str)]
    for token in tokens:
        assert (await store.validate(token)).user_id == "crowd"
    # No phantom device: exactly the sessions whose token a caller holds.
    assert len(await store.list_sessions("crowd")) == len(tokens)
    assert await _rows(store) == len(tokens)
    await _the_next_operations_succeed(store)


async def test_cancelled_rotations_keep_the_old_token(storm_store: BaseSessionStore) -> None:
    store = storm_store
    originals = [await store.create_session(f"user{n}") for n in range(200)]
    outcomes = await _storm(
        random.Random("rotations"),
        [lambda token=token: store.rotate(token) for token in originals],  # type: ignore[misc]
    )
    tally = _tally(outcomes)
    print(f"rotations: {dict(tally)}")
    assert tally["cancelled"] >= 40, "the storm should cancel many rotations"
    assert tally["finished"] >= 30, "and let others finish"
    for n, (old, outcome) in enumerate(zip(originals, outcomes, strict=True)):
        held = outcome if isinstance(outcome, str) else old
        session = await store.validate(held)  # the caller's token works
        # Never both, never neither: the family has exactly the held session.
        assert [s.id for s in await store.list_sessions(f"user{n}")] == [session.id]
    assert await _rows(store) == 200 + tally["finished"]
    await _the_next_operations_succeed(store)


async def test_clients_refreshing_under_deadlines_stay_logged_in(
    storm_store: BaseSessionStore,
) -> None:
    """Each client rotates its token again and again until a deadline cuts it off."""
    store = storm_store
    rng = random.Random("refresh loops")
    held = [await store.create_session(f"client{n}") for n in range(100)]

    async def refresh_forever(n: int) -> None:
        while True:
            held[n] = await store.rotate(held[n])
            await asyncio.sleep(0)  # the client's own work between refreshes

    async def cut_off(task: asyncio.Task[None]) -> None:
        if rng.random() < 0.5:
            await asyncio.sleep(rng.uniform(0, 0.05))
        else:
            for _ in range(rng.randrange(1, 400)):
                await asyncio.sleep(0)
        task.cancel()

    tasks = [asyncio.create_task(refresh_forever(n)) for n in range(100)]
    await asyncio.wait_for(asyncio.gather(*(cut_off(task) for task in tasks)), DOES_NOT_HANG)
    outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), DOES_NOT_HANG)
    assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    for n, token in enumerate(held):
        session = await store.validate(token)
        assert [s.id for s in await store.list_sessions(f"client{n}")] == [session.id]
    await _the_next_operations_succeed(store)
