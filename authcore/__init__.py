"""authcore: async sessions, password hashing and JWT access tokens for Python web apps.

Everything public is importable from here::

    from authcore import SessionStore, create_engine, create_schema, dispose_engine

The FastAPI integration (``authcore.fastapi``), the command line
(``authcore.cli``) and the testing kit (``authcore.testing``) are imported
on their own, so ``import authcore`` stays light.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from authcore.errors import (
    AuthError,
    ConfigError,
    DependencyVersionError,
    HasherBusyError,
    InvalidTokenError,
    LoginThrottledError,
    MalformedTokenError,
    PasswordPolicyError,
    StorageError,
    TokenExpiredError,
    TokenReuseError,
    TokenRevokedError,
    UserExistsError,
    UserNotFoundError,
)

if TYPE_CHECKING:
    from authcore.db import create_engine, create_schema, dispose_engine, managed_engine, metadata
    from authcore.jwt import JWTManager
    from authcore.passwords import PasswordHasher
    from authcore.policy import PasswordPolicy
    from authcore.sessions import (
        AuthSession,
        BaseSessionStore,
        IssuedSession,
        SessionStats,
        SessionStore,
    )
    from authcore.throttle import LoginThrottle
    from authcore.tokens import TokenParts, generate_token, hash_token, parse_token
    from authcore.users import BaseUserStore, User, UserStore

try:
    __version__ = version("authcore")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled source tree
    __version__ = "0.0.0+unknown"

# Imported on first use (PEP 562), so that `authcore --help` and light imports
# such as `authcore.errors` do not pay for SQLAlchemy, passlib and jose.
_LAZY = {
    "create_engine": "authcore.db",
    "create_schema": "authcore.db",
    "dispose_engine": "authcore.db",
    "managed_engine": "authcore.db",
    "metadata": "authcore.db",
    "JWTManager": "authcore.jwt",
    "PasswordHasher": "authcore.passwords",
    "PasswordPolicy": "authcore.policy",
    "LoginThrottle": "authcore.throttle",
    "AuthSession": "authcore.sessions",
    "BaseSessionStore": "authcore.sessions",
    "IssuedSession": "authcore.sessions",
    "SessionStats": "authcore.sessions",
    "SessionStore": "authcore.sessions",
    "TokenParts": "authcore.tokens",
    "generate_token": "authcore.tokens",
    "hash_token": "authcore.tokens",
    "parse_token": "authcore.tokens",
    "BaseUserStore": "authcore.users",
    "User": "authcore.users",
    "UserStore": "authcore.users",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'authcore' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AuthError",
    "AuthSession",
    "BaseSessionStore",
    "BaseUserStore",
    "ConfigError",
    "DependencyVersionError",
    "HasherBusyError",
    "InvalidTokenError",
    "IssuedSession",
    "JWTManager",
    "LoginThrottle",
    "LoginThrottledError",
    "MalformedTokenError",
    "PasswordHasher",
    "PasswordPolicy",
    "PasswordPolicyError",
    "SessionStats",
    "SessionStore",
    "StorageError",
    "TokenExpiredError",
    "TokenParts",
    "TokenReuseError",
    "TokenRevokedError",
    "User",
    "UserExistsError",
    "UserNotFoundError",
    "UserStore",
    "__version__",
    "create_engine",
    "create_schema",
    "dispose_engine",
    "generate_token",
    "hash_token",
    "managed_engine",
    "metadata",
    "parse_token",
]
