"""The public surface: what ``import authcore`` offers, and what it does not import."""

from __future__ import annotations

import subprocess
import sys

import authcore
import authcore.testing


def test_all_is_pinned() -> None:
    assert authcore.__all__ == [
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
    assert authcore.__all__ == sorted(authcore.__all__, key=str)
    for name in authcore.__all__:
        assert hasattr(authcore, name), name


def test_testing_kit_surface() -> None:
    assert authcore.testing.__all__ == ["FakeClock", "InMemorySessionStore", "fast_hasher"]


def test_version_matches_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert authcore.__version__ == version("authcore")


def test_error_hierarchy() -> None:
    e = authcore
    assert issubclass(e.TokenReuseError, e.TokenRevokedError)
    for cls in (e.MalformedTokenError, e.TokenExpiredError, e.TokenRevokedError):
        assert issubclass(cls, e.InvalidTokenError)
    assert issubclass(e.PasswordPolicyError, ValueError)
    assert issubclass(e.UserNotFoundError, LookupError)
    assert issubclass(e.DependencyVersionError, ImportError)
    for name in authcore.errors.__all__:
        assert issubclass(getattr(e, name), e.AuthError)


def test_import_is_light_and_quiet() -> None:
    code = (
        "import sys, authcore\n"
        "heavy = [m for m in ('fastapi', 'starlette', 'pytest', 'authcore.testing',"
        " 'authcore.fastapi', 'authcore.cli') if m in sys.modules]\n"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert result.stderr == ""
