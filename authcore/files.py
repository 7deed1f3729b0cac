"""File helpers that behave the same on Windows, macOS and Linux.

Windows refuses to delete a file that another handle still has open (a SQLite
connection, a virus scanner, an indexer); :func:`safe_unlink` waits that out.
:func:`atomic_write_text` replaces a file so that readers see either the old or
the new content, never a mix, and leaves no temporary file behind.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import secrets
import stat
import time
from contextlib import suppress

__all__ = ["atomic_write_text", "remove_sqlite_database", "safe_unlink"]

logger = logging.getLogger(__name__)

_sleep = time.sleep  # module-level so tests can replace it
_MAX_WAIT = 2.0  # cap on one backoff wait, in seconds (unless ``delay`` is larger)
_WINDOWS_LOCK_ERRORS = frozenset({32, 33})  # ERROR_SHARING_VIOLATION, ERROR_LOCK_VIOLATION
_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def _is_lock_error(exc: OSError) -> bool:
    if isinstance(exc, PermissionError):  # EACCES / EPERM; Windows maps 5, 32, 33 here
        return True
    return getattr(exc, "winerror", None) in _WINDOWS_LOCK_ERRORS or exc.errno == errno.EBUSY


def _is_directory(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def safe_unlink(path: str | os.PathLike[str], *, attempts: int = 5, delay: float = 0.1) -> bool:
    """Remove a file, retrying while it is locked.

    A :class:`PermissionError`, or an :class:`OSError` meaning "in use"
    (Windows ``ERROR_SHARING_VIOLATION``/``ERROR_LOCK_VIOLATION``, ``EBUSY``),
    is retried: *attempts* tries in all, waiting *delay* seconds after the
    first and doubling each wait (capped at 2 s, or *delay* if larger); with
    the defaults at most 1.5 s in total. On POSIX a :class:`PermissionError`
    (a read-only folder) rarely clears, but it is retried too and ends in
    ``False``. Guaranteed never to raise for a missing or a locked file.

    Args:
        path: The file to remove; a symbolic link is removed, not its target.
        attempts: How many times to try, at least 1.
        delay: The first wait in seconds, finite and at least 0.

    Returns:
        ``True`` when the file is gone or never existed; ``False`` when it is
        still locked after the last attempt, logged as a warning (path and
        last error) on the ``authcore.files`` logger.

    Raises:
        TypeError: *attempts* is not an ``int`` or *delay* is not a number.
        ValueError: *attempts* < 1, or *delay* is negative or not finite.
        IsADirectoryError: *path* is a directory, on every platform.
        OSError: Any other error, which retrying cannot fix (name too long,
            a path through a regular file, ...), at once: it means the
            argument is wrong, and returning ``False`` would hide that.
    """
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise TypeError(f"attempts must be an int, got {type(attempts).__name__}")
    if isinstance(delay, bool) or not isinstance(delay, int | float):
        raise TypeError(f"delay must be a number of seconds, got {type(delay).__name__}")
    if attempts < 1:
        raise ValueError(f"attempts must be at least 1, got {attempts}")
    if not math.isfinite(delay) or delay < 0:
        raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
    target = os.fspath(path)
    wait, max_wait = float(delay), max(float(delay), _MAX_WAIT)
    last_error: OSError | None = None
    for attempt in range(1, attempts + 1):
        try:
            os.unlink(target)
        except FileNotFoundError:
            return True
        except OSError as exc:
            if not _is_lock_error(exc):
                raise
            if _is_directory(target):  # macOS says EPERM, Windows says access denied
                raise IsADirectoryError(errno.EISDIR, "Is a directory", target) from exc
            last_error = exc
            if attempt < attempts:
                logger.debug("%s is locked (%s); retrying in %.3gs", target, exc, wait)
                _sleep(wait)
                wait = min(wait * 2, max_wait)
        else:
            return True
    logger.warning("could not remove %s after %d attempt(s): %s", target, attempts, last_error)
    return False


def remove_sqlite_database(path: str | os.PathLike[str]) -> bool:
    """Remove a SQLite database file and its ``-wal``, ``-shm`` and ``-journal`` files.

    Dispose of every engine using the database first (``await
    authcore.db.dispose_engine(engine)``): on Windows an open connection
    keeps the files locked, and on POSIX it keeps writing to removed files.

    The database file goes first, each file through :func:`safe_unlink`. If
    it cannot be removed, the companions are left alone, so a database is
    never kept without its write-ahead log or rollback journal (that would
    lose or corrupt data). Missing files are fine. After a ``False``, remove
    the leftovers before creating a new database at the same path.

    Args:
        path: The database file path (not a URL). ``":memory:"`` has no files
            and returns ``True`` at once.

    Returns:
        ``True`` only when the database file and all three companions are gone.

    Raises:
        ValueError: *path* is empty or looks like a URL (contains ``://``).
        OSError: As :func:`safe_unlink`, for errors that retrying cannot fix.
    """
    database = os.fspath(path)
    if not database or "://" in database:
        raise ValueError(f"expected a SQLite database file path, got {database!r}")
    if database == ":memory:":
        return True
    if not safe_unlink(database):
        return False
    results = [safe_unlink(database + suffix) for suffix in _SQLITE_COMPANIONS]
    return all(results)


def _create_temporary(directory: str, name: str) -> tuple[int, str]:
    # Like tempfile.mkstemp, but mode 0o644 goes through the umask in the kernel:
    # mkstemp always makes 0o600, and reading the umask (os.umask) races other threads.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        candidate = os.path.join(directory, f".{name[:32]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(candidate, flags, 0o644), candidate
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "No usable temporary file name", directory)


def _fsync_directory(directory: str) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be fsynced on Windows
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with suppress(OSError):  # some filesystems refuse fsync on a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> None:
    """Replace the contents of a file atomically.

    The text is encoded, written to a dot-prefixed temporary file in the
    target's folder, fsynced and moved over the target with ``os.replace``;
    on POSIX the folder is then fsynced (best-effort) so the rename is durable.

    Guaranteed: if this raises or is interrupted (``KeyboardInterrupt``
    included) before ``os.replace`` has returned, the target is untouched and
    the temporary file is removed (barring a second interrupt during that
    cleanup). Readers never see a partial file.

    The text is written as given, with no newline translation on any platform.
    A replaced file keeps its permission bits on POSIX (best-effort; not its
    owner); a new file gets ``0o644`` minus the umask. If *path* is a symbolic
    link, the file it points to is replaced and the link is kept.

    Args:
        path: The file to create or replace. Its folder must exist.
        text: The new contents.
        encoding: The encoding used to turn *text* into bytes.

    Raises:
        TypeError: *text* is not a ``str``.
        UnicodeEncodeError, LookupError: *text* cannot be encoded or the
            *encoding* is unknown; nothing was touched.
        FileNotFoundError: The folder does not exist; nothing was created.
        IsADirectoryError: *path* is a directory.
        OSError: Writing, syncing or replacing failed.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    data = text.encode(encoding)
    target = os.path.realpath(os.fspath(path))
    directory, name = os.path.split(target)
    try:
        existing_mode: int | None = os.stat(target).st_mode
    except FileNotFoundError:
        existing_mode = None
    if existing_mode is not None and stat.S_ISDIR(existing_mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", target)
    fd, temporary = _create_temporary(directory, name)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if existing_mode is not None and os.name != "nt":
            with suppress(OSError):
                os.chmod(temporary, stat.S_IMODE(existing_mode))
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            safe_unlink(temporary, attempts=3, delay=0.05)
        raise
    _fsync_directory(directory)
