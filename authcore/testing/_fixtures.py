"""The plugin's async fixtures, made with whichever decorator the test run can handle.

Under pytest-asyncio they are ``pytest_asyncio.fixture`` fixtures (so they
work in its strict mode as well as in auto mode); without it they are plain
``pytest.fixture`` async generators, which anyio's pytest plugin runs for
tests marked ``@pytest.mark.anyio``. Nothing here imports SQLAlchemy or
passlib until a fixture is set up.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Callable, Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from authcore.passwords import PasswordHasher
    from authcore.sessions import SessionStore
    from authcore.testing._clock import FakeClock
    from authcore.users import UserStore

__all__ = ["async_fixtures"]

Decorator = Callable[[Callable[..., Any]], Any]


async def authcore_engine() -> AsyncIterator[AsyncEngine]:
    """An in-memory SQLite engine with authcore's schema, disposed after the test."""
    from authcore.db import create_engine, create_schema, dispose_engine

    engine = create_engine("sqlite+aiosqlite://")
    try:
        await create_schema(engine)
        yield engine
    finally:
        await dispose_engine(engine)


async def authcore_store(authcore_engine: AsyncEngine, authcore_clock: FakeClock) -> SessionStore:
    """A :class:`~authcore.SessionStore` on ``authcore_engine``, driven by ``authcore_clock``."""
    from authcore.sessions import SessionStore

    return SessionStore(authcore_engine, clock=authcore_clock)


async def authcore_users(
    authcore_engine: AsyncEngine, authcore_hasher: PasswordHasher, authcore_clock: FakeClock
) -> UserStore:
    """A :class:`~authcore.UserStore` on ``authcore_engine``, fast hasher, ``authcore_clock``."""
    from authcore.users import UserStore

    return UserStore(authcore_engine, hasher=authcore_hasher, clock=authcore_clock)


_PLAIN: dict[str, Callable[..., Any]] = {
    f.__name__: f for f in (authcore_engine, authcore_store, authcore_users)
}


def _copy(function: Callable[..., Any]) -> Callable[..., Any]:
    """A new function object with *function*'s code, so decorating it marks only the copy."""
    assert isinstance(function, types.FunctionType)
    copy = types.FunctionType(
        function.__code__, function.__globals__, function.__name__, function.__defaults__
    )
    copy.__qualname__ = function.__qualname__
    copy.__doc__ = function.__doc__
    copy.__annotations__ = dict(function.__annotations__)
    copy.__kwdefaults__ = function.__kwdefaults__
    return copy


@pytest.hookimpl(wrapper=True, tryfirst=True)
def _leave_anyio_tests_to_anyio(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """``pytest_fixture_setup`` when pytest-asyncio is active: anyio tests keep their loop.

    A test marked ``@pytest.mark.anyio`` gets the unmarked fixture function,
    which pytest-asyncio's strict mode leaves to anyio's plugin, so fixture and
    test share anyio's event loop whichever plugin was registered first.
    """
    plain = _PLAIN.get(fixturedef.argname)
    marked = fixturedef.func
    if (
        plain is None
        or getattr(marked, "__code__", None) is not getattr(plain, "__code__", None)
        or "anyio_backend" not in request.fixturenames
    ):
        return (yield)
    # pytest declares ``func`` final; anyio's and pytest-asyncio's plugins swap it
    # for the duration of the setup in the same way.
    fixturedef.func = plain  # type: ignore[misc]
    try:
        return (yield)
    finally:
        fixturedef.func = marked  # type: ignore[misc]


def async_fixtures(*, for_pytest_asyncio: bool) -> types.ModuleType:
    """A plugin module holding ``authcore_engine``, ``authcore_store`` and ``authcore_users``.

    Args:
        for_pytest_asyncio: Whether pytest-asyncio is active: the fixtures are
            then ``pytest_asyncio.fixture`` fixtures and the module also carries
            the hook that leaves anyio tests' fixtures to anyio; otherwise they
            are plain ``pytest.fixture`` async fixtures.
    """
    fixture: Decorator = pytest.fixture
    if for_pytest_asyncio:
        import pytest_asyncio

        fixture = pytest_asyncio.fixture
    module = types.ModuleType(f"{__name__}.async_fixtures", __doc__)
    for name, function in _PLAIN.items():
        setattr(module, name, fixture(_copy(function)))
    if for_pytest_asyncio:
        module.pytest_fixture_setup = _leave_anyio_tests_to_anyio  # type: ignore[attr-defined]
    return module
