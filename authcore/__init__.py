"""authcore: async sessions, password hashing and JWT access tokens for Python web apps.

Everything public is importable from here::

    from authcore import SessionStore, create_engine, create_schema, dispose_engine

The FastAPI integration (``authcore.fastapi``), the command line
(``authcore.cli``) and the testing kit (``authcore.testing``) are imported
on their own, so ``import authcore`` stays light.
"""

from importlib.metadata import PackageNotFoundError, version

from authcore.db import create_engine, create_schema, dispose_engine, managed_engine, metadata
from authcore.errors import (
    AuthError,
    DependencyVersionError,
    InvalidTokenError,
    MalformedTokenError,
    PasswordPolicyError,
    StorageError,
    TokenExpiredError,
    TokenReuseError,
    TokenRevokedError,
    UserExistsError,
    UserNotFoundError,
)
from authcore.jwt import JWTManager
from authcore.passwords import PasswordHasher
from authcore.sessions import AuthSession, BaseSessionStore, SessionStore
from authcore.tokens import TokenParts, generate_token, hash_token, parse_token
from authcore.users import User, UserStore

try:
    __version__ = version("authcore")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "AuthError",
    "AuthSession",
    "BaseSessionStore",
    "DependencyVersionError",
    "InvalidTokenError",
    "JWTManager",
    "MalformedTokenError",
    "PasswordHasher",
    "PasswordPolicyError",
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
