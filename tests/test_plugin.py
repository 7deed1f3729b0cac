"""authcore's pytest plugin, tested the way pytest plugins are: in a pytester sandbox."""

from __future__ import annotations

import pytest

INI = (
    "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    "filterwarnings = error\n"
)


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


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
            user = await authcore_users.create_user("alice", "s3cret-pass")
            assert authcore_users.hasher is authcore_hasher
            logged_in = await authcore_users.authenticate("ALICE", "s3cret-pass")
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
