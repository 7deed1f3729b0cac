"""Settings for applications and the command line: a TOML file, the environment, overrides.

A configuration file is TOML with an ``[authcore]`` table (other tables are
left alone, so the file can be shared with the application's own settings)::

    [authcore]
    database_url = "postgresql+asyncpg://authcore@db.internal/app"
    secret_key = "..."            # 32 bytes or more; `authcore gen-secret` makes one
    session_ttl = "14d"           # durations: "90s", "30m", "12h", "14d" or whole seconds
    idle_timeout = "2h"           # "off" (the default) disables it
    access_ttl = "15m"
    bcrypt_rounds = 12            # an integer, 10..16; 4..9 only with allow_test_rounds

Each setting can also come from the environment (``AUTHCORE_DATABASE_URL``,
``AUTHCORE_SECRET_KEY``, ``AUTHCORE_SESSION_TTL``, ``AUTHCORE_IDLE_TIMEOUT``,
``AUTHCORE_ACCESS_TTL``, ``AUTHCORE_BCRYPT_ROUNDS``; other ``AUTHCORE_*`` names
are ignored, and an empty variable counts as unset) and from explicit
overrides (the command line's flags). Precedence, highest first: overrides,
environment, file, defaults. Without an explicit file, the one named by
``AUTHCORE_CONFIG_FILE`` is read, if set.

In a file, each value must have its type: a duration is a string such as
``"14d"`` or an integer of seconds, ``bcrypt_rounds`` an integer
(``bcrypt_rounds = "12"`` is a problem, not a conversion). ``access_ttl`` and
``idle_timeout`` must not be longer than ``session_ttl``.

The application and the command line read the same values:
``AuthCore.from_settings()`` builds the app from :func:`app_keywords`, which
is what ``authcore validate`` prints.

Every value given is checked, in every source, and :class:`ConfigError` lists
every problem at once, each as ``"key: what is wrong"``; a malformed value,
whatever its source, is never any other exception. No problem message
ever contains the secret key, and a database URL is only ever shown with its
password masked.

This module imports nothing heavy at import time (``tomllib`` and SQLAlchemy
are loaded when a file or a URL is actually read), so the command line's
``--help`` stays fast.
"""

from __future__ import annotations

from authcore.config._loading import SettingsReport, check_settings, load_settings
from authcore.config._settings import Settings, app_keywords
from authcore.config._values import (
    CONFIG_FILE_VARIABLE,
    ENVIRONMENT_VARIABLES,
    MIN_SECRET_BYTES,
    format_duration,
    parse_duration,
    safe_url,
)
from authcore.errors import ConfigError

__all__ = [
    "CONFIG_FILE_VARIABLE",
    "ENVIRONMENT_VARIABLES",
    "MIN_SECRET_BYTES",
    "ConfigError",
    "Settings",
    "SettingsReport",
    "app_keywords",
    "check_settings",
    "format_duration",
    "load_settings",
    "parse_duration",
    "safe_url",
]
