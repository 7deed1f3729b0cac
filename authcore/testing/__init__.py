"""The testing kit: fakes, fixtures and helpers for the test suites of apps that use authcore.

* :class:`FakeClock`: a clock that moves only when told to.
* :class:`InMemorySessionStore`: the session store contract with no database.
* :class:`InMemoryUserStore`: the user store contract with no database.
* :func:`fast_hasher`: a :class:`~authcore.PasswordHasher` at bcrypt's minimum cost.
* :func:`force_login` and :func:`async_force_login`: log a user in on a test
  client without a password.
* A pytest plugin (registered automatically when authcore is installed) with
  the fixtures ``authcore_clock``, ``authcore_engine``, ``authcore_store``,
  ``authcore_users``, ``authcore_hasher`` and ``authcore_sqlite_path``; none
  is autouse, and loading it imports neither SQLAlchemy nor passlib.

The names are imported on first use (PEP 562), so ``import authcore.testing``
(which the pytest plugin does in every pytest run) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from authcore.passwords import PasswordHasher
    from authcore.testing._clock import FakeClock
    from authcore.testing._login import async_force_login, force_login
    from authcore.testing._memory import InMemorySessionStore
    from authcore.testing._users import InMemoryUserStore

__all__ = [
    "FakeClock",
    "InMemorySessionStore",
    "InMemoryUserStore",
    "async_force_login",
    "fast_hasher",
    "force_login",
]

_LAZY = {
    "FakeClock": "authcore.testing._clock",
    "InMemorySessionStore": "authcore.testing._memory",
    "InMemoryUserStore": "authcore.testing._users",
    "async_force_login": "authcore.testing._login",
    "force_login": "authcore.testing._login",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'authcore.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def fast_hasher() -> PasswordHasher:
    """A :class:`~authcore.PasswordHasher` at bcrypt's minimum cost (4 rounds), for tests only.

    Hashes it makes verify under a production hasher, which reports them as
    needing an update; never use it outside tests.
    """
    from authcore.passwords import PasswordHasher

    return PasswordHasher(rounds=4)
