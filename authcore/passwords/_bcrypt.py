"""The door to passlib and bcrypt: the version guard, the hash formats, the context.

passlib and bcrypt enter authcore through this module only (and
:mod:`authcore.passwords._hasher`, which holds the context made here), so
replacing them touches the password package and nothing else.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from importlib import metadata
from typing import Any, Final

from authcore.errors import DependencyVersionError

with warnings.catch_warnings():
    # passlib 1.7.4 imports the stdlib ``crypt`` module, deprecated since Python 3.11.
    warnings.filterwarnings("ignore", "'crypt' is deprecated", DeprecationWarning)
    from passlib.context import CryptContext

__all__ = [
    "MAX_ROUNDS",
    "MIN_ROUNDS",
    "SCHEMES",
    "check_bcrypt_version",
    "ensure_backend",
    "installed_bcrypt_version",
    "make_context",
    "parse_hash",
    "truncated_by_bcrypt",
]

MIN_ROUNDS: Final = 4
MAX_ROUNDS: Final = 31
SCHEMES: Final = ("bcrypt_sha256", "bcrypt")
_BCRYPT_MAX_BYTES: Final = 72
_BCRYPT_FIX: Final = 'pip install "bcrypt>=4.1,<5"'

# The only hash formats accepted: canonical ones (passlib would warn about unused
# bits set in the last salt or digest character). The cost is read here, so
# passlib never sees a hash whose cost was not checked first.
_SALT: Final = r"[./A-Za-z0-9]{21}[.Oeu]"
_DIGEST: Final = r"[./A-Za-z0-9]{30}[.CGKOSWaeimquy26]"
_HASH_RE: Final = re.compile(
    rf"\$2[aby]\$(?P<bcrypt_cost>[0-9]{{2}})\${_SALT}{_DIGEST}"
    rf"|\$bcrypt-sha256\$(?:v=2,t=2b,r=|2[ab],)(?P<sha256_cost>[1-9][0-9]?)\${_SALT}\${_DIGEST}"
)


def parse_hash(hashed: object) -> tuple[str, int] | None:
    """Return ``(scheme, bcrypt cost)`` of a hash authcore accepts, else ``None``."""
    match = _HASH_RE.fullmatch(hashed) if isinstance(hashed, str) else None
    if match is None:
        return None
    scheme = "bcrypt" if match["bcrypt_cost"] is not None else "bcrypt_sha256"
    cost = int(match["bcrypt_cost"] or match["sha256_cost"])
    return (scheme, cost) if MIN_ROUNDS <= cost <= MAX_ROUNDS else None


def truncated_by_bcrypt(data: bytes) -> bool:
    """Whether plain bcrypt would cut *data* (over 72 bytes, or a NUL)."""
    return len(data) > _BCRYPT_MAX_BYTES or b"\x00" in data


def check_bcrypt_version(version: str) -> None:
    """Raise ``DependencyVersionError`` unless *version* is within ``>=4.1,<5``."""
    match = re.match(r"([0-9]+)\.([0-9]+)", version)
    if match is None or not (4, 1) <= (int(match[1]), int(match[2])) < (5, 0):
        raise DependencyVersionError(
            f"authcore needs bcrypt>=4.1,<5 but bcrypt {version[:40]!r} is installed "
            f"(passlib does not work with bcrypt 5); fix it with: {_BCRYPT_FIX}"
        )


def installed_bcrypt_version() -> str:
    """The installed bcrypt's version; ``DependencyVersionError`` when it is missing."""
    try:
        return metadata.version("bcrypt")
    except metadata.PackageNotFoundError:
        raise DependencyVersionError(f"authcore needs bcrypt: {_BCRYPT_FIX}") from None


def make_context(scheme: str, rounds: int) -> Any:
    """passlib's ``CryptContext`` hashing in *scheme*, verifying every scheme of :data:`SCHEMES`.

    Raises:
        DependencyVersionError: the installed bcrypt is outside ``>=4.1,<5``.
    """
    check_bcrypt_version(installed_bcrypt_version())
    keys = ("default_rounds", "min_rounds")
    settings = {f"{name}__{key}": rounds for name in SCHEMES for key in keys}
    return CryptContext(
        schemes=[scheme, *(s for s in SCHEMES if s != scheme)],
        default=scheme,
        deprecated="auto",
        **settings,
    )


class _DropPasslibNoise(logging.Filter):
    """Drops passlib's harmless traceback about bcrypt>=4.1 lacking ``__about__``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "(trapped) error reading bcrypt version"


_passlib_bcrypt_logger = logging.getLogger("passlib.handlers.bcrypt")
if not any(type(f).__name__ == "_DropPasslibNoise" for f in _passlib_bcrypt_logger.filters):
    _passlib_bcrypt_logger.addFilter(_DropPasslibNoise())

_backend_lock = threading.Lock()
_backend_loaded = False


def ensure_backend(context: Any) -> None:
    """Load passlib's bcrypt backend once; its loader is not safe to race."""
    global _backend_loaded
    if not _backend_loaded:
        with _backend_lock:
            if not _backend_loaded:
                context.handler("bcrypt").get_backend()
                _backend_loaded = True


def _forget_lock_after_fork() -> None:
    # A lock held by a parent's thread at the fork would stay held in the child.
    global _backend_lock
    _backend_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_lock_after_fork)
