"""The application and ``authcore validate`` read the same configuration, shown from outside.

Each side runs in its own process with the same environment (``AUTHCORE_*``
variables and a file named by ``AUTHCORE_CONFIG_FILE``): ``authcore validate``
prints what it found, and a small script builds ``AuthCore.from_settings()``
and prints what the app really uses, down to a JWT and a cookie it issued.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from authcore.config import ConfigError, Settings, parse_duration
from authcore.fastapi import AuthCore
from authcore.jwt import JWTManager
from authcore.passwords import PasswordHasher
from authcore.testing import fast_hasher

SECRET = "sentinel-secret-0123456789abcdef-0123456789"  # 43 bytes
PASSWORD = "sentinel correct horse battery staple"

# Builds the app from the environment alone, as a deployed app would, and
# reports the values in effect: read back from the objects and from what the
# app actually issues (a JWT, a cookie, a password hash).
APP_SCRIPT = f"""
import base64, json, re
from fastapi import FastAPI
from fastapi.testclient import TestClient
from authcore.fastapi import AuthCore

auth = AuthCore.from_settings(cookie_secure=False)
app = FastAPI(lifespan=auth.lifespan)
app.include_router(auth.router)
with TestClient(app) as client:
    created = client.post("/auth/register", json={{"username": "alice", "password": {PASSWORD!r}}})
    assert created.status_code == 201, created.text
    login = client.post("/auth/login", data={{"username": "alice", "password": {PASSWORD!r}}})
    assert login.status_code == 200, login.text
payload = login.json()["access_token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
cookie = login.headers["set-cookie"]
print(json.dumps({{
    "database_url": auth.engine.url.render_as_string(hide_password=True),
    "access_ttl": auth.jwt.ttl.total_seconds(),
    "session_ttl": auth.sessions.ttl.total_seconds(),
    "idle_timeout": auth.sessions.idle_timeout and auth.sessions.idle_timeout.total_seconds(),
    "bcrypt_rounds": int(re.search(r"[$,]r=([0-9]+)[$]", auth.hasher.hash_sync("probe"))[1]),
    "jwt_lifetime": claims["exp"] - claims["iat"],
    "cookie_max_age": int(re.search(r"Max-Age=([0-9]+)", cookie)[1]),
    "access_token": login.json()["access_token"],
    "expires_in": login.json()["expires_in"],
}}))
"""


def environment(**extra: str) -> dict[str, str]:
    """The inherited environment minus every AUTHCORE_* variable, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCORE_")}
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def validate_rows(stdout: str) -> dict[str, tuple[str, str]]:
    """``authcore validate``'s table: key -> (value shown, where it came from)."""
    rows = {}
    for line in stdout.splitlines()[1:]:
        key, rest = line.split(maxsplit=1)
        value, _, origin = rest.rpartition("(")
        rows[key] = (value.strip(), origin.rstrip(")"))
    return rows


def test_the_app_and_validate_agree_on_every_value(tmp_path: Path) -> None:
    database = tmp_path / "app.db"
    config = tmp_path / "authcore.toml"
    config.write_text(
        f"""
        [authcore]
        database_url = "sqlite+aiosqlite:///{database.as_posix()}"
        secret_key = "{SECRET}"
        session_ttl = "14d"      # the environment says 1d
        access_ttl = "5m"        # the environment says 60 (seconds)
        idle_timeout = "2h"
        bcrypt_rounds = 10
        """,
        encoding="utf-8",
    )
    env = environment(
        AUTHCORE_CONFIG_FILE=str(config), AUTHCORE_ACCESS_TTL="60", AUTHCORE_SESSION_TTL="1d"
    )

    validated = run(["-m", "authcore", "validate"], env, tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stdout.splitlines()[0] == f"{config}: configuration ok"
    rows = validate_rows(validated.stdout)
    assert rows["access_ttl"] == ("1m", "from AUTHCORE_ACCESS_TTL")
    assert rows["session_ttl"] == ("1d", "from AUTHCORE_SESSION_TTL")
    assert rows["idle_timeout"] == ("2h", "from file")
    assert rows["bcrypt_rounds"] == ("10", "from file")
    assert rows["secret_key"] == ("set (43 bytes)", "from file")

    app = run(["-c", APP_SCRIPT], env, tmp_path)
    assert app.returncode == 0, app.stderr
    used = json.loads(app.stdout)

    # Every value validate reports is the value the app uses.
    assert rows["database_url"][0] == used["database_url"]
    for key in ("access_ttl", "session_ttl", "idle_timeout"):
        assert parse_duration(rows[key][0]).total_seconds() == used[key], key
    assert int(rows["bcrypt_rounds"][0]) == used["bcrypt_rounds"]
    # ...and what the app issues follows from them.
    assert used["jwt_lifetime"] == used["expires_in"] == 60
    assert used["cookie_max_age"] == 86_400
    claims = JWTManager(SECRET).verify(used["access_token"])  # signed with the file's key
    assert claims["sub"]
    assert SECRET not in validated.stdout + validated.stderr + app.stdout + app.stderr


def test_the_app_and_validate_refuse_the_same_configuration(tmp_path: Path) -> None:
    config = tmp_path / "authcore.toml"
    config.write_text('[authcore]\nbcrypt_rounds = "12"\n', encoding="utf-8")
    env = environment(
        AUTHCORE_CONFIG_FILE=str(config),
        AUTHCORE_SECRET_KEY=SECRET,
        AUTHCORE_ACCESS_TTL="20d",
        AUTHCORE_SESSION_TTL="14",
    )
    validated = run(["-m", "authcore", "validate"], env, tmp_path)
    assert validated.returncode == 2
    reported = [line.removeprefix("  - ") for line in validated.stdout.splitlines()[1:]]

    script = (
        "from authcore.config import ConfigError\n"
        "from authcore.fastapi import AuthCore\n"
        "try:\n"
        "    AuthCore.from_settings()\n"
        "except ConfigError as exc:\n"
        "    print('\\n'.join(exc.problems))\n"
    )
    app = run(["-c", script], env, tmp_path)
    assert app.returncode == 0, app.stderr
    assert app.stdout.splitlines() == reported
    assert reported == [
        "bcrypt_rounds: must be a whole number, got a string "
        "(write bcrypt_rounds = 12, without quotes)",
        "access_ttl: 20d (from AUTHCORE_ACCESS_TTL) is longer than session_ttl, "
        "14s (from AUTHCORE_SESSION_TTL): an access token would outlive its session",
    ]


# -- from_settings in process -------------------------------------------------------------


def test_from_settings_takes_every_value(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{(tmp_path / 'app.db').as_posix()}"
    settings = Settings(
        database_url=url,
        secret_key=SECRET,
        session_ttl=timedelta(days=2),
        idle_timeout=timedelta(hours=3),
        access_ttl=timedelta(minutes=7),
        bcrypt_rounds=11,
    )
    auth = AuthCore.from_settings(settings)
    assert auth.sessions.ttl == timedelta(days=2)
    assert auth.sessions.idle_timeout == timedelta(hours=3)
    assert auth.jwt.ttl == timedelta(minutes=7)
    assert repr(auth.hasher) == repr(PasswordHasher(rounds=11))
    assert auth.engine.url.render_as_string() == url  # (no connection made: no file)


def test_from_settings_keywords_win() -> None:
    hasher = fast_hasher()
    auth = AuthCore.from_settings(
        Settings(secret_key=SECRET),
        access_ttl=timedelta(minutes=1),
        hasher=hasher,
        prefix="/account",
        database_url="sqlite+aiosqlite://",
    )
    assert auth.jwt.ttl == timedelta(minutes=1)
    assert auth.hasher is hasher
    assert auth.prefix == "/account"
    assert auth.sessions.ttl == timedelta(days=14)
    # A key given as a keyword: the settings need none.
    assert AuthCore.from_settings(Settings(), secret_key=SECRET).jwt.ttl == timedelta(minutes=15)


def test_from_settings_needs_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHCORE_"):
            monkeypatch.delenv(name)
    with pytest.raises(ConfigError) as caught:
        AuthCore.from_settings(Settings())
    assert caught.value.problems[0].startswith("secret_key: missing")
    with pytest.raises(ConfigError, match="secret_key: missing"):
        AuthCore.from_settings()  # load_settings() from the (empty) environment


def test_from_settings_loads_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "authcore.toml"
    config.write_text('[authcore]\nidle_timeout = "1h"\nbcrypt_rounds = 10\n', encoding="utf-8")
    monkeypatch.setenv("AUTHCORE_CONFIG_FILE", str(config))
    monkeypatch.setenv("AUTHCORE_SECRET_KEY", SECRET)
    monkeypatch.setenv("AUTHCORE_DATABASE_URL", "sqlite+aiosqlite://")
    monkeypatch.setenv("AUTHCORE_ACCESS_TTL", "2m")
    auth = AuthCore.from_settings()
    assert auth.sessions.idle_timeout == timedelta(hours=1)
    assert auth.jwt.ttl == timedelta(minutes=2)
    assert repr(auth.hasher) == repr(PasswordHasher(rounds=10))
