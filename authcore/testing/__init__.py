"""The testing kit: fakes and fixtures for the test suites of apps that use authcore.

* :class:`FakeClock`: a clock that moves only when told to.
* :class:`InMemorySessionStore`: the session store contract with no database.
* :class:`InMemoryUserStore`: the user store contract with no database.
* :func:`fast_hasher`: a :class:`~authcore.PasswordHasher` at bcrypt's minimum cost.
* A pytest plugin (registered automatically when authcore is installed) with
  the fixtures ``authcore_clock``, ``authcore_engine``, ``authcore_store``,
  ``authcore_users``, ``authcore_hasher`` and ``authcore_sqlite_path``;
  none is autouse, so suites that do not ask for them see no change.
"""

from authcore.passwords import PasswordHasher
from authcore.testing._clock import FakeClock
from authcore.testing._memory import InMemorySessionStore
from authcore.testing._users import InMemoryUserStore

__all__ = ["FakeClock", "InMemorySessionStore", "InMemoryUserStore", "fast_hasher"]


def fast_hasher() -> PasswordHasher:
    """A :class:`~authcore.PasswordHasher` at bcrypt's minimum cost (4 rounds), for tests only.

    Hashes it makes verify under a production hasher, which reports them as
    needing an update; never use it outside tests.
    """
    return PasswordHasher(rounds=4)
