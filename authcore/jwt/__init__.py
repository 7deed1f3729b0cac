"""Short-lived JWT access tokens, HMAC-signed and verified strictly.

python-jose signs tokens and computes the HMAC, and is imported nowhere outside
this package. Everything a verifier must refuse is checked here, before and after
the signature, because python-jose 3.5 accepts more than a verifier should:
``verify`` parses the header and claims itself (strict base64url, strict JSON,
bounded nesting, no duplicate keys, no ``NaN``), takes the algorithm from the
manager and never from the token, and reads the time from the injected clock.

Example::

    manager = JWTManager(secret_key, issuer="https://auth.example", audience="api")
    token = manager.issue(user.id, session_id=session.id, scopes=["read"])
    claims = manager.verify(token)  # or raise InvalidTokenError / TokenExpiredError
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from jose import jws

from authcore._defaults import ACCESS_TTL
from authcore._time import EPOCH, Clock, checked_clock, positive_timedelta, read_clock
from authcore.errors import InvalidTokenError, MalformedTokenError, TokenExpiredError
from authcore.jwt._parsing import (
    MAX_DEPTH,
    MAX_TIME,
    MICROSECOND,
    MIN_KEY_BYTES,
    RESERVED_CLAIMS,
    SECOND,
    TOKEN_SHAPE,
    claim_micros,
    decode_object,
    decode_segment,
    make_key,
    too_deep,
)

__all__ = ["JWTManager"]

MAX_TOKEN_LENGTH: Final = 8192
"""Longer tokens are refused before any decoding."""

VERIFIED_CACHE_SIZE: Final = 1024
"""How many verified tokens a manager remembers (only tokens it verified itself)."""

_SCALARS = frozenset({str, int, float, bool, type(None)})


class JWTManager:
    """Issue and verify HMAC-signed JWT access tokens (HS256, HS384 or HS512).

    Guaranteed by :meth:`verify`: only the configured algorithm is accepted,
    the signature is checked in constant time before any claim is parsed, and
    every failure is an :class:`~authcore.errors.InvalidTokenError` whose
    message never contains the token or a key.

    Key rotation: each key has a key id (``kid``) derived from it with
    HMAC-SHA256 over a fixed label, truncated to 16 hex digits; it identifies
    the key without revealing anything about it. Tokens carry the ``kid`` of
    the key that signed them. Pass retired keys as *previous_secrets* to keep
    verifying the tokens they signed (until those expire) while *secret* signs
    new ones; drop them afterwards. A token naming an unknown ``kid`` is
    refused; a token with no ``kid`` (issued by another library sharing the
    key) is checked against the signing key only, never a previous one.

    Args:
        secret: The signing key; at least 32/48/64 bytes for HS256/384/512
            (a ``str`` is measured in UTF-8 bytes).
        algorithm: ``"HS256"``, ``"HS384"`` or ``"HS512"``.
        issuer: When set, issued tokens carry it as ``iss`` and verified
            tokens must carry exactly it.
        audience: The same for ``aud``. When ``None``, a token carrying any
            ``aud`` is refused.
        ttl: Default lifetime of issued tokens.
        leeway: Clock skew tolerated for ``exp``, ``nbf`` and ``iat``.
        clock: Zero-argument callable returning aware UTC ``datetime``.
        previous_secrets: Retired keys, accepted by :meth:`verify` only.

    Raises:
        TypeError: An argument has the wrong type.
        ValueError: Unsupported algorithm, short or PEM/SSH-looking secret,
            non-positive ``ttl`` or negative ``leeway``.
    """

    __slots__ = (
        "_algorithm",
        "_audience",
        "_clock",
        "_issuer",
        "_keys",
        "_kid",
        "_leeway",
        "_ttl",
        "_verified",
    )

    def __init__(
        self,
        secret: str | bytes,
        *,
        algorithm: str = "HS256",
        issuer: str | None = None,
        audience: str | None = None,
        ttl: timedelta = ACCESS_TTL,
        leeway: timedelta = timedelta(0),
        clock: Clock | None = None,
        previous_secrets: Sequence[str | bytes] = (),
    ) -> None:
        if not isinstance(algorithm, str):
            raise TypeError(f"algorithm must be a str, got {type(algorithm).__name__}")
        if algorithm not in MIN_KEY_BYTES:
            raise ValueError("algorithm must be one of HS256, HS384, HS512")
        for name, value in (("issuer", issuer), ("audience", audience)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{name} must be a str or None, got {type(value).__name__}")
            if value == "":
                raise ValueError(f"{name} must not be empty")
        if not isinstance(leeway, timedelta):
            raise TypeError(f"leeway must be a datetime.timedelta, got {type(leeway).__name__}")
        if leeway < timedelta(0):
            raise ValueError("leeway must not be negative")
        self._clock: Clock = checked_clock(clock)
        if isinstance(previous_secrets, str | bytes) or not isinstance(previous_secrets, Sequence):
            raise TypeError("previous_secrets must be a sequence of str or bytes keys")
        self._algorithm = algorithm
        self._issuer = issuer
        self._audience = audience
        self._ttl = positive_timedelta(ttl, name="ttl")
        self._leeway = leeway
        self._kid, signing_key = make_key(secret, algorithm, "secret")
        self._keys: dict[str, Any] = {self._kid: signing_key}
        for old in previous_secrets:
            kid, key = make_key(old, algorithm, "each of previous_secrets")
            self._keys.setdefault(kid, key)
        # Token -> its claims, for tokens whose header, signature and claims' shape
        # this manager has verified (see _verify): the same access token comes back
        # on every request, and the HMAC and JSON parsing are most of verify's cost.
        self._verified: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return (
            f"JWTManager(algorithm={self._algorithm!r}, issuer={self._issuer!r}, "
            f"audience={self._audience!r}, ttl={self._ttl!r}, leeway={self._leeway!r})"
        )

    @property
    def algorithm(self) -> str:
        """The one algorithm this manager signs with and accepts."""
        return self._algorithm

    @property
    def issuer(self) -> str | None:
        """The required ``iss`` claim, if any."""
        return self._issuer

    @property
    def audience(self) -> str | None:
        """The required ``aud`` claim, if any."""
        return self._audience

    @property
    def ttl(self) -> timedelta:
        """The default lifetime of issued tokens."""
        return self._ttl

    @property
    def leeway(self) -> timedelta:
        """The clock skew tolerated when verifying."""
        return self._leeway

    @property
    def kid(self) -> str:
        """The key id of the signing key, as found in the ``kid`` header (not secret)."""
        return self._kid

    def issue(
        self,
        subject: str,
        *,
        session_id: str | None = None,
        scopes: Sequence[str] = (),
        claims: Mapping[str, Any] | None = None,
        ttl: timedelta | None = None,
    ) -> str:
        """Return a signed token for *subject*, valid from now for *ttl*.

        Sets ``sub``, ``iat``, ``exp`` (integer seconds), a random ``jti``,
        ``sid`` when *session_id* is given, ``scope`` (space-separated) when
        *scopes* is not empty, and ``iss``/``aud`` when configured. The header
        carries ``alg``, ``typ`` and the signing key's ``kid``. *claims* adds
        JSON-serialisable application claims, which :meth:`verify` returns.

        Raises:
            TypeError: A wrong argument type (also a bare ``str`` as *scopes*),
                or *claims* that JSON cannot serialise.
            ValueError: An empty subject, session id or scope, a scope with
                whitespace, a reserved name in *claims* (``aud exp iat iss jti
                nbf scope sid sub``), a non-finite float, nesting deeper than
                32, an ``exp`` past year 9999, or a token over 8 KiB.
        """
        payload: dict[str, Any] = {"sub": _text(subject, "subject")}
        lifetime = self._ttl if ttl is None else positive_timedelta(ttl, name="ttl")
        now = read_clock(self._clock)
        payload["iat"] = iat = (now - EPOCH) // SECOND
        payload["exp"] = exp = iat - (-lifetime // SECOND)
        if iat < 0 or exp > MAX_TIME:
            raise ValueError("iat and exp must fall between 1970 and the year 9999")
        payload["jti"] = secrets.token_urlsafe(16)
        if session_id is not None:
            payload["sid"] = _text(session_id, "session_id")
        if isinstance(scopes, str) or not isinstance(scopes, Sequence):
            raise TypeError("scopes must be a sequence of str (not a single str)")
        if scopes:
            for scope in scopes:
                if _text(scope, "each scope").split() != [scope]:
                    raise ValueError("a scope must not contain whitespace")
            payload["scope"] = " ".join(scopes)
        if self._issuer is not None:
            payload["iss"] = self._issuer
        if self._audience is not None:
            payload["aud"] = self._audience
        if claims is not None:
            if not isinstance(claims, Mapping):
                raise TypeError(f"claims must be a mapping, got {type(claims).__name__}")
            for name in claims:
                if not isinstance(name, str):
                    raise TypeError("claim names must be str")
                if name in RESERVED_CLAIMS:
                    raise ValueError(f"claim {name!r} is reserved for authcore")
            payload.update(claims)
        try:
            text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
        except RecursionError:
            text = "[" * (MAX_DEPTH + 1)
        if too_deep(text):
            raise ValueError(f"claims must not nest deeper than {MAX_DEPTH} levels")
        headers = {"kid": self._kid}
        token: str = jws.sign(text.encode("ascii"), self._keys[self._kid], headers, self._algorithm)
        if len(token) > MAX_TOKEN_LENGTH:
            raise ValueError("the token would exceed 8 KiB, which verify refuses")
        return token

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of *token* if, and only if, every check passes.

        Refused, in this order: anything but a ``str`` of at most 8 KiB made
        of three canonical base64url segments; a header that is not a JSON
        object, has any ``crit``, an ``alg`` other than the configured one
        (``none`` in any spelling included) or an unknown ``kid``; a bad
        signature; claims that are not a JSON object (JSON nested deeper
        than 32 levels, duplicate keys and ``NaN`` are refused everywhere); a
        missing or invalid ``exp``/``iat`` (numbers, not booleans, between
        1970 and 9999) or ``sub`` (a non-empty ``str``); ``iat`` or ``nbf``
        later than now plus leeway; ``iss``/``aud`` not exactly as configured
        (``aud`` may be a list containing the audience); ``aud`` present when
        no audience is configured; a non-string ``jti``, ``sid`` or ``scope``.

        Raises:
            TokenExpiredError: The token is otherwise valid and
                ``now >= exp + leeway``.
            InvalidTokenError: Any other reason
                (:class:`~authcore.errors.MalformedTokenError` for a token
                that is not structurally a JWS). Never any other exception.
        """
        try:
            return self._verify(token)
        except InvalidTokenError:
            raise
        except Exception:
            raise InvalidTokenError("the token could not be verified") from None

    def _verify(self, token: object) -> dict[str, Any]:
        if type(token) is str and (known := self._verified.get(token)) is not None:
            # Signature and JSON verified before, by this manager's fixed keys; the
            # claims are checked again, against the clock, as on the first time.
            self._check_claims(known, self._now())
            return dict(known)  # the values are immutable: a copy of its own
        claims = self._verify_new(token)
        self._remember(token, claims)
        return claims

    def _now(self) -> int:
        try:
            return (read_clock(self._clock) - EPOCH) // MICROSECOND
        except Exception as exc:
            raise InvalidTokenError("the clock failed; see __cause__") from exc

    def _remember(self, token: object, claims: dict[str, Any]) -> None:
        """Keep a verified token's claims, when every value is immutable (no nesting)."""
        if type(token) is not str or not all(type(v) in _SCALARS for v in claims.values()):
            return
        verified = self._verified
        if len(verified) >= VERIFIED_CACHE_SIZE:
            # The oldest out; another thread may be doing the same.
            with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                del verified[next(iter(verified))]
        verified[token] = dict(claims)

    def _verify_new(self, token: object) -> dict[str, Any]:
        if not isinstance(token, str):
            raise MalformedTokenError("a JWT must be a str")
        if len(token) > MAX_TOKEN_LENGTH:
            raise MalformedTokenError("the token is longer than 8 KiB")
        if TOKEN_SHAPE.fullmatch(token) is None:
            raise MalformedTokenError("a JWT must be three base64url segments")
        header_segment, payload_segment, signature_segment = token.split(".")
        try:
            header = decode_object(header_segment)
            signature = decode_segment(signature_segment)
        except (ValueError, RecursionError):
            raise MalformedTokenError("the token header is not valid") from None
        if "crit" in header:
            raise InvalidTokenError("the token has a crit header, which is not supported")
        if header.get("alg") != self._algorithm:
            raise InvalidTokenError("the token algorithm is not accepted")
        kid = header.get("kid", self._kid)
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidTokenError("the token was signed by an unknown key")
        signing_input = token[: len(header_segment) + 1 + len(payload_segment)]
        if not key.verify(signing_input.encode("ascii"), signature):
            raise InvalidTokenError("the token signature does not match")
        try:
            claims = decode_object(payload_segment)
        except (ValueError, RecursionError):
            raise MalformedTokenError("the token claims are not a valid JSON object") from None
        self._check_claims(claims, self._now())
        return claims

    def _check_claims(self, claims: dict[str, Any], now: int) -> None:
        exp = claim_micros(claims, "exp")
        latest = now + self._leeway // MICROSECOND
        if claim_micros(claims, "iat") > latest:
            raise InvalidTokenError("the token was issued in the future")
        if "nbf" in claims and claim_micros(claims, "nbf") > latest:
            raise InvalidTokenError("the token is not valid yet")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise InvalidTokenError("the sub claim is missing or not a string")
        if self._issuer is not None and claims.get("iss") != self._issuer:
            raise InvalidTokenError("the token issuer is not accepted")
        if self._audience is None:
            if "aud" in claims:
                raise InvalidTokenError("the token has an audience but none is configured")
        else:
            aud = claims.get("aud")
            if isinstance(aud, list) and all(isinstance(item, str) for item in aud):
                aud = self._audience if self._audience in aud else None
            if aud != self._audience:
                raise InvalidTokenError("the token audience is not accepted")
        for name in ("jti", "sid", "scope"):
            if name in claims and not isinstance(claims[name], str):
                raise InvalidTokenError(f"the {name} claim is not a string")
        if now >= exp + self._leeway // MICROSECOND:
            raise TokenExpiredError("the token has expired")


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    return value
