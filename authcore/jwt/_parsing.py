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

from authcore._time import positive_timedelta
from authcore.errors import InvalidTokenError

_MIN_KEY_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 section 3.2
_MAX_TIME: Final = 253_402_300_799  # 9999-12-31T23:59:59Z
_MAX_DEPTH: Final = 32  # JSON nesting allowed in a header or claims set
_RESERVED: Final = frozenset({"aud", "exp", "iat", "iss", "jti", "nbf", "scope", "sid", "sub"})
_KID_LABEL: Final = b"authcore.jwt.kid.v1"
_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_JSON_STRUCTURE: Final = re.compile(r'"(?:[^"\\]|\\.)*"|[\[{\]}]', re.DOTALL)
_SECOND: Final = timedelta(seconds=1)
_MICROSECOND: Final = timedelta(microseconds=1)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key")
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


_DECODER: Final = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)


def _too_deep(text: str) -> bool:
    """Whether the JSON *text* nests arrays/objects deeper than ``_MAX_DEPTH``."""
    if text.count("[") + text.count("{") <= _MAX_DEPTH:
        return False
    depth = 0
    for match in _JSON_STRUCTURE.finditer(text):
        char = match.group()[0]
        if char in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _decode_segment(segment: str) -> bytes:
    """Decode canonical unpadded base64url, so one token has exactly one spelling."""
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(data).rstrip(b"=") != segment.encode("ascii"):
        raise ValueError("non-canonical base64url")
    return data


def _decode_object(segment: str) -> dict[str, Any]:
    text = _decode_segment(segment).decode("utf-8")
    if _too_deep(text):
        raise ValueError("JSON nested too deeply")
    value = _DECODER.decode(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _micros(claims: Mapping[str, Any], name: str) -> int:
    """Return the NumericDate claim *name* in microseconds, or raise InvalidTokenError."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= _MAX_TIME:
        raise InvalidTokenError(f"the {name} claim is missing or not a valid time")
    return value * 1_000_000 if isinstance(value, int) else round(value * 1_000_000)


def _make_key(secret: object, algorithm: str, what: str) -> tuple[str, Any]:
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
    minimum = _MIN_KEY_BYTES[algorithm]
    if len(raw) < minimum:
        raise ValueError(f"{what} must be at least {minimum} bytes for {algorithm}")
    try:
        key = jwk.construct(raw, algorithm)
    except Exception:
        raise ValueError(f"{what} looks like an asymmetric key; use random bytes") from None
    return hmac.new(raw, _KID_LABEL, hashlib.sha256).hexdigest()[:16], key


def _lifetime(value: object, name: str) -> timedelta:
    lifetime = positive_timedelta(value, name=name)
    assert lifetime is not None
    return lifetime
