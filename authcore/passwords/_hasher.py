"""``PasswordHasher``: bcrypt behind an async API that never blocks the event loop.

The hashing runs on the worker pool of :mod:`authcore.passwords._pool`; passlib
and bcrypt are reached through :mod:`authcore.passwords._bcrypt`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Final

from authcore.errors import PasswordPolicyError
from authcore.passwords._bcrypt import (
    MAX_ROUNDS,
    MIN_ROUNDS,
    SCHEMES,
    ensure_backend,
    make_context,
    parse_hash,
    truncated_by_bcrypt,
)
from authcore.passwords._pool import Pace, is_full, run_in_pool

__all__ = ["PasswordHasher"]

# Named for the package: where its warnings have always been logged.
_log = logging.getLogger("authcore.passwords")

_MAX_PASSWORD_CHARS: Final = 1024
_DOS_COST_FLOOR: Final = 16


def _check_password(password: object) -> bytes:
    """Return the UTF-8 bytes of *password*, or raise ``PasswordPolicyError``."""
    if not isinstance(password, str):
        raise PasswordPolicyError(f"password must be a str, got {type(password).__name__}")
    if not password:
        raise PasswordPolicyError("password must not be empty", reasons=("too_short",))
    if len(password) > _MAX_PASSWORD_CHARS:
        raise PasswordPolicyError(
            f"password is longer than {_MAX_PASSWORD_CHARS} characters", reasons=("too_long",)
        )
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:
        pass  # raised below, outside the handler, so the password is not chained
    raise PasswordPolicyError("password is not valid Unicode text (it has a lone surrogate)")


class PasswordHasher:
    """Hashes and verifies passwords with bcrypt, off the event loop.

    Args:
        rounds: bcrypt's log2 work factor for new hashes, 4 to 31.
        scheme: ``"bcrypt_sha256"`` (the default: passlib's HMAC-SHA256 then
            bcrypt, so long passwords are fully significant) or ``"bcrypt"``
            (plain ``$2b$`` hashes, for other systems that read them).
        max_queue_wait: Load shedding: when the hashes of the process that
            already wait for a worker thread would keep a new one waiting
            longer than this (estimated from the running mean of recent hash
            times of this hasher), :meth:`hash`, :meth:`verify` and :meth:`verify_and_update`
            raise :class:`~authcore.errors.HasherBusyError` at once instead of
            queueing. ``None`` turns this bound off.
        max_waiting: Also shed when this many hashes wait; ``None`` (the
            default): no bound on the count.

    Guaranteed:
        * Passwords that are empty, not a ``str``, longer than 1024 characters
          or not encodable as UTF-8 raise ``PasswordPolicyError`` before any
          hashing, from every method that takes a password.
        * Nothing is silently truncated (see :mod:`authcore.passwords`).
        * Verification never raises for a bad hash; it returns ``False``. A
          stored hash whose cost is above ``max(16, rounds)`` is refused at once
          (logged on ``authcore.passwords``) instead of being computed.
        * Passwords and hashes never appear in messages, logs or the ``repr``.

    Raises:
        TypeError: *rounds* is not an ``int`` or *scheme* is not a ``str``.
        ValueError: *rounds* is outside 4..31, *scheme* is unknown,
            *max_waiting* is below 1 or *max_queue_wait* is not positive.
        DependencyVersionError: the installed bcrypt is outside ``>=4.1,<5``.

    Example::

        hasher = PasswordHasher()
        stored = await hasher.hash("correct horse")
        ok, new_hash = await hasher.verify_and_update("correct horse", stored)
    """

    __slots__ = (
        "_context",
        "_max_cost",
        "_max_queue_wait",
        "_max_waiting",
        "_pace",
        "_rounds",
        "_scheme",
    )

    def __init__(
        self,
        *,
        rounds: int = 12,
        scheme: str = "bcrypt_sha256",
        max_queue_wait: timedelta | None = timedelta(seconds=1),
        max_waiting: int | None = None,
    ) -> None:
        if not isinstance(rounds, int) or isinstance(rounds, bool):
            raise TypeError(f"rounds must be an int, got {type(rounds).__name__}")
        if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
            raise ValueError(f"rounds must be between {MIN_ROUNDS} and {MAX_ROUNDS}")
        if not isinstance(scheme, str):
            raise TypeError(f"scheme must be a str, got {type(scheme).__name__}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        if max_waiting is not None:
            if not isinstance(max_waiting, int) or isinstance(max_waiting, bool):
                raise TypeError(f"max_waiting must be an int, got {type(max_waiting).__name__}")
            if max_waiting < 1:
                raise ValueError("max_waiting must be at least 1")
        if max_queue_wait is not None:
            if not isinstance(max_queue_wait, timedelta):
                raise TypeError("max_queue_wait must be a timedelta or None")
            if max_queue_wait <= timedelta(0):
                raise ValueError("max_queue_wait must be positive")
        self._max_waiting = max_waiting
        self._pace = Pace()
        self._max_queue_wait = None if max_queue_wait is None else max_queue_wait.total_seconds()
        self._rounds = rounds
        self._scheme = scheme
        self._max_cost = max(_DOS_COST_FLOOR, rounds)
        self._context: Any = make_context(scheme, rounds)

    def __repr__(self) -> str:
        return f"PasswordHasher(scheme={self._scheme!r}, rounds={self._rounds})"

    async def hash(self, password: str) -> str:
        """Return a new salted hash of *password* in the configured scheme.

        Raises:
            PasswordPolicyError: the password is refused (see the class docstring),
                or, with ``scheme="bcrypt"``, it is over 72 UTF-8 bytes or has a NUL.
            HasherBusyError: *max_waiting* hashes already wait (nothing was hashed).
        """
        self._check_hashable(password)
        return await run_in_pool(
            lambda: self._hash_now(password), self._pace, self._max_waiting, self._max_queue_wait
        )

    def hash_sync(self, password: str) -> str:
        """Blocking twin of :meth:`hash`, for code with no event loop."""
        self._check_hashable(password)
        return self._hash_now(password)

    async def verify(self, password: str, hashed: str) -> bool:
        """Return whether *password* matches *hashed*.

        ``False``, never an exception, for a wrong password and for a hash that is
        malformed, of an unknown scheme, not a ``str``, too costly, or plain
        bcrypt while the password is over 72 UTF-8 bytes or has a NUL.

        Raises:
            PasswordPolicyError: the password itself is refused.
            HasherBusyError: *max_waiting* hashes already wait (nothing was computed).
        """
        if not self._worth_computing(password, hashed):
            return False
        return await run_in_pool(
            lambda: self._verify_now(password, hashed),
            self._pace,
            self._max_waiting,
            self._max_queue_wait,
        )

    def verify_sync(self, password: str, hashed: str) -> bool:
        """Blocking twin of :meth:`verify`, for code with no event loop."""
        return self._worth_computing(password, hashed) and self._verify_now(password, hashed)

    async def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """Verify *password* and return a replacement hash when *hashed* is outdated.

        Returns:
            ``(matched, new_hash)``: *new_hash* is a fresh hash in the configured
            scheme and rounds when the password matched and :meth:`needs_update`
            is true (and the password can be hashed without truncation), else ``None``.

        Raises:
            PasswordPolicyError: the password itself is refused.
            HasherBusyError: *max_waiting* hashes already wait (nothing was computed).
        """
        if not self._worth_computing(password, hashed):
            return False, None
        return await run_in_pool(
            lambda: self._verify_and_update_now(password, hashed),
            self._pace,
            self._max_waiting,
            self._max_queue_wait,
        )

    def busy(self) -> bool:
        """Whether a hash started now would raise :class:`~authcore.errors.HasherBusyError`.

        A cheap check (no hashing, no I/O) for work that would be wasted on
        a request whose password could not be checked anyway.
        """
        return is_full(self._max_waiting, self._max_queue_wait)

    def needs_update(self, hashed: str) -> bool:
        """Return whether *hashed* should be replaced: another scheme, fewer rounds.

        ``False`` for anything that is not a hash this hasher can verify; never raises.
        """
        if parse_hash(hashed) is None:
            return False
        try:
            return bool(self._context.needs_update(hashed))
        except (ValueError, TypeError):
            return False

    def _check_hashable(self, password: object) -> None:
        data = _check_password(password)
        if self._scheme == "bcrypt" and truncated_by_bcrypt(data):
            raise PasswordPolicyError(
                "plain bcrypt would silently truncate this password (over 72 UTF-8 bytes "
                "or a NUL character); use scheme='bcrypt_sha256' or a shorter password"
            )

    def _worth_computing(self, password: object, hashed: object) -> bool:
        data = _check_password(password)
        scheme, cost = parse_hash(hashed) or ("", 0)
        if cost > self._max_cost:
            _log.warning(
                "refused to verify a password against a bcrypt hash of cost %d (the limit "
                "is %d): computing it would take minutes",
                cost,
                self._max_cost,
            )
            return False
        return scheme == "bcrypt_sha256" or (scheme == "bcrypt" and not truncated_by_bcrypt(data))

    def _hash_now(self, password: str) -> str:
        ensure_backend(self._context)
        return str(self._context.hash(password))

    def _verify_now(self, password: str, hashed: str) -> bool:
        ensure_backend(self._context)
        try:
            return bool(self._context.verify(password, hashed))
        except (ValueError, TypeError):
            return False

    def _verify_and_update_now(self, password: str, hashed: str) -> tuple[bool, str | None]:
        if not self._verify_now(password, hashed):
            return False, None
        # Plain bcrypt cannot hold every password: then the stored hash is kept.
        if not self.needs_update(hashed) or (
            self._scheme == "bcrypt" and truncated_by_bcrypt(password.encode())
        ):
            return True, None
        return True, self._hash_now(password)
