"""An example app under ``uvicorn`` in a child process on 127.0.0.1, as a user would serve it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServedApp:
    """``uvicorn <module>:app`` from examples/, configured only by its environment.

    Args:
        module: The example's module name (``"webapp"``).
        folder: The working folder; the SQLite database and the log go there.
        env: Settings added to a copy of the environment without ``AUTHCORE_*``
            or ``WEBAPP_*`` names; ``AUTHCORE_DATABASE_URL`` defaults to a file
            in *folder*.
    """

    def __init__(self, module: str, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environ = {
            k: v for k, v in os.environ.items() if not k.startswith(("AUTHCORE_", "WEBAPP_"))
        }
        environ["AUTHCORE_DATABASE_URL"] = f"sqlite+aiosqlite:///{folder / 'app.db'}"
        environ.update(env)
        self.log = folder / "uvicorn.log"
        command = [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(EXAMPLES)]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                command,
                cwd=folder,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"uvicorn exited early:\n{self.log.read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)  # polling for readiness, bounded by the deadline
        self.stop()
        pytest.fail("uvicorn did not start listening")

    def stop(self) -> str:
        """Stop the server (SIGTERM: a graceful shutdown); everything it logged."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.communicate(timeout=20)
        return self.log.read_text()
