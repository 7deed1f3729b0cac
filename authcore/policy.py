"""``PasswordPolicy``: which new passwords an application accepts.

Re-exported by :mod:`authcore.passwords` and :mod:`authcore`. It has no
third-party dependency: the list of common passwords ships as package data
(``authcore/_data/common-passwords.txt.gz``, 30,000 passwords from zxcvbn's
frequency lists, MIT licence; see the README next to it) and is read once, on
the first check that needs it.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import unicodedata
from importlib import resources
from typing import Final

from authcore.errors import PasswordPolicyError

__all__ = ["MAX_PASSWORD_LENGTH", "PasswordPolicy", "common_passwords"]

MAX_PASSWORD_LENGTH: Final = 1024
"""The longest password :class:`~authcore.PasswordHasher` accepts, in characters."""

_SIMILARITY: Final = 0.7
_COMMON_FILE: Final = "common-passwords.txt.gz"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased; read on first use, then cached."""
    data = resources.files("authcore").joinpath("_data", _COMMON_FILE).read_bytes()
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return frozenset(line for line in lines if line and not line.startswith("#"))


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _check_int(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return value


class PasswordPolicy:
    """Rules a new password must pass; :meth:`check` reports every rule it breaks.

    Stores apply it wherever a password is set (create, change, reset); a
    login is never checked against it, so tightening the policy locks nobody out.

    Args:
        min_length: The fewest characters allowed (at least 1).
        max_length: The most characters allowed (at most 1024, what the hasher accepts).
        forbid_username: Refuse a password equal or too similar to the username.
        forbid_common: Refuse a password from the list of 30,000 common passwords.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: the lengths are out of range or ``min_length > max_length``.

    Example::

        policy = PasswordPolicy(min_length=12)
        policy.check("correct horse battery staple", username="alice")  # passes
    """

    __slots__ = ("_forbid_common", "_forbid_username", "_max_length", "_min_length")

    def __init__(
        self,
        *,
        min_length: int = 8,
        max_length: int = MAX_PASSWORD_LENGTH,
        forbid_username: bool = True,
        forbid_common: bool = True,
    ) -> None:
        self._min_length = _check_int(min_length, "min_length")
        self._max_length = _check_int(max_length, "max_length")
        if not 1 <= min_length <= max_length <= MAX_PASSWORD_LENGTH:
            raise ValueError(
                f"need 1 <= min_length <= max_length <= {MAX_PASSWORD_LENGTH}, "
                f"got min_length={min_length}, max_length={max_length}"
            )
        self._forbid_username = _check_bool(forbid_username, "forbid_username")
        self._forbid_common = _check_bool(forbid_common, "forbid_common")

    @property
    def min_length(self) -> int:
        """The fewest characters allowed."""
        return self._min_length

    @property
    def max_length(self) -> int:
        """The most characters allowed."""
        return self._max_length

    @property
    def forbid_username(self) -> bool:
        """Whether a password like the username is refused."""
        return self._forbid_username

    @property
    def forbid_common(self) -> bool:
        """Whether a common password is refused."""
        return self._forbid_common

    def __repr__(self) -> str:
        return (
            f"PasswordPolicy(min_length={self._min_length}, max_length={self._max_length}, "
            f"forbid_username={self._forbid_username}, forbid_common={self._forbid_common})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PasswordPolicy):
            return NotImplemented
        return repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))

    def check(self, password: str, *, username: str | None = None) -> None:
        """Raise :class:`~authcore.errors.PasswordPolicyError` unless *password* passes.

        The error's ``reasons`` holds every code that applies:

        * ``"too_short"``: fewer than ``min_length`` characters;
        * ``"too_long"``: more than ``max_length`` characters;
        * ``"similar_to_username"`` (with ``forbid_username`` and a *username*):
          after NFKC normalisation and case folding, the password equals the
          username or the username reversed, or :class:`difflib.SequenceMatcher`
          rates them 0.7 or more alike (as Django's similarity validator does);
        * ``"too_common"`` (with ``forbid_common``): the password, lower-cased
          and without surrounding whitespace, is one of the 30,000 common passwords.

        The message names the reasons in plain words and never contains the password.

        Raises:
            PasswordPolicyError: the password breaks a rule, or is not a ``str``.
            TypeError: *username* is neither a ``str`` nor ``None``.
        """
        if not isinstance(password, str):
            raise PasswordPolicyError(f"password must be a str, got {type(password).__name__}")
        if username is not None and not isinstance(username, str):
            raise TypeError(f"username must be a str or None, got {type(username).__name__}")
        found: list[str] = []
        if len(password) < self._min_length:
            found.append("too_short")
        if len(password) > self._max_length:
            found.append("too_long")
        if self._forbid_username and username is not None and _similar(password, username):
            found.append("similar_to_username")
        if self._forbid_common and password.strip().lower() in common_passwords():
            found.append("too_common")
        if found:
            raise PasswordPolicyError(reasons=found)


def _similar(password: str, username: str) -> bool:
    folded, name = _fold(password), _fold(username.strip())
    if not name:
        return False
    if folded in (name, name[::-1]):
        return True
    matcher = difflib.SequenceMatcher(a=folded, b=name, autojunk=False)
    # quick_ratio() is an upper bound of ratio(): skip the slow part when it cannot reach.
    return matcher.quick_ratio() >= _SIMILARITY and matcher.ratio() >= _SIMILARITY
