"""Server-side sessions behind opaque tokens.

:class:`SessionStore` keeps them in a SQL database; every store implements
:class:`BaseSessionStore`, whose docstrings state the guarantees.
"""

from authcore.sessions._base import BaseSessionStore
from authcore.sessions._model import AuthSession, IssuedSession, SessionStats
from authcore.sessions._sql import SessionStore

__all__ = ["AuthSession", "BaseSessionStore", "IssuedSession", "SessionStats", "SessionStore"]
