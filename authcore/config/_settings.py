"""``Settings``, and the one translation from settings to the application's keywords."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from authcore.config._values import (
    CHECKERS,
    DURATION_KEYS,
    KEYS,
    lifetime_problems,
    rounds_problem,
    safe_url,
    type_name,
)
from authcore.errors import ConfigError

MISSING_SECRET: Final = (
    "secret_key: missing: set it in the [authcore] table or AUTHCORE_SECRET_KEY "
    "(`authcore gen-secret` makes one)"
)


@dataclass(frozen=True)
class Settings:
    """authcore's settings, validated at construction.

    Build one directly, or with :func:`load_settings` from a file, the
    environment and overrides; :meth:`AuthCore.from_settings
    <authcore.fastapi.AuthCore.from_settings>` builds an app from one. The
    ``repr`` never shows the secret key.

    Attributes:
        database_url: An async SQLAlchemy URL.
        secret_key: The JWT signing key (at least 32 bytes), or ``None`` if unset.
        session_ttl: Absolute lifetime of sessions.
        idle_timeout: Sessions unused this long expire; ``None``: no idle expiry.
            Longer than 60 seconds, and no longer than *session_ttl*.
        access_ttl: Lifetime of JWT access tokens; no longer than *session_ttl*.
        bcrypt_rounds: bcrypt work factor for new hashes, 10 to 16.
        allow_test_rounds: Also accept ``bcrypt_rounds`` 4 to 9, which are fast
            and weak: for test configurations only.

    Durations are positive whole seconds, at most 100 years.

    Raises:
        ConfigError: listing every invalid field.
    """

    database_url: str = "sqlite+aiosqlite:///authcore.db"
    secret_key: str | None = field(default=None, repr=False)
    session_ttl: timedelta = timedelta(days=14)
    idle_timeout: timedelta | None = None
    access_ttl: timedelta = timedelta(minutes=15)
    bcrypt_rounds: int = 12
    allow_test_rounds: bool = False

    def __post_init__(self) -> None:
        problems: list[str] = []
        for key in KEYS:
            value = getattr(self, key)
            if key == "secret_key" and value is None:
                continue
            if key == "bcrypt_rounds" and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"{key}: must be an int, got {type_name(value)}")
                continue
            if key in DURATION_KEYS and not isinstance(value, timedelta | None):
                problems.append(f"{key}: must be a datetime.timedelta, got {type_name(value)}")
                continue
            try:
                CHECKERS[key](value, key, False)
            except ConfigError as exc:
                problems.extend(exc.problems)
        allow: object = self.allow_test_rounds
        if not isinstance(allow, bool):
            problems.append(f"allow_test_rounds: must be a bool, got {type_name(allow)}")
        elif isinstance(self.bcrypt_rounds, int) and not isinstance(self.bcrypt_rounds, bool):
            problem = rounds_problem(self.bcrypt_rounds, self.allow_test_rounds, "bcrypt_rounds")
            if problem is not None:
                problems.append(problem)
        if not problems:
            problems = lifetime_problems(self.session_ttl, self.idle_timeout, self.access_ttl)
        if problems:
            raise ConfigError(problems)

    def __repr__(self) -> str:
        secret = "None" if self.secret_key is None else "'***'"
        return (
            f"Settings(database_url={safe_url(self.database_url)!r}, secret_key={secret}, "
            f"session_ttl={self.session_ttl!r}, idle_timeout={self.idle_timeout!r}, "
            f"access_ttl={self.access_ttl!r}, bcrypt_rounds={self.bcrypt_rounds}, "
            f"allow_test_rounds={self.allow_test_rounds})"
        )


def app_keywords(settings: Settings, *, require_secret: bool = True) -> dict[str, Any]:
    """The values an application runs with, keyed by ``AuthCore``'s keywords.

    This is the one translation from :class:`Settings` to the application:
    :meth:`AuthCore.from_settings <authcore.fastapi.AuthCore.from_settings>`
    builds the app from it and ``authcore validate`` prints it, so a value
    the command line reports is the value the app uses. The keys are
    ``database_url``, ``secret_key`` (left out when unset and not required),
    ``session_ttl``, ``idle_timeout``, ``access_ttl`` and ``bcrypt_rounds``
    (the one key ``AuthCore`` does not take as such: ``from_settings`` makes
    it ``hasher=PasswordHasher(rounds=...)``).

    Example:
        >>> app_keywords(Settings(secret_key="s" * 32))["session_ttl"]
        datetime.timedelta(days=14)

    Args:
        settings: Checked settings.
        require_secret: An app signs JWTs, so a missing ``secret_key`` is a
            problem; pass ``False`` when the caller supplies the key itself.

    Raises:
        ConfigError: ``secret_key`` is missing and required.
    """
    if require_secret and settings.secret_key is None:
        raise ConfigError([MISSING_SECRET])
    keywords: dict[str, Any] = {
        "database_url": settings.database_url,
        "secret_key": settings.secret_key,
        "session_ttl": settings.session_ttl,
        "idle_timeout": settings.idle_timeout,
        "access_ttl": settings.access_ttl,
        "bcrypt_rounds": settings.bcrypt_rounds,
    }
    if settings.secret_key is None:
        del keywords["secret_key"]
    return keywords
