"""Tests for authcore.files.

Windows file locks cannot happen on the CI runners, so they are simulated by
replacing ``os.unlink`` with a function that raises what Windows raises
(``PermissionError`` carrying ``winerror`` 32) a given number of times. The
backoff sleep is replaced too: no test really sleeps.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from authcore import files
from authcore.files import atomic_write_text, remove_sqlite_database, safe_unlink

POSIX = os.name != "nt"
COMPANIONS = ("-wal", "-shm", "-journal")

real_unlink = os.unlink


def sharing_violation() -> OSError:
    """What Windows raises when another handle has the file open."""
    exc = PermissionError(errno.EACCES, "The process cannot access the file")
    exc.winerror = 32  # type: ignore[attr-defined]
    return exc


def lock_violation() -> OSError:
    exc = OSError(errno.EINVAL, "The process cannot access the file (locked region)")
    assert not isinstance(exc, PermissionError)  # only ``winerror`` marks it as a lock
    exc.winerror = 33  # type: ignore[attr-defined]
    return exc


class FlakyUnlink:
    """Replacement for ``os.unlink``: fails for *locked* paths the first *failures* times."""

    def __init__(self, make_error: Callable[[], OSError], failures: int, locked: set[str] | None):
        self.make_error = make_error
        self.failures = failures
        self.locked = locked
        self.calls: list[str] = []

    def __call__(self, path: str | os.PathLike[str]) -> None:
        path = os.fspath(path)
        self.calls.append(path)
        if (self.locked is None or path in self.locked) and self.failures > 0:
            self.failures -= 1
            raise self.make_error()
        real_unlink(path)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(files, "_sleep", recorded.append)
    return recorded


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FlakyUnlink]:
    def install(
        failures: int,
        make_error: Callable[[], OSError] = sharing_violation,
        locked: set[str] | None = None,
    ) -> FlakyUnlink:
        fake = FlakyUnlink(make_error, failures, locked)
        monkeypatch.setattr(os, "unlink", fake)
        monkeypatch.setattr(os, "remove", fake)
        return fake

    return install


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    path = tmp_path / "file.txt"
    path.write_text("old contents")
    return path


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_all_is_sorted_and_complete() -> None:
    assert files.__all__ == sorted(files.__all__)
    assert set(files.__all__) == {"atomic_write_text", "remove_sqlite_database", "safe_unlink"}


# safe_unlink ---------------------------------------------------------------------------------


def test_safe_unlink_removes_a_file(existing: Path, sleeps: list[float]) -> None:
    assert safe_unlink(existing) is True
    assert not existing.exists()
    assert sleeps == []


@pytest.mark.parametrize("name", ["missing.txt", "no-such-dir/missing.txt"])
def test_safe_unlink_missing_file_is_true(
    tmp_path: Path, name: str, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    assert safe_unlink(str(tmp_path / name)) is True
    assert sleeps == []
    assert caplog.records == []


@pytest.mark.parametrize(
    "make_error",
    [
        sharing_violation,
        lock_violation,
        lambda: OSError(errno.EBUSY, "Device or resource busy"),
        lambda: PermissionError(errno.EPERM, "Operation not permitted"),
    ],
    ids=["winerror-32", "winerror-33", "EBUSY", "EPERM"],
)
def test_safe_unlink_retries_lock_errors_with_backoff(
    existing: Path,
    flaky: Callable[..., FlakyUnlink],
    make_error: Callable[[], OSError],
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="authcore.files")
    fake = flaky(3, make_error)
    assert safe_unlink(existing) is True
    assert len(fake.calls) == 4
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert not existing.exists()
    assert caplog.records == []  # succeeding after retries is not worth a warning


def test_safe_unlink_gives_up_after_the_last_attempt(
    existing: Path,
    flaky: Callable[..., FlakyUnlink],
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="authcore.files")
    fake = flaky(failures=100)
    assert safe_unlink(existing) is False
    assert len(fake.calls) == 5
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8])  # no pointless wait after the last try
    assert existing.read_text() == "old contents"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].name == "authcore.files"
    assert str(existing) in warnings[0].getMessage()
    assert "5 attempt" in warnings[0].getMessage()


def test_safe_unlink_single_attempt_never_sleeps(
    existing: Path, flaky: Callable[..., FlakyUnlink], sleeps: list[float]
) -> None:
    fake = flaky(failures=1)
    assert safe_unlink(existing, attempts=1) is False
    assert len(fake.calls) == 1
    assert sleeps == []
    assert existing.exists()


@pytest.mark.parametrize(
    ("attempts", "delay", "expected"),
    [
        (6, 1.0, [1.0, 2.0, 2.0, 2.0, 2.0]),  # each wait is capped at two seconds
        (3, 5.0, [5.0, 5.0]),  # unless delay itself is larger
        (4, 0, [0.0, 0.0, 0.0]),
        (3, 0.25, [0.25, 0.5]),
    ],
)
def test_safe_unlink_backoff_schedule(
    existing: Path,
    flaky: Callable[..., FlakyUnlink],
    sleeps: list[float],
    attempts: int,
    delay: float,
    expected: list[float],
) -> None:
    flaky(failures=100)
    assert safe_unlink(existing, attempts=attempts, delay=delay) is False
    assert sleeps == pytest.approx(expected)


def test_safe_unlink_file_vanishing_while_locked_is_true(
    existing: Path, flaky: Callable[..., FlakyUnlink], sleeps: list[float]
) -> None:
    def locked_then_gone() -> OSError:
        real_unlink(existing)  # another process removed it while we waited
        return sharing_violation()

    fake = flaky(1, locked_then_gone)
    assert safe_unlink(existing) is True
    assert len(fake.calls) == 2
    assert sleeps == pytest.approx([0.1])


@pytest.mark.parametrize(
    "make_error",
    [
        lambda: OSError(errno.ENAMETOOLONG, "File name too long"),
        lambda: NotADirectoryError(errno.ENOTDIR, "Not a directory"),
        lambda: OSError(errno.EIO, "Input/output error"),
    ],
    ids=["ENAMETOOLONG", "ENOTDIR", "EIO"],
)
def test_safe_unlink_raises_non_lock_errors_at_once(
    existing: Path,
    flaky: Callable[..., FlakyUnlink],
    make_error: Callable[[], OSError],
    sleeps: list[float],
) -> None:
    fake = flaky(1, make_error)
    with pytest.raises(OSError, match=make_error().strerror) as info:
        safe_unlink(existing)
    assert info.value.errno == make_error().errno
    assert len(fake.calls) == 1
    assert sleeps == []


def test_safe_unlink_real_name_too_long_raises(tmp_path: Path, sleeps: list[float]) -> None:
    with pytest.raises(OSError, match="too long") as info:
        safe_unlink(tmp_path / ("x" * 1000))
    assert info.value.errno == errno.ENAMETOOLONG
    assert sleeps == []


def test_safe_unlink_directory_raises(tmp_path: Path, sleeps: list[float]) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(IsADirectoryError):
        safe_unlink(folder)
    assert folder.is_dir()
    assert sleeps == []


def test_safe_unlink_directory_raises_where_unlink_says_permission_denied(
    tmp_path: Path, flaky: Callable[..., FlakyUnlink], sleeps: list[float]
) -> None:
    # macOS (EPERM) and Windows (access denied) report a directory as a permission error.
    folder = tmp_path / "folder"
    folder.mkdir()
    flaky(1, lambda: PermissionError(errno.EPERM, "Operation not permitted"))
    with pytest.raises(IsADirectoryError) as info:
        safe_unlink(folder)
    assert isinstance(info.value.__cause__, PermissionError)
    assert sleeps == []


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_safe_unlink_removes_a_symlink_not_its_target(existing: Path) -> None:
    link = existing.with_name("link")
    link.symlink_to(existing)
    assert safe_unlink(link) is True
    assert not os.path.lexists(link)
    assert existing.read_text() == "old contents"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"attempts": 0}, ValueError),
        ({"attempts": -1}, ValueError),
        ({"delay": -0.1}, ValueError),
        ({"delay": float("inf")}, ValueError),
        ({"delay": float("nan")}, ValueError),
        ({"attempts": 2.0}, TypeError),
        ({"attempts": True}, TypeError),
        ({"delay": "0.1"}, TypeError),
        ({"delay": None}, TypeError),
    ],
)
def test_safe_unlink_validates_arguments_before_touching_the_file(
    existing: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        safe_unlink(existing, **kwargs)  # type: ignore[arg-type]
    assert existing.exists()


# remove_sqlite_database ------------------------------------------------------------------------


def make_wal_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone() == ("wal",)
    conn.execute("PRAGMA wal_autocheckpoint=0")  # keep the rows in the WAL
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("row",)] * 100)
    conn.commit()
    return conn


def test_remove_sqlite_database_in_wal_mode(tmp_path: Path, sleeps: list[float]) -> None:
    db = tmp_path / "app.db"
    conn = make_wal_database(db)
    assert Path(f"{db}-wal").exists()
    assert Path(f"{db}-shm").exists()
    conn.close()
    assert db.exists()
    assert remove_sqlite_database(db) is True
    for path in [db, *(Path(f"{db}{suffix}") for suffix in COMPANIONS)]:
        assert not path.exists()
    assert listing(tmp_path) == []
    assert sleeps == []


def test_remove_sqlite_database_after_a_crash_removes_the_wal(tmp_path: Path) -> None:
    # Copying the files of an open connection gives what a killed process leaves behind.
    live = tmp_path / "live.db"
    crashed = tmp_path / "crashed.db"
    conn = make_wal_database(live)
    try:
        for suffix in ("", "-wal", "-shm"):
            shutil.copyfile(f"{live}{suffix}", f"{crashed}{suffix}")
    finally:
        conn.close()
    Path(f"{crashed}-journal").write_bytes(b"")
    assert Path(f"{crashed}-wal").stat().st_size > 0
    assert remove_sqlite_database(str(crashed)) is True
    assert listing(tmp_path) == ["live.db"]


def test_remove_sqlite_database_with_companions_missing(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    Path(f"{db}-shm").write_bytes(b"")
    assert remove_sqlite_database(db) is True
    assert listing(tmp_path) == []


def test_remove_sqlite_database_orphaned_companions(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    for suffix in COMPANIONS:
        Path(f"{db}{suffix}").write_bytes(b"stale")
    assert remove_sqlite_database(db) is True
    assert listing(tmp_path) == []


def test_remove_sqlite_database_nothing_there(tmp_path: Path) -> None:
    assert remove_sqlite_database(tmp_path / "never.db") is True


def test_remove_sqlite_database_locked_database_keeps_its_wal(
    tmp_path: Path,
    flaky: Callable[..., FlakyUnlink],
    sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = tmp_path / "app.db"
    for suffix in ("", *COMPANIONS):
        Path(f"{db}{suffix}").write_bytes(b"data")
    fake = flaky(failures=100, locked={str(db)})
    assert remove_sqlite_database(db) is False
    assert set(fake.calls) == {str(db)}  # companions untouched: never a database without its WAL
    assert len(sleeps) == 4
    assert listing(tmp_path) == sorted(f"app.db{s}" for s in ("", *COMPANIONS))
    assert [r.name for r in caplog.records if r.levelno == logging.WARNING] == ["authcore.files"]


def test_remove_sqlite_database_locked_companion(
    tmp_path: Path, flaky: Callable[..., FlakyUnlink], sleeps: list[float]
) -> None:
    db = tmp_path / "app.db"
    for suffix in ("", *COMPANIONS):
        Path(f"{db}{suffix}").write_bytes(b"data")
    flaky(failures=100, locked={f"{db}-shm"})
    assert remove_sqlite_database(db) is False
    assert listing(tmp_path) == ["app.db-shm"]  # the others were still removed


def test_remove_sqlite_database_retries_a_briefly_locked_database(
    tmp_path: Path, flaky: Callable[..., FlakyUnlink], sleeps: list[float]
) -> None:
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    flaky(failures=2, locked={str(db)})
    assert remove_sqlite_database(db) is True
    assert listing(tmp_path) == []
    assert sleeps == pytest.approx([0.1, 0.2])


def test_remove_sqlite_database_memory_is_true(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flaky: Callable[..., FlakyUnlink]
) -> None:
    monkeypatch.chdir(tmp_path)
    fake = flaky(failures=0)
    assert remove_sqlite_database(":memory:") is True
    assert fake.calls == []


@pytest.mark.parametrize("bad", ["", "sqlite+aiosqlite:///app.db", "sqlite:///app.db"])
def test_remove_sqlite_database_refuses_urls(bad: str) -> None:
    with pytest.raises(ValueError, match="file path"):
        remove_sqlite_database(bad)


# atomic_write_text -----------------------------------------------------------------------------


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(old)


def test_atomic_write_creates_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "new.txt"
    atomic_write_text(target, "hello\n")
    assert target.read_bytes() == b"hello\n"
    assert listing(tmp_path) == ["new.txt"]


def test_atomic_write_replaces_an_existing_file(existing: Path, tmp_path: Path) -> None:
    atomic_write_text(str(existing), "new contents")
    assert existing.read_text() == "new contents"
    assert listing(tmp_path) == ["file.txt"]


def test_atomic_write_shorter_and_empty_text(existing: Path) -> None:
    atomic_write_text(existing, "")
    assert existing.read_bytes() == b""


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "latin-1"])
def test_atomic_write_unicode_exact_bytes(tmp_path: Path, encoding: str) -> None:
    text = "héllo wörld\r\nline two\nend" if encoding == "latin-1" else "日本語 ✓ 🙂\r\n\n\x00end"
    target = tmp_path / "uni.txt"
    atomic_write_text(target, text, encoding=encoding)
    assert target.read_bytes() == text.encode(encoding)  # no newline translation


def test_atomic_write_large_text(tmp_path: Path) -> None:
    text = "0123456789abcdef" * 500_000  # 8 MB: more than one os.write may take
    target = tmp_path / "big.txt"
    atomic_write_text(target, text)
    assert target.read_text() == text


def test_atomic_write_uses_a_dot_temporary_in_the_same_folder(
    existing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moves: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(src: str, dst: str) -> None:
        moves.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    atomic_write_text(existing, "x")
    [(src, dst)] = moves
    assert os.path.dirname(src) == os.path.dirname(dst) == str(existing.parent.resolve())
    assert os.path.basename(src).startswith(".")
    assert dst == str(existing.resolve())


@pytest.mark.parametrize("target_exists", [True, False], ids=["replace", "create"])
@pytest.mark.parametrize("failing", ["replace", "fsync", "write"])
@pytest.mark.parametrize(
    "error",
    [OSError(errno.ENOSPC, "No space left on device"), KeyboardInterrupt()],
    ids=["OSError", "KeyboardInterrupt"],
)
def test_atomic_write_failure_leaves_everything_as_it_was(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sleeps: list[float],
    target_exists: bool,
    failing: str,
    error: BaseException,
) -> None:
    target = tmp_path / "config.toml"
    (tmp_path / "other.txt").write_text("neighbour")
    if target_exists:
        target.write_text("old = 1\n")
    before = listing(tmp_path)
    calls: list[str] = []

    def fail(*args: object) -> None:
        calls.append(failing)
        raise error

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(type(error)):
        atomic_write_text(target, "new = 2\n")
    monkeypatch.undo()
    assert calls == [failing]
    assert listing(tmp_path) == before  # no temporary file left behind
    if target_exists:
        assert target.read_text() == "old = 1\n"
    else:
        assert not target.exists()
    assert sleeps == []


def test_atomic_write_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "missing" / "file.txt", "x")
    assert listing(tmp_path) == []


def test_atomic_write_to_a_directory(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path / "folder", "x")
    assert listing(tmp_path) == ["folder"]


def test_atomic_write_encoding_error_touches_nothing(existing: Path, tmp_path: Path) -> None:
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(existing, "snowman ☃", encoding="ascii")
    with pytest.raises(LookupError):
        atomic_write_text(existing, "x", encoding="no-such-codec")
    assert existing.read_text() == "old contents"
    assert listing(tmp_path) == ["file.txt"]


def test_atomic_write_refuses_bytes(existing: Path) -> None:
    with pytest.raises(TypeError, match="str"):
        atomic_write_text(existing, b"bytes")  # type: ignore[arg-type]
    assert existing.read_text() == "old contents"


@pytest.mark.skipif(not POSIX, reason="no directory fsync on Windows")
def test_atomic_write_fsyncs_file_then_folder(
    existing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[bool] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    atomic_write_text(existing, "x")
    assert synced == [False, True]


@pytest.mark.skipif(not POSIX, reason="no directory fsync on Windows")
def test_atomic_write_folder_fsync_is_best_effort(
    existing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic_write_text(existing, "new contents")
    assert existing.read_text() == "new contents"
    assert listing(tmp_path) == ["file.txt"]


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o755])
def test_atomic_write_keeps_permission_bits(
    existing: Path, umask: Callable[[int], None], mode: int
) -> None:
    umask(0o077)  # must not matter for a replaced file
    existing.chmod(mode)
    atomic_write_text(existing, "x")
    assert stat.S_IMODE(existing.stat().st_mode) == mode


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_write_new_file_mode_follows_umask(
    tmp_path: Path, umask: Callable[[int], None], mask: int, expected: int
) -> None:
    umask(mask)
    target = tmp_path / "new.txt"
    atomic_write_text(target, "x")
    assert stat.S_IMODE(target.stat().st_mode) == expected


@pytest.mark.skipif(not POSIX, reason="symlinks need privileges on Windows")
def test_atomic_write_through_a_symlink_keeps_the_link(existing: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(existing)
    atomic_write_text(link, "via link")
    assert link.is_symlink()
    assert existing.read_text() == "via link"
    assert listing(tmp_path) == ["file.txt", "link.txt"]


def test_atomic_write_many_times_leaves_one_file(tmp_path: Path) -> None:
    target = tmp_path / "counter"
    for i in range(10):
        atomic_write_text(target, str(i))
    assert target.read_text() == "9"
    assert listing(tmp_path) == ["counter"]


def test_atomic_write_long_file_name(tmp_path: Path) -> None:
    target = tmp_path / ("é" * 120)  # 240 UTF-8 bytes: the temporary name must stay short
    atomic_write_text(target, "x")
    assert target.read_text() == "x"
    assert listing(tmp_path) == [target.name]


def test_atomic_write_skips_taken_temporary_names(
    existing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = iter(["taken", "taken", "free"])
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes: next(names))
    squatter = tmp_path / ".file.txt.taken.tmp"
    squatter.write_text("someone else's")
    atomic_write_text(existing, "new contents")
    assert existing.read_text() == "new contents"
    assert squatter.read_text() == "someone else's"
    assert listing(tmp_path) == [".file.txt.taken.tmp", "file.txt"]


def test_atomic_write_gives_up_when_no_temporary_name_is_free(
    existing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes: "taken")
    (tmp_path / ".file.txt.taken.tmp").write_text("someone else's")
    with pytest.raises(FileExistsError, match="temporary"):
        atomic_write_text(existing, "new contents")
    assert existing.read_text() == "old contents"


@pytest.mark.skipif(not POSIX, reason="no directory fsync on Windows")
def test_atomic_write_folder_that_cannot_be_opened(
    existing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def fake_open(path: str, flags: int, mode: int = 0o777) -> int:
        if os.path.isdir(path):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", fake_open)
    atomic_write_text(existing, "new contents")
    assert existing.read_text() == "new contents"
