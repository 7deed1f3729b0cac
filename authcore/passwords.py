"""Password hashing with bcrypt behind an async API that never blocks the event loop.

passlib and bcrypt enter authcore through this module only. bcrypt runs in a
process-wide pool with one worker thread per CPU, so a login flood queues up
instead of starving the event loop, and work whose caller was cancelled while
it waited in the queue never runs. The queue is bounded (load shedding): when
the hashes already waiting for a thread would keep a new one waiting longer
than *max_queue_wait* (estimated from how long recent hashes took), or when
*max_waiting* hashes wait, a new one raises
:class:`~authcore.errors.HasherBusyError` at once instead of queueing behind
them, so an overloaded server answers quickly rather than minutes later.

Nothing is ever silently truncated. The default ``bcrypt_sha256`` scheme
pre-hashes with HMAC-SHA256, so every character of a password up to 1024
characters counts. Plain ``$2a$``/``$2b$``/``$2y$`` hashes only cover the first
72 UTF-8 bytes (and stop at a NUL), so a longer password, or one with a NUL,
never matches such a hash, and a ``scheme="bcrypt"`` hasher refuses to create one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from importlib import metadata
from typing import Any, Final, TypeVar

from authcore.errors import DependencyVersionError, HasherBusyError, PasswordPolicyError
from authcore.policy import PasswordPolicy

with warnings.catch_warnings():
    # passlib 1.7.4 imports the stdlib ``crypt`` module, deprecated since Python 3.11.
    warnings.filterwarnings("ignore", "'crypt' is deprecated", DeprecationWarning)
    from passlib.context import CryptContext

__all__ = ["PasswordHasher", "PasswordPolicy"]

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

_MAX_PASSWORD_CHARS: Final = 1024
_BCRYPT_MAX_BYTES: Final = 72
_MIN_ROUNDS: Final = 4
_MAX_ROUNDS: Final = 31
_DOS_COST_FLOOR: Final = 16
_SCHEMES: Final = ("bcrypt_sha256", "bcrypt")
_BCRYPT_FIX: Final = 'pip install "bcrypt>=4.1,<5"'
_SMOOTHING: Final = 0.2  # weight of the latest hash in the running mean of hash times

# The only hash formats accepted: canonical ones (passlib would warn about unused
# bits set in the last salt or digest character). The cost is read here, so
# passlib never sees a hash whose cost was not checked first.
_SALT: Final = r"[./A-Za-z0-9]{21}[.Oeu]"
_DIGEST: Final = r"[./A-Za-z0-9]{30}[.CGKOSWaeimquy26]"
_HASH_RE: Final = re.compile(
    rf"\$2[aby]\$(?P<bcrypt_cost>[0-9]{{2}})\${_SALT}{_DIGEST}"
    rf"|\$bcrypt-sha256\$(?:v=2,t=2b,r=|2[ab],)(?P<sha256_cost>[1-9][0-9]?)\${_SALT}\${_DIGEST}"
)


def _parse_hash(hashed: object) -> tuple[str, int] | None:
    """Return ``(scheme, bcrypt cost)`` of a hash authcore accepts, else ``None``."""
    match = _HASH_RE.fullmatch(hashed) if isinstance(hashed, str) else None
    if match is None:
        return None
    scheme = "bcrypt" if match["bcrypt_cost"] is not None else "bcrypt_sha256"
    cost = int(match["bcrypt_cost"] or match["sha256_cost"])
    return (scheme, cost) if _MIN_ROUNDS <= cost <= _MAX_ROUNDS else None


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


def _truncated_by_bcrypt(data: bytes) -> bool:
    return len(data) > _BCRYPT_MAX_BYTES or b"\x00" in data


def _check_bcrypt_version(version: str) -> None:
    """Raise ``DependencyVersionError`` unless *version* is within ``>=4.1,<5``."""
    match = re.match(r"([0-9]+)\.([0-9]+)", version)
    if match is None or not (4, 1) <= (int(match[1]), int(match[2])) < (5, 0):
        raise DependencyVersionError(
            f"authcore needs bcrypt>=4.1,<5 but bcrypt {version[:40]!r} is installed "
            f"(passlib does not work with bcrypt 5); fix it with: {_BCRYPT_FIX}"
        )


def _installed_bcrypt_version() -> str:
    try:
        return metadata.version("bcrypt")
    except metadata.PackageNotFoundError:
        raise DependencyVersionError(f"authcore needs bcrypt: {_BCRYPT_FIX}") from None


class _DropPasslibNoise(logging.Filter):
    """Drops passlib's harmless traceback about bcrypt>=4.1 lacking ``__about__``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "(trapped) error reading bcrypt version"


_passlib_bcrypt_logger = logging.getLogger("passlib.handlers.bcrypt")
if not any(type(f).__name__ == "_DropPasslibNoise" for f in _passlib_bcrypt_logger.filters):
    _passlib_bcrypt_logger.addFilter(_DropPasslibNoise())

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_backend_lock = threading.Lock()
_backend_loaded = False
_waiting_lock = threading.Lock()
_waiting = 0  # jobs handed to the pool that no worker thread has started yet
_queued_seconds = 0.0  # what the waiting jobs are expected to take, in all


def _worker_count() -> int:
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0)) or 1
    return os.cpu_count() or 1


def _get_executor() -> ThreadPoolExecutor:
    """The process-wide bcrypt pool, created on first use with one thread per CPU."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(_worker_count(), thread_name_prefix="authcore-bcrypt")
        return _executor


def _forget_state_after_fork() -> None:
    # The parent's worker threads do not exist in a forked child.
    global _executor, _executor_lock, _backend_lock, _waiting_lock, _waiting, _queued_seconds
    _executor, _executor_lock, _backend_lock = None, threading.Lock(), threading.Lock()
    _waiting_lock, _waiting, _queued_seconds = threading.Lock(), 0, 0.0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_state_after_fork)


def _ensure_backend(context: Any) -> None:
    """Load passlib's bcrypt backend once; its loader is not safe to race."""
    global _backend_loaded
    if not _backend_loaded:
        with _backend_lock:
            if not _backend_loaded:
                context.handler("bcrypt").get_backend()
                _backend_loaded = True


def waiting_hashes() -> int:
    """How many hashes of this process are queued and not yet started."""
    return _waiting


class _Pace:
    """How long one hasher's jobs take: a running mean, learnt as they run."""

    __slots__ = ("mean",)

    def __init__(self) -> None:
        self.mean = 0.0

    def learn(self, took: float) -> None:
        with _waiting_lock:
            mean = self.mean
            self.mean = took if mean == 0.0 else mean + _SMOOTHING * (took - mean)


class _Job:
    """One queued job and its expected cost; *claimed* once started or given up."""

    __slots__ = ("claimed", "cost")

    def __init__(self, cost: float) -> None:
        self.claimed = False
        self.cost = cost

    def claim(self) -> bool:
        """Whether this call took the job out of the queue (only the first one does)."""
        global _waiting, _queued_seconds
        with _waiting_lock:
            if self.claimed:
                return False
            self.claimed = True
            _waiting -= 1
            _queued_seconds = max(_queued_seconds - self.cost, 0.0) if _waiting else 0.0
            return True


async def _in_worker(
    call: Callable[[], _T], pace: _Pace, max_waiting: int | None, max_queue_wait: float | None
) -> _T:
    """Run *call* on the pool, unless the queue is full (``HasherBusyError``, at once).

    Full: *max_waiting* jobs wait, or the jobs waiting would hold this one
    back for more than *max_queue_wait* seconds (each job counted at its
    hasher's mean time, spread over the worker threads). A caller cancelled
    while its job waits takes it out of the queue: it never runs.
    """
    global _waiting, _queued_seconds
    with _waiting_lock:
        full = max_waiting is not None and _waiting >= max_waiting
        ahead = _queued_seconds / _worker_count()
        if full or (max_queue_wait is not None and ahead > max_queue_wait):
            raise HasherBusyError(timedelta(seconds=max(1.0, ahead)))
        _waiting += 1
        _queued_seconds += pace.mean
        job = _Job(pace.mean)

    def run() -> _T | None:
        if not job.claim():  # the caller gave up while the job waited
            return None
        started = time.perf_counter()
        try:
            return call()
        finally:
            pace.learn(time.perf_counter() - started)

    try:
        result = await asyncio.get_running_loop().run_in_executor(_get_executor(), run)
    finally:
        job.claim()  # a no-op when a worker started it
    return result  # type: ignore[return-value]  # None only for a cancelled caller


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
        * Nothing is silently truncated (see the module docstring).
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
        if not _MIN_ROUNDS <= rounds <= _MAX_ROUNDS:
            raise ValueError(f"rounds must be between {_MIN_ROUNDS} and {_MAX_ROUNDS}")
        if not isinstance(scheme, str):
            raise TypeError(f"scheme must be a str, got {type(scheme).__name__}")
        if scheme not in _SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(_SCHEMES)}, got {scheme!r}")
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
        _check_bcrypt_version(_installed_bcrypt_version())
        self._max_waiting = max_waiting
        self._pace = _Pace()
        self._max_queue_wait = None if max_queue_wait is None else max_queue_wait.total_seconds()
        self._rounds = rounds
        self._scheme = scheme
        self._max_cost = max(_DOS_COST_FLOOR, rounds)
        keys = ("default_rounds", "min_rounds")
        settings = {f"{name}__{key}": rounds for name in _SCHEMES for key in keys}
        self._context: Any = CryptContext(
            schemes=[scheme, *(s for s in _SCHEMES if s != scheme)],
            default=scheme,
            deprecated="auto",
            **settings,
        )

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
        return await _in_worker(
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
        return await _in_worker(
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
        return await _in_worker(
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
        with _waiting_lock:
            if self._max_waiting is not None and _waiting >= self._max_waiting:
                return True
            ahead = _queued_seconds / _worker_count()
            return self._max_queue_wait is not None and ahead > self._max_queue_wait

    def needs_update(self, hashed: str) -> bool:
        """Return whether *hashed* should be replaced: another scheme, fewer rounds.

        ``False`` for anything that is not a hash this hasher can verify; never raises.
        """
        if _parse_hash(hashed) is None:
            return False
        try:
            return bool(self._context.needs_update(hashed))
        except (ValueError, TypeError):
            return False

    def _check_hashable(self, password: object) -> None:
        data = _check_password(password)
        if self._scheme == "bcrypt" and _truncated_by_bcrypt(data):
            raise PasswordPolicyError(
                "plain bcrypt would silently truncate this password (over 72 UTF-8 bytes "
                "or a NUL character); use scheme='bcrypt_sha256' or a shorter password"
            )

    def _worth_computing(self, password: object, hashed: object) -> bool:
        data = _check_password(password)
        scheme, cost = _parse_hash(hashed) or ("", 0)
        if cost > self._max_cost:
            _log.warning(
                "refused to verify a password against a bcrypt hash of cost %d (the limit "
                "is %d): computing it would take minutes",
                cost,
                self._max_cost,
            )
            return False
        return scheme == "bcrypt_sha256" or (scheme == "bcrypt" and not _truncated_by_bcrypt(data))

    def _hash_now(self, password: str) -> str:
        _ensure_backend(self._context)
        return str(self._context.hash(password))

    def _verify_now(self, password: str, hashed: str) -> bool:
        _ensure_backend(self._context)
        try:
            return bool(self._context.verify(password, hashed))
        except (ValueError, TypeError):
            return False

    def _verify_and_update_now(self, password: str, hashed: str) -> tuple[bool, str | None]:
        if not self._verify_now(password, hashed):
            return False, None
        # Plain bcrypt cannot hold every password: then the stored hash is kept.
        if not self.needs_update(hashed) or (
            self._scheme == "bcrypt" and _truncated_by_bcrypt(password.encode())
        ):
            return True, None
        return True, self._hash_now(password)
