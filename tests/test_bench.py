"""``authcore._bench`` and ``authcore bench --compare``: correctness, never timings."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore import SessionStore, create_engine, create_schema, dispose_engine, hash_token
from authcore._bench import (
    measure_mint,
    measure_raw_insert,
    measure_raw_select,
    measure_token_recipe,
    mint_and_digest,
    raw_insert,
    raw_select,
    run_bench,
    seed_sessions,
    token_recipe,
)
from authcore.cli import main
from authcore.db._schema import sessions_table

HEX64 = re.compile(r"[0-9a-f]{64}")


@pytest_asyncio.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bench.db'}")
    await create_schema(engine)
    try:
        yield engine
    finally:
        assert await dispose_engine(engine)


async def _rows(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(sessions_table)) or 0)


def test_token_recipe_and_authcore_do_the_same_job() -> None:
    assert HEX64.fullmatch(token_recipe())
    assert HEX64.fullmatch(mint_and_digest())
    assert token_recipe() != token_recipe()
    for measurement in (measure_mint(5), measure_token_recipe(5)):
        assert measurement.count == 5
        assert len(measurement.latencies) == 5


async def test_raw_insert_stores_the_row_create_session_would(engine: AsyncEngine) -> None:
    token = await raw_insert(engine, "alice")
    row = await raw_select(engine, token)
    assert row is not None
    assert row.user_id == "alice"
    assert row.ip == "192.0.2.1"
    assert row.family_id == row.id
    # The store reads it as one of its own: the floor writes the same shape.
    session = await SessionStore(engine).validate(token)
    assert (session.user_id, session.data, session.user_agent) == ("alice", {}, "authcore bench")
    assert await raw_select(engine, token + "0") is None


async def test_raw_measurements(engine: AsyncEngine) -> None:
    inserted, tokens = await measure_raw_insert(engine, "bob", 6, concurrency=3)
    assert (inserted.name, inserted.count, inserted.concurrency) == ("raw insert", 6, 3)
    assert len(set(tokens)) == 6
    selected = await measure_raw_select(engine, tokens, concurrency=2)
    assert (selected.name, selected.count) == ("raw select", 6)
    assert await _rows(engine) == 6


async def test_seed_sessions_in_batches(engine: AsyncEngine) -> None:
    kept = await seed_sessions(engine, 25, users=4, keep=5, batch=10)
    assert await _rows(engine) == 25
    assert len(kept) == 5
    store = SessionStore(engine)
    users = {(await store.validate(token)).user_id for token in kept}
    assert users <= {f"bench-seed-{n}" for n in range(4)}
    async with engine.connect() as conn:
        stored = set((await conn.execute(select(sessions_table.c.token_hash))).scalars())
    assert {hash_token(token) for token in kept} <= stored


async def test_seeded_expired_sessions_are_purged(engine: AsyncEngine) -> None:
    assert await seed_sessions(engine, 30, expired=True, batch=7) == []
    store = SessionStore(engine)
    assert await store.count_purgeable() == 30
    assert await store.purge_expired() == 30
    assert await _rows(engine) == 0


async def test_run_bench_compare_adds_the_floor() -> None:
    report = await run_bench(sessions=4, tokens=5, hashes=1, rounds=4, compare=True)
    names = [m.name for m in report.results]
    assert names == [
        "generate_token",
        "mint+digest",
        "token recipe",
        "create_session",
        "raw insert",
        "validate",
        "raw select",
        "hash_password",
    ]
    notes = {m.name: m.note for m in report.results}
    assert re.fullmatch(r"[0-9.]+x token recipe", notes["mint+digest"])
    assert re.fullmatch(r"[0-9.]+x raw insert", notes["create_session"])
    assert re.fullmatch(r"[0-9.]+x raw select", notes["validate"])
    assert "raw select" in report.table()


async def test_run_bench_without_compare_is_unchanged() -> None:
    report = await run_bench(sessions=2, tokens=2, hashes=1, rounds=4)
    assert [m.name for m in report.results] == [
        "generate_token",
        "create_session",
        "validate",
        "hash_password",
    ]


def test_cli_bench_compare_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHCORE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite+aiosqlite:///{tmp_path / 'given.db'}"
    args = ["--allow-test-rounds", "bench", "--database-url", url, "--compare", "--json"]
    args += ["--sessions", "3", "--tokens", "3", "--hashes", "1", "--rounds", "4"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in report["results"]}
    assert rows["raw insert"]["count"] == rows["raw select"]["count"] == 3
    assert rows["validate"]["note"].endswith("x raw select")
