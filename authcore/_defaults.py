"""The default durations, written once for every module that offers them.

The session stores, the settings and the FastAPI wiring take the same defaults;
a change here changes all of them together.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

__all__ = ["ACCESS_TTL", "SESSION_TTL", "TOUCH_INTERVAL"]

SESSION_TTL: Final = timedelta(days=14)
"""How long a session (and its refresh token and cookie) lives: 14 days."""

ACCESS_TTL: Final = timedelta(minutes=15)
"""How long a JWT access token lives: 15 minutes."""

TOUCH_INTERVAL: Final = timedelta(seconds=60)
"""How often a session in use records ``last_seen_at``: at most once a minute."""
