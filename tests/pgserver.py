"""A throwaway PostgreSQL server for the test suite, using only the standard library.

    with PostgresServer() as pg:
        engine = create_async_engine(pg.url())
        ...

Each server lives in its own temporary folder (data directory, log file and
unix sockets), listens on a free port of 127.0.0.1 only, trusts every
connection (the folder is private to the server's OS user) and runs with
``fsync``, ``synchronous_commit`` and ``full_page_writes`` off. Any number of
them can run side by side, one per pytest-xdist worker for instance.

Guaranteed to leave nothing behind: :meth:`PostgresServer.stop` stops the
server and removes its folder; an ``atexit`` hook does the same for servers
still running when the interpreter exits, and a tiny watchdog process does it
when the interpreter dies without running ``atexit`` (``SIGKILL``, a crash).

When the current user is root, the folder is handed to the ``postgres`` OS
user and the server runs as that user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresServer", "PostgresServerError", "find_pg_bin"]

_SERVER_TOOLS = ("initdb", "pg_ctl", "postgres")
_SERVICE_USER = "postgres"  # OS user the server runs as when we are root
_SUPERUSER = "postgres"  # database superuser created by initdb
_START_ATTEMPTS = 5  # tries with a fresh port when another process took ours
_PG_CTL_TIMEOUT = 60  # seconds pg_ctl waits for start/stop

_live: set[PostgresServer] = set()
_live_lock = threading.Lock()


class PostgresServerError(RuntimeError):
    """The throwaway server could not be created, started or stopped."""


def _is_bindir(folder: Path) -> bool:
    return all(os.access(folder / tool, os.X_OK) for tool in _SERVER_TOOLS)


def _version_key(folder: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    digits = re.findall(r"\d+", folder.parent.name)
    return tuple(int(d) for d in digits) or (-1,)


def find_pg_bin() -> Path | None:
    """Return the folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``.

    Looks at ``PATH`` first (following symlinks, so ``/usr/local/bin/initdb ->
    /usr/lib/postgresql/15/bin/initdb`` yields the real folder, where ``psql``
    of the same version lives too), then ``/usr/lib/postgresql/*/bin`` newest
    version first, then ``pg_config --bindir``.
    """
    found = shutil.which("initdb")
    if found:
        folder = Path(found).resolve().parent
        if _is_bindir(folder):
            return folder
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for folder in debian:
        if _is_bindir(folder):
            return folder
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        if out and _is_bindir(Path(out)):
            return Path(out)
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env() -> dict[str, str]:
    """The environment without libpq/server variables that would redirect our tools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # English messages we can match ("Address already in use")
    return env


def _traversable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether every folder from ``/`` down to ``path`` can be entered by uid/gid."""
    for folder in [path, *path.parents]:
        st = folder.stat()
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid == gid:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return False
    return True


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie.

    A zombie (exited, not yet reaped, as under a container PID 1 that never
    reaps) still answers ``kill(pid, 0)`` but is gone for our purposes.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): kill(pid, 0) is all we know


def _postmaster_pid(data_dir: Path) -> int | None:
    try:
        with open(data_dir / "postmaster.pid") as fh:
            return int(fh.readline())
    except (OSError, ValueError):
        return None


def _wait_gone(pid: int, timeout: float = 30.0) -> bool:
    """Wait until process *pid* has exited; ``False`` if it is still there at *timeout*."""
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _kill_postmaster(data_dir: Path) -> None:
    """Immediate shutdown by SIGQUIT, then SIGKILL, of the server of ``data_dir``."""
    try:
        with open(data_dir / "postmaster.pid") as fh:
            pid = int(fh.readline())
    except (OSError, ValueError):
        return
    for sig in (signal.SIGQUIT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.05)
        if not _alive(pid):
            return


def _watchdog_main(root: str) -> None:
    """Body of the watchdog process (``python pgserver.py --watchdog ROOT``).

    Waits until its stdin reaches end of file, which happens when the owning
    process closes the pipe or dies however it dies (even ``SIGKILL``), then
    kills any server still running from ``ROOT/data`` and removes ``ROOT``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()
    _kill_postmaster(Path(root) / "data")
    shutil.rmtree(root, ignore_errors=True)


class PostgresServer:
    """A private PostgreSQL server in a temporary folder.

    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    :meth:`stop_server`, :meth:`start_server` and :meth:`restart` stop and
    start the server process on the same port while keeping its data, for
    tests of what happens when the database goes away.

    Attributes:
        bindir: the folder of the server binaries.
        port: the TCP port on 127.0.0.1 (``None`` before :meth:`start`).
        root: the temporary folder (``None`` before :meth:`start` and after
            :meth:`stop`); the data directory is ``root / "data"``.
        startup_seconds: how long the last :meth:`start` took.
    """

    def __init__(self, bindir: Path | str | None = None) -> None:
        found = Path(bindir) if bindir is not None else find_pg_bin()
        if found is None or not _is_bindir(found):
            raise PostgresServerError(
                "no PostgreSQL server binaries (initdb, pg_ctl, postgres) found; "
                "install them, e.g. `apt-get install postgresql`"
            )
        self.bindir: Path = found
        self.port: int | None = None
        self.root: Path | None = None
        self.startup_seconds: float | None = None
        self._running = False
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._run_as: tuple[int, int] | None = None
        if os.geteuid() == 0:
            import pwd

            try:
                entry = pwd.getpwnam(_SERVICE_USER)
            except KeyError:
                raise PostgresServerError(
                    f"running as root but there is no {_SERVICE_USER!r} OS user to run "
                    "the server as (PostgreSQL refuses to run as root)"
                ) from None
            self._run_as = (entry.pw_uid, entry.pw_gid)

    # -- public API ---------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self._running else "stopped"
        return f"<PostgresServer {state} port={self.port} root={self.root}>"

    @property
    def running(self) -> bool:
        """Whether the server process is up (as far as this object knows)."""
        return self._running

    @property
    def data_dir(self) -> Path:
        return self._require_root() / "data"

    @property
    def log_file(self) -> Path:
        """The server log; handy to print when a test fails."""
        return self._require_root() / "postgres.log"

    def start(self) -> PostgresServer:
        """Create the data directory and start the server on a free port.

        Raises:
            PostgresServerError: initdb or the server failed; the folder is removed.
        """
        if self.root is not None:
            raise PostgresServerError("this server was already started")
        began = time.monotonic()
        with _live_lock:
            _live.add(self)
        try:
            self._make_root()
            self._initdb()
            self._start_on_free_port()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its folder. Safe to call twice."""
        try:
            if self._running:
                self.stop_server()
        finally:
            try:
                if self.root is not None:
                    shutil.rmtree(self.root, ignore_errors=True)
                    self.root = None
            finally:
                self._stop_watchdog()
                with _live_lock:
                    _live.discard(self)

    def stop_server(self) -> None:
        """Stop the server process (``pg_ctl stop -m fast``) and keep the data."""
        if not self._running:
            return
        pid = _postmaster_pid(self.data_dir)
        try:
            self._pg_ctl("stop", "-m", "fast")
        except PostgresServerError:
            self._kill_postmaster()
        # pg_ctl returns once postmaster.pid is gone, a moment before the process is:
        # "stopped" here means the process has exited and released its port.
        if pid is not None and not _wait_gone(pid):
            self._kill_postmaster()
        self._running = False

    def start_server(self) -> None:
        """Start the server again on the same port, with the same data."""
        if self._running:
            return
        if self.port is None:
            raise PostgresServerError("start() was never called")
        self._pg_ctl_start(self.port)

    def restart(self) -> None:
        """Stop and start the server process, keeping data and port."""
        self.stop_server()
        self.start_server()

    def url(self, dbname: str = "postgres") -> str:
        """An SQLAlchemy asyncpg URL for ``dbname`` as the superuser."""
        if self.port is None:
            raise PostgresServerError("start() was never called")
        return f"postgresql+asyncpg://{_SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        """Create the database ``name`` and return its :meth:`url`."""
        quoted = '"' + name.replace('"', '""') + '"'
        self.psql(f"CREATE DATABASE {quoted}")
        return self.url(name)

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run ``sql`` (one or more statements) as the superuser; return psql's output.

        Output is unaligned, tuples only, ``|``-separated, without the trailing
        newline, so ``pg.psql("select 1")`` is ``"1"``.

        Raises:
            PostgresServerError: psql failed; its stderr is in the message.
        """
        if not self._running or self.port is None:
            raise PostgresServerError("the server is not running")
        cmd = [
            str(self.bindir / "psql"),
            "--no-psqlrc",
            "--quiet",
            "--no-align",
            "--tuples-only",
            "--set=ON_ERROR_STOP=1",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--username={_SUPERUSER}",
            f"--dbname={dbname}",
            "--file=-",
        ]
        proc = subprocess.run(
            cmd, input=sql, capture_output=True, text=True, env=_clean_env(), timeout=60
        )
        if proc.returncode != 0:
            raise PostgresServerError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout.rstrip("\n")

    # -- internals ----------------------------------------------------------

    def _require_root(self) -> Path:
        if self.root is None:
            raise PostgresServerError("the server has no folder (not started, or stopped)")
        return self.root

    def _make_root(self) -> None:
        base = Path(tempfile.gettempdir())
        if self._run_as is not None and not _traversable_by(base, *self._run_as):
            base = Path("/tmp")  # mode 1777: every user can enter it
        # mkdtemp gives mode 0o700: only the server's OS user (and root) can
        # reach the data or the unix sockets, which is what makes trust auth safe.
        self.root = Path(tempfile.mkdtemp(prefix="authcore-pg-", dir=base))
        if self._run_as is not None:
            os.chown(self.root, *self._run_as)
        # Unix socket paths are limited to about 107 bytes.
        if len(str(self.root / ".s.PGSQL.65535.lock")) > 100:
            raise PostgresServerError(f"temporary folder path too long for sockets: {self.root}")
        self._watchdog = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(__file__), "--watchdog", str(self.root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal must not reach it
        )

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        assert watchdog.stdin is not None
        with contextlib.suppress(OSError):
            watchdog.stdin.close()
        try:
            watchdog.wait(timeout=30)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()

    def _run(
        self, *args: str, timeout: float = _PG_CTL_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """Run a server tool as the server's OS user."""
        root = self._require_root()
        kwargs: dict[str, object] = {}
        if self._run_as is not None:
            uid, gid = self._run_as
            kwargs = {"user": uid, "group": gid, "extra_groups": []}
        env = _clean_env()
        env["HOME"] = str(root)
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd=root,  # the caller's cwd may not be readable by the server's user
            env=env,
            timeout=timeout,
            **kwargs,
        )

    def _initdb(self) -> None:
        proc = self._run(
            "initdb",
            f"--pgdata={self.data_dir}",
            f"--username={_SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        if proc.returncode != 0:
            raise PostgresServerError(f"initdb failed:\n{proc.stdout}\n{proc.stderr}")
        root = self._require_root()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_wal_senders": "0",
            "wal_level": "minimal",
            "shared_buffers": "32MB",
            "log_min_messages": "warning",
            "log_connections": "off",
        }
        conf = "".join(f"{key} = {value}\n" for key, value in settings.items())
        hba = "local all all trust\nhost all all 127.0.0.1/32 trust\n"
        # These files exist already, so they keep their owner (the server's user).
        for name, text, mode in (("postgresql.conf", conf, "a"), ("pg_hba.conf", hba, "w")):
            with open(self.data_dir / name, mode) as fh:
                fh.write(("\n# authcore test server\n" if mode == "a" else "") + text)

    def _start_on_free_port(self) -> None:
        last = ""
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            try:
                self._pg_ctl_start(port)
            except _PortTaken as exc:  # another process bound the port in between
                last = str(exc)
                continue
            self.port = port
            return
        raise PostgresServerError(f"no free port after {_START_ATTEMPTS} attempts: {last}")

    def _pg_ctl_start(self, port: int) -> None:
        log = self.log_file
        offset = log.stat().st_size if log.exists() else 0
        proc = self._run(
            "pg_ctl",
            "start",
            "--wait",
            f"--timeout={_PG_CTL_TIMEOUT}",
            f"--pgdata={self.data_dir}",
            f"--log={log}",
            f"--options=-p {port}",
        )
        if proc.returncode == 0:
            self.port = port
            self._running = True
            return
        tail = ""
        if log.exists():
            with open(log, errors="replace") as fh:
                fh.seek(offset)
                tail = fh.read()
        if "Address already in use" in tail or "could not create any TCP/IP sockets" in tail:
            raise _PortTaken(tail.strip())
        # pg_ctl may time out with the postmaster still starting: never leave it behind.
        self._kill_postmaster()
        raise PostgresServerError(
            f"pg_ctl start failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}\n"
            f"server log:\n{tail}"
        )

    def _pg_ctl(self, *args: str) -> None:
        proc = self._run("pg_ctl", *args, "--wait", f"--pgdata={self.data_dir}")
        if proc.returncode != 0:
            raise PostgresServerError(f"pg_ctl {args[0]} failed: {proc.stdout}{proc.stderr}")

    def _kill_postmaster(self) -> None:
        _kill_postmaster(self.data_dir)


class _PortTaken(PostgresServerError):
    pass


@atexit.register
def _stop_all() -> None:
    """Backstop: stop every server a session forgot (or could not) stop."""
    with _live_lock:
        servers = list(_live)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["--watchdog"]:
    _watchdog_main(sys.argv[2])
