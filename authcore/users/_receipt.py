"""Which password a login verified, so that a session is kept only while that password stands.

Internal to authcore (the FastAPI login uses it); not part of the public API.

A password change sets the new hash, then revokes the user's sessions. A
login that verified the old password just before the change (bcrypt takes a
quarter of a second) could create its session just after the revocation, and
the old password would hold a live session. So the login, once its session
exists, re-reads the password and keeps the session only if it is still the
one that was verified: either the revocation came after the session and
ended it, or the re-read sees the new hash.

How the login learns which hash :meth:`~authcore.BaseUserStore.authenticate`
verified, without changing its signature: the caller runs it inside
:func:`watch_logins`, and ``authenticate`` notes a fingerprint of the hash it
verified (the fresh one, when it upgraded an outdated hash) in the
:class:`LoginReceipt`, with a way to re-read it. A context variable carries
the receipt, so subclasses that override ``authenticate`` and call ``super()``
keep working, and an injected store that is no ``BaseUserStore`` notes
nothing: its logins are not re-checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["LoginReceipt", "fingerprint", "note_verified", "watch_logins"]

Reread = Callable[[str], Awaitable[str | None]]
"""Given a user id: the fingerprint of the active user's current hash, or ``None``."""

_receipt: ContextVar[LoginReceipt | None] = ContextVar("authcore_login_receipt", default=None)


def fingerprint(password_hash: str) -> str:
    """A digest standing for a stored password hash, so the hash never leaves the store."""
    return hashlib.sha256(f"authcore-login\x00{password_hash}".encode()).hexdigest()


class LoginReceipt:
    """What ``authenticate`` noted while it was watched: whose password, which hash."""

    __slots__ = ("_noted",)

    def __init__(self) -> None:
        self._noted: tuple[str, str, Reread] | None = None

    def __repr__(self) -> str:  # the fingerprint stays out of any log
        return f"LoginReceipt(noted={self._noted is not None})"

    def note(self, user_id: str, stamp: str, reread: Reread) -> None:
        """Record a successful verification (the last one wins)."""
        self._noted = (user_id, stamp, reread)

    async def still_current(self, user_id: str) -> bool:
        """Whether *user_id* is active and still has the password that was verified.

        ``True`` when nothing was noted for *user_id* (a store that does not
        take part): there is nothing to re-check.

        Raises:
            StorageError: the database failed.
        """
        if self._noted is None or self._noted[0] != user_id:
            return True
        _, stamp, reread = self._noted
        return await reread(user_id) == stamp


@contextmanager
def watch_logins() -> Iterator[LoginReceipt]:
    """Within the block (and tasks started in it), ``authenticate`` notes into the receipt."""
    receipt = LoginReceipt()
    token = _receipt.set(receipt)
    try:
        yield receipt
    finally:
        _receipt.reset(token)


def note_verified(user_id: str, password_hash: str, reread: Reread) -> None:
    """Note that *password_hash* of *user_id* was verified, if a login is watching."""
    receipt = _receipt.get()
    if receipt is not None:
        receipt.note(user_id, fingerprint(password_hash), reread)
