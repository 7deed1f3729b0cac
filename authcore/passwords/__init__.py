"""Password hashing with bcrypt behind an async API that never blocks the event loop.

passlib and bcrypt enter authcore through this package only. bcrypt runs in a
process-wide pool with one worker thread per CPU, so a login flood queues up
instead of starving the event loop, and work whose caller was cancelled while
it waited in the queue never runs. The queue is bounded (load shedding): when
the hashes already waiting for a thread would keep a new one waiting longer
than *max_queue_wait* (estimated from how long recent hashes took), or when
*max_waiting* hashes wait, a new one raises
:class:`~authcore.errors.HasherBusyError` at once instead of queueing behind
them, so an overloaded server answers quickly rather than minutes later.

Nothing is ever silently truncated. The default ``bcrypt_sha256`` scheme
pre-hashes with HMAC-SHA256, so every character of a password up to 1024
characters counts. Plain ``$2a$``/``$2b$``/``$2y$`` hashes only cover the first
72 UTF-8 bytes (and stop at a NUL), so a longer password, or one with a NUL,
never matches such a hash, and a ``scheme="bcrypt"`` hasher refuses to create one.

Which new passwords an application accepts is :class:`PasswordPolicy`'s
decision (re-exported here; it needs neither passlib nor bcrypt).
"""

from authcore.passwords._hasher import PasswordHasher
from authcore.policy import PasswordPolicy

__all__ = ["PasswordHasher", "PasswordPolicy"]
