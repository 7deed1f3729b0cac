"""``authcore bench``: its measurements, its floor (``--compare``), the command; never timings."""

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
from authcore.cli import main
from authcore.cli._bench import run_bench
from authcore.cli._floor import (
    measure_mint,
    measure_raw_insert,
    measure_raw_select,
    measure_token_recipe,
    mint_and_digest,
    raw_insert,
    raw_select,
    seed_sessions,
    token_recipe,
)
from authcore.cli._measure import Measurement, percentile
from authcore.sessions._table import sessions_table

from .test_cli import authcore, clean_env, sqlite_url

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


def test_measurement_figures() -> None:
    m = Measurement("op", 4, 2.0, (0.001, 0.002, 0.003, 0.004))
    assert m.ops_per_second == 2.0
    assert m.p50_ms == pytest.approx(2.0)
    assert m.p99_ms == pytest.approx(4.0)
    assert Measurement("op", 1, 0.0, (0.0,)).ops_per_second == float("inf")
    assert percentile([], 50) == 0.0
    assert percentile([5.0, 1.0, 3.0], 0) == 1.0
    assert percentile([5.0, 1.0, 3.0], 100) == 5.0


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


async def test_run_bench_without_compare_measures_authcore_only() -> None:
    report = await run_bench(sessions=3, tokens=3, hashes=1, rounds=4)
    assert report.temporary
    assert [(m.name, m.count) for m in report.results] == [
        ("generate_token", 3),
        ("create_session", 3),
        ("validate", 3),
        ("hash_password", 1),
    ]
    assert report.table().splitlines()[4].split()[:2] == ["generate_token", "3"]


# -- the command, in a subprocess as a user runs it (and in-process for --compare) ---------


def test_bench_json_on_a_temporary_database(tmp_path: Path) -> None:
    env = clean_env(AUTHCORE_DATABASE_URL=sqlite_url(tmp_path / "configured.db"))
    args = ("--sessions", "20", "--tokens", "50", "--hashes", "2", "--rounds", "4", "--json")
    result = authcore("--allow-test-rounds", "bench", *args, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["temporary"] is True
    names = [(r["name"], r["count"]) for r in report["results"]]
    assert names == [
        ("generate_token", 50),
        ("create_session", 20),
        ("validate", 20),
        ("hash_password", 2),
    ]
    for row in report["results"]:
        assert row["ops_per_second"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
    assert report["results"][3]["note"] == "bcrypt_sha256, 4 rounds"
    assert list(tmp_path.iterdir()) == []  # the configured database was not touched


def test_bench_on_a_given_database_cleans_up(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "bench.db")
    args = ("--sessions", "10", "--tokens", "10", "--hashes", "1", "--concurrency", "3")
    result = authcore("bench", "--database-url", url, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"authcore bench on {url}\n")
    assert "create_session        10" in result.stdout
    assert "concurrency 3" in result.stdout
    assert "bcrypt_sha256, 12 rounds" in result.stdout
    stats = json.loads(authcore("stats", "--json", "--database-url", url, cwd=tmp_path).stdout)
    assert stats["sessions"] == 0


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
