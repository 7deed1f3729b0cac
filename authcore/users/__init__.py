"""User accounts: ``UserStore`` (SQL), the ``User`` record, and ``BaseUserStore``.

Passwords are hashed with bcrypt and checked against a
:class:`~authcore.PasswordPolicy` wherever they are set; password reset and
email verification use one-time tokens of which only a digest is stored.
The in-memory twin for tests is :class:`authcore.testing.InMemoryUserStore`.
"""

from authcore.users._base import BaseUserStore
from authcore.users._model import User
from authcore.users._sql import UserStore

__all__ = ["BaseUserStore", "User", "UserStore"]
