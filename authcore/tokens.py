"""Opaque session tokens: minting, strict parsing and at-rest digests.

A token looks like ``token_{uid}_{timestamp}_{random}``:

* ``uid`` is the user id, verbatim when it only uses ``A-Z a-z 0-9 - . ~ _``
  and does not begin with ``~``; any other id is written as ``~`` followed by
  its UTF-8 bytes in unpadded URL-safe base64 (the same character set).
* ``timestamp`` is the issue time in **microseconds** since the Unix epoch,
  decimal digits with no leading zeros.
* ``random`` is :func:`secrets.token_hex` of ``nbytes`` bytes (32 by default:
  256 bits), which is what makes tokens unguessable and collision-proof.

The whole token uses only ``A-Z a-z 0-9 - . ~ _``, so it travels unescaped in
an ``Authorization: Bearer`` header, a cookie or a URL. The user id and time
are readable by whoever holds the token; they are there for operators and
logs, never trusted on their own: a token is only accepted when the SHA-256
digest of the *whole* token (:func:`hash_token`) is found in storage.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import time
import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from authcore._time import EPOCH, system_clock
from authcore.errors import MalformedTokenError

__all__ = ["TokenParts", "generate_token", "hash_token", "parse_token"]

UserId = str | int | uuid.UUID
"""What a user id may be: a ``str``, an ``int`` (not ``bool``) or a :class:`uuid.UUID`."""

PREFIX = "token_"
MAX_TOKEN_LENGTH = 512
MAX_USER_ID_BYTES = 255
MIN_NBYTES, MAX_NBYTES = 16, 64
# datetime.max is 9999-12-31T23:59:59.999999Z: 253402300799999999 µs, 18 digits.
_MAX_TIMESTAMP_DIGITS = 18
_MAX_TIMESTAMP = 253402300799999999

_SAFE_ID = re.compile(r"[A-Za-z0-9\-._~]+")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9\-._~]+")
_DIGITS = re.compile(r"0|[1-9][0-9]*")
_HEX = re.compile(r"[0-9a-f]+")
_B64 = re.compile(r"[A-Za-z0-9\-_]+")


class TokenParts(NamedTuple):
    """What :func:`parse_token` reads out of a token.

    Attributes:
        user_id: The user id as a string (``str(user_id)`` of what was minted).
        issued_at: When the token was minted, aware UTC, microsecond precision.
        secret: The random hex part. Hidden from ``repr``.
    """

    user_id: str
    issued_at: datetime
    secret: str

    def __repr__(self) -> str:
        return (
            f"TokenParts(user_id={self.user_id!r}, issued_at={self.issued_at.isoformat()!r}, "
            "secret='…')"
        )


def normalize_user_id(user_id: object) -> str:
    """Return the canonical string form of a user id, validating it.

    Raises:
        TypeError: not a ``str``, ``int`` or ``UUID`` (``bool`` is refused).
        ValueError: empty, over 255 UTF-8 bytes, or not encodable as UTF-8.
    """
    if isinstance(user_id, bool) or not isinstance(user_id, str | int | uuid.UUID):
        raise TypeError(f"user_id must be a str, int or UUID, got {type(user_id).__name__}")
    text = str(user_id)
    if not text:
        raise ValueError("user_id must not be empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("user_id must be valid Unicode (no lone surrogates)") from None
    if size > MAX_USER_ID_BYTES:
        raise ValueError(f"user_id must be at most {MAX_USER_ID_BYTES} UTF-8 bytes, got {size}")
    return text


def _is_verbatim(uid: str) -> bool:
    return _SAFE_ID.fullmatch(uid) is not None and not uid.startswith("~")


def _encode_uid(uid: str) -> str:
    if _is_verbatim(uid):
        return uid
    raw = base64.urlsafe_b64encode(uid.encode("utf-8")).rstrip(b"=")
    return "~" + raw.decode("ascii")


def _decode_uid(field: str) -> str:
    if not field.startswith("~"):
        if len(field) > MAX_USER_ID_BYTES:
            raise MalformedTokenError("malformed token: user id too long")
        return field
    body = field[1:]
    if not _B64.fullmatch(body) or len(body) % 4 == 1:
        raise MalformedTokenError("malformed token: bad user id encoding")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        uid = raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedTokenError("malformed token: bad user id encoding") from None
    # Only the canonical encoding of an id that needs encoding is accepted.
    if not uid or len(raw) > MAX_USER_ID_BYTES or _is_verbatim(uid) or _encode_uid(uid) != field:
        raise MalformedTokenError("malformed token: bad user id encoding")
    return uid


def _timestamp(now: datetime) -> int:
    delta = now - EPOCH
    if delta < timedelta(0):
        raise ValueError("cannot mint a token for a time before the Unix epoch")
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@functools.lru_cache(maxsize=4096)
def _uid_field(user_id: str) -> str:
    """The token field of a ``str`` user id, validated; cached (errors are not)."""
    return _encode_uid(normalize_user_id(user_id))


def check_nbytes(nbytes: object) -> int:
    """Validate a token size in bytes (16..64)."""
    if isinstance(nbytes, bool) or not isinstance(nbytes, int):
        raise TypeError(f"nbytes must be an int, got {type(nbytes).__name__}")
    if not MIN_NBYTES <= nbytes <= MAX_NBYTES:
        raise ValueError(f"nbytes must be between {MIN_NBYTES} and {MAX_NBYTES}, got {nbytes}")
    return nbytes


def _compose(field: str, micros: int, nbytes: int) -> str:
    # os.urandom(n).hex() is exactly what secrets.token_hex(n) returns
    # (secrets.token_bytes is os.urandom), without two Python-level calls.
    return f"{PREFIX}{field}_{micros}_{os.urandom(nbytes).hex()}"


def mint_token(uid: str, nbytes: int, now: datetime) -> str:
    """Mint a token for an already-normalised *uid* at *now* (an aware UTC datetime)."""
    return _compose(_uid_field(uid), _timestamp(now), nbytes)


def generate_token(user_id: UserId, *, nbytes: int = 32) -> str:
    """Mint a new opaque token for *user_id*.

    Guaranteed: the result matches ``token_{uid}_{timestamp}_{random}`` as
    described in this module's docstring, uses only ``A-Z a-z 0-9 - . ~ _``,
    is at most 512 characters long, and round-trips through
    :func:`parse_token` (``parse_token(t).user_id == str(user_id)``). Two calls
    never return the same token: ``random`` carries ``8 * nbytes`` bits from
    :mod:`secrets`.

    Args:
        user_id: A ``str``, ``int`` or :class:`uuid.UUID`; ``str(user_id)`` must be
            non-empty and at most 255 UTF-8 bytes.
        nbytes: Random bytes in the token, 16 to 64.

    Raises:
        TypeError: *user_id* or *nbytes* has the wrong type.
        ValueError: *user_id* is empty or too long, or *nbytes* is out of range.

    Example:
        >>> generate_token("user_1").startswith("token_user_1_")
        True
    """
    # The hot path of every login: the same result as
    # mint_token(normalize_user_id(user_id), check_nbytes(nbytes), system_clock()),
    # at less than half the cost (the uid field is cached, the time read as integers).
    field = _uid_field(user_id if type(user_id) is str else normalize_user_id(user_id))
    if type(nbytes) is not int or not MIN_NBYTES <= nbytes <= MAX_NBYTES:
        check_nbytes(nbytes)
    micros = time.time_ns() // 1000
    if micros < 0:
        micros = _timestamp(system_clock())  # raises ValueError: before the epoch
    return _compose(field, micros, nbytes)


def parse_token(token: object) -> TokenParts:
    """Split a token into its parts, refusing anything :func:`generate_token` could not produce.

    This only checks the format; it says nothing about whether the token is
    valid. It is cheap even for hostile input: the length is checked first.

    Raises:
        MalformedTokenError: not a ``str``, longer than 512 characters, wrong
            prefix, characters outside ``A-Z a-z 0-9 - . ~ _`` (NUL, newline,
            Unicode digits...), a bad user id encoding, a timestamp that is not
            canonical ASCII digits within ``datetime``'s range, or a random part
            that is not 32 to 128 lowercase hex digits of even length.
    """
    if not isinstance(token, str):
        raise MalformedTokenError(f"malformed token: expected str, got {type(token).__name__}")
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedTokenError(f"malformed token: longer than {MAX_TOKEN_LENGTH} characters")
    if not token.startswith(PREFIX) or _TOKEN_CHARS.fullmatch(token) is None:
        raise MalformedTokenError("malformed token: not an authcore token")
    pieces = token[len(PREFIX) :].rsplit("_", 2)
    if len(pieces) != 3 or not pieces[0]:
        raise MalformedTokenError("malformed token: not an authcore token")
    uid_field, stamp, secret = pieces
    if (
        len(secret) % 2
        or not 2 * MIN_NBYTES <= len(secret) <= 2 * MAX_NBYTES
        or _HEX.fullmatch(secret) is None
    ):
        raise MalformedTokenError("malformed token: bad random part")
    if len(stamp) > _MAX_TIMESTAMP_DIGITS or _DIGITS.fullmatch(stamp) is None:
        raise MalformedTokenError("malformed token: bad timestamp")
    micros = int(stamp)
    if micros > _MAX_TIMESTAMP:
        raise MalformedTokenError("malformed token: bad timestamp")
    uid = _decode_uid(uid_field)
    return TokenParts(uid, EPOCH + timedelta(microseconds=micros), secret)


def hash_token(token: str) -> str:
    """Return the lowercase hex SHA-256 of the UTF-8 encoded *token*.

    This digest is what storage keeps and looks sessions up by; the raw token
    is never written anywhere.

    Raises:
        TypeError: *token* is not a ``str``.
    """
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    try:
        data = token.encode()
    except UnicodeEncodeError:  # lone surrogates: not a token, but hashed all the same
        data = token.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()
