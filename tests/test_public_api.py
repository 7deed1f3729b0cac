"""The public surface: what ``import authcore`` offers and does not import, and the README."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import authcore
import authcore.passwords
import authcore.testing


def test_all_is_pinned() -> None:
    assert authcore.__all__ == [
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
    assert authcore.__all__ == sorted(authcore.__all__, key=str)
    for name in authcore.__all__:
        assert hasattr(authcore, name), name


def test_testing_kit_surface() -> None:
    assert authcore.testing.__all__ == [
        "FakeClock",
        "InMemorySessionStore",
        "InMemoryUserStore",
        "async_force_login",
        "fast_hasher",
        "force_login",
    ]


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
    assert not issubclass(e.LoginThrottledError, e.InvalidTokenError)
    assert authcore.passwords.PasswordPolicy is e.PasswordPolicy
    for name in authcore.errors.__all__:
        assert issubclass(getattr(e, name), e.AuthError)


HEAVY = (
    "_pytest",
    "authcore.cli",
    "authcore.fastapi",
    "authcore.testing",
    "fastapi",
    "pytest",
    "starlette",
)


def _modules_after_import(statement: str) -> list[str]:
    """Run *statement* in a fresh interpreter; return which heavy modules it imported."""
    code = f"import sys\n{statement}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    modules: list[str] = ast.literal_eval(result.stdout.strip())
    return modules


def test_import_is_light_and_quiet() -> None:
    """``import authcore`` pulls in neither fastapi, nor pytest, nor the testing kit or CLI."""
    assert _modules_after_import("import authcore") == []


def test_testing_kit_does_not_need_pytest() -> None:
    """The fakes work outside pytest: only the plugin module (loaded by pytest) imports it."""
    assert _modules_after_import("import authcore.testing") == ["authcore.testing"]


README = Path(__file__).resolve().parent.parent / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)


def test_readme_quick_start_is_the_two_commands() -> None:
    language, body = FENCE.findall(README.read_text(encoding="utf-8"))[0]
    assert language == "bash"
    assert body.splitlines() == ["python3 scripts/dev.py demo", "python3 scripts/dev.py test"]


def test_readme_usage_example_runs(tmp_path: Path) -> None:
    blocks = FENCE.findall(README.read_text(encoding="utf-8"))
    python = [body for language, body in blocks if language == "python" and "SessionStore(" in body]
    assert python, "README has no SessionStore example"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", python[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "alice" in result.stdout
    assert "refused:" in result.stdout
