"""The OpenAPI schema tells the truth: schemathesis against the example apps under uvicorn.

Every operation gets a bounded number of generated requests (JSON and form
bodies, valid and invalid), anonymous and then with a logged-in session; the
checks are: no 5xx, and every status code, content type, header and body is
one the schema documents. Needs ``pip install schemathesis``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from .served_app import ServedApp

pytest.importorskip("schemathesis", reason="pip install schemathesis")

pytestmark = pytest.mark.slow

SECRET = "a-schemathesis-secret-key-of-sufficient-length"
# Per operation in the fuzzing phase (seeded). The coverage phase adds its own deterministic
# cases for every operation (about 300 per run): boundaries, missing and wrong-typed fields.
MAX_EXAMPLES = 5
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


def schemathesis(app: ServedApp, folder: Path, *extra: str) -> str:
    """``st run`` against *app*'s schema; fails the test with its report unless it passed."""
    command = [sys.executable, "-m", "schemathesis.cli", "run", f"{app.base}/openapi.json"]
    command += ["--max-examples", str(MAX_EXAMPLES), "--checks", CHECKS, "--seed", "1"]
    command += ["--phases", "examples,coverage,fuzzing", "--no-color", *extra]
    result = subprocess.run(
        command, cwd=folder, capture_output=True, text=True, timeout=900, check=False
    )
    print(result.stdout[result.stdout.find("SUMMARY") :])  # `pytest -s` shows the figures
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def register_and_log_in(app: ServedApp) -> tuple[str, dict[str, str]]:
    """A user's session: (the session cookie, the answer to a JSON login)."""
    account = {"username": "schemathesis", "password": "a long enough pass phrase"}
    for path in ("/auth/register", "/auth/login"):
        request = urllib.request.Request(
            app.base + path,
            data=json.dumps(account).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
            cookie = response.headers.get("set-cookie", "").split(";")[0]
    return cookie, body


@pytest.mark.parametrize("module", ["webapp", "fastapi_app"])
def test_schema_matches_the_answers(module: str, tmp_path: Path) -> None:
    app = ServedApp(module, tmp_path, {"AUTHCORE_SECRET_KEY": SECRET})
    try:
        anonymous = schemathesis(app, tmp_path)
        cookie, pair = register_and_log_in(app)
        credentials = (
            ["-H", f"Cookie: {cookie}"]
            if module == "webapp"
            else ["-H", f"Authorization: Bearer {pair['access_token']}"]
        )
        # Logging out or rotating would end the session the rest of the run uses.
        keep = ["--exclude-path", "/auth/logout", "--exclude-path", "/auth/refresh"]
        logged_in = schemathesis(app, tmp_path, *credentials, *keep)
    finally:
        log = app.stop()
    for report in (anonymous, logged_in):
        assert " passed" in report
        assert "failed" not in report.split("Test cases:")[1]
    assert "Traceback" not in log, log
