"""The wire format of a JWT, checked strictly: segments, JSON, times and keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from jose import jwk

from authcore.errors import InvalidTokenError

__all__ = [
    "MAX_DEPTH",
    "MAX_TIME",
    "MICROSECOND",
    "MIN_KEY_BYTES",
    "RESERVED_CLAIMS",
    "SECOND",
    "TOKEN_SHAPE",
    "claim_micros",
    "decode_object",
    "decode_segment",
    "make_key",
    "too_deep",
]

MIN_KEY_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 section 3.2
MAX_TIME: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
MAX_DEPTH: Final = 32  # JSON nesting allowed in a header or claims set
RESERVED_CLAIMS: Final = frozenset(
    {"aud", "exp", "iat", "iss", "jti", "nbf", "scope", "sid", "sub"}
)  # set by the manager, never by extra claims
TOKEN_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
SECOND: Final = timedelta(seconds=1)
MICROSECOND: Final = timedelta(microseconds=1)
_KID_LABEL: Final = b"authcore.jwt.kid.v1"
_JSON_STRUCTURE: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{\]}]', re.DOTALL)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)


def too_deep(text: str) -> bool:
    """Whether the JSON *text* nests arrays/objects deeper than ``MAX_DEPTH``."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    depth = 0
    for match in _JSON_STRUCTURE.finditer(text):
        char = match.group()[0]
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def decode_segment(segment: str) -> bytes:
    """Decode canonical unpadded base64url, so one token has exactly one spelling."""
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=") != segment.encode("ascii"):
        raise ValueError("non-canonical base64url")
    return data


def decode_object(segment: str) -> dict[str, Any]:
    """Decode a header or claims segment: strict base64url, then strict JSON, an object."""
    text = decode_segment(segment).decode("utf-8")
    if too_deep(text):
        raise ValueError("JSON nested too deeply")
    value = _DECODER.decode(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def claim_micros(claims: Mapping[str, Any], name: str) -> int:
    """Return the NumericDate claim *name* in microseconds, or raise InvalidTokenError."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= MAX_TIME:
        raise InvalidTokenError(f"the {name} claim is missing or not a valid time")
    return value * 1_000_000 if isinstance(value, int) else round(value * 1_000_000)


def make_key(secret: object, algorithm: str, what: str) -> tuple[str, Any]:
    """Validate an HMAC secret; return its key id and python-jose key object."""
    if isinstance(secret, str):
        try:
            raw = secret.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what} is not valid Unicode text") from None
    elif isinstance(secret, bytes):
        raw = secret
    else:
        raise TypeError(f"{what} must be str or bytes, got {type(secret).__name__}")
    minimum = MIN_KEY_BYTES[algorithm]
    if len(raw) < minimum:
        raise ValueError(f"{what} must be at least {minimum} bytes for {algorithm}")
    try:
        key = jwk.construct(raw, algorithm)
    except Exception:
        raise ValueError(f"{what} looks like an asymmetric key; use random bytes") from None
    return hmac.new(raw, _KID_LABEL, hashlib.sha256).hexdigest()[:16], key
