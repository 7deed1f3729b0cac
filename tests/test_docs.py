"""Every code block in README.md and docs/ runs as written, against the installed package.

Python blocks are found by pytest-examples and run like this, each in its own
empty working folder, with ``AUTHCORE_SECRET_KEY`` set (the docs tell readers to
export one, made by ``authcore gen-secret``):

- a block that defines ``test_*`` functions is a test module: it runs with pytest
  in a subprocess, in pytest-asyncio's default (strict) mode, and must pass;
- a block that is a snippet include (``--8<-- "examples/x.py"``) shows a file of
  ``examples/``, which ``tests/test_examples.py`` runs;
- any other block runs as ``__main__``; when it leaves a FastAPI ``app`` behind,
  the app is started under ``TestClient`` (its lifespan runs), a user registers
  and logs in when the app has authcore's router, and every GET route without
  path parameters must answer 200 to that user's bearer token.

Fragments (a signature, one line of a larger file, code that needs a server or a
project of your own) are marked in the Markdown with this comment on the line
right before the fence, invisible on GitHub and in the MkDocs site::

    <!-- docs-test: fragment -->

Shell blocks (``bash``, ``console``) follow the same rule: a ``console`` block
that is not a fragment runs each ``$ command`` line in an empty folder and must
print exactly the lines under it. ``test_every_block_is_run_or_marked`` keeps the
list of fragments honest: a block is either run here or marked.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

from .sandbox import LEAN

ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- docs-test: fragment -->"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SECRET = "docs-test-secret-key-0123456789abcdef"  # >= 32 bytes, like gen-secret's
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"\s*$')
SHELL_FENCE = re.compile(r"^( *)```(bash|console|sh|shell)\b[^\n]*\n(.*?)^\1```", re.M | re.S)


def is_fragment(path: Path, fence_line: int) -> bool:
    """Whether the line before the fence (1-based ``fence_line``) is the marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return fence_line >= 2 and lines[fence_line - 2].strip() == MARKER


def python_blocks() -> Iterator[CodeExample]:
    yield from find_examples(*PAGES)


def block_id(example: CodeExample) -> str:
    return f"{example.path.relative_to(ROOT).as_posix()}:{example.start_line}"


# docs/testing.md is being rewritten on another branch; these blocks of the current page
# fail as written (the reconciliation drops this list). Strict: a block that starts to
# pass fails here until it leaves the list.
KNOWN_FAILING: dict[str, str] = {}  # "docs/page.md:LINE": why it fails (a strict xfail)


def runnable_python_blocks() -> Iterator[Any]:
    for example in python_blocks():
        if is_fragment(example.path, example.start_line):
            continue
        reason = KNOWN_FAILING.get(block_id(example))
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        yield pytest.param(example, id=block_id(example), marks=marks)


RUNNABLE = list(runnable_python_blocks())


@pytest.fixture
def in_empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AUTHCORE_SECRET_KEY", SECRET)
    monkeypatch.delenv("AUTHCORE_DATABASE_URL", raising=False)
    return tmp_path


def exercise_app(app: Any) -> None:
    """Start *app* under TestClient; register, log in, GET every parameterless route.

    The routes come from the app's OpenAPI schema (FastAPI may include routers lazily).
    """
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    assert isinstance(app, FastAPI)
    headers: dict[str, str] = {}
    with TestClient(app) as client:  # runs the lifespan: schema on start, disposal on stop
        paths: dict[str, dict[str, Any]] = client.get("/openapi.json").json()["paths"]
        register = next((p for p in paths if p.endswith("/register")), None)
        auth_prefix = "/auth/"
        if register is not None:
            auth_prefix = register.removesuffix("register")
            account = {"username": "docs-reader", "password": "a long enough password"}
            assert client.post(register, json=account).status_code == 201
            reply = client.post(auth_prefix + "login", data=account)
            assert reply.status_code == 200, reply.text
            headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
        own = [
            path
            for path, operations in paths.items()
            if "get" in operations and "{" not in path and not path.startswith(auth_prefix)
        ]
        assert own, "the app defines no GET route of its own to call"
        for path in own:
            reply = client.get(path, headers=headers)
            assert reply.status_code == 200, f"GET {path}: {reply.status_code} {reply.text}"


def run_as_test_module(example: CodeExample, folder: Path, config: pytest.Config) -> None:
    # A reader's project: pytest-asyncio in its default (strict) mode, the loop scope
    # set (pytest-asyncio warns when it is not, and warnings are errors here).
    (folder / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n", encoding="utf-8"
    )
    (folder / "test_docs_block.py").write_text(example.source, encoding="utf-8")
    # This run's own -W options (e.g. the floors gate's) apply to the block's run too.
    ignored = [f"-W{option}" for option in config.getoption("pythonwarnings") or []]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *LEAN]
    result = subprocess.run(
        [*command, "-W", "error", *ignored],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
    assert " failed" not in result.stdout


@pytest.mark.parametrize("example", RUNNABLE)
def test_python_block_runs(
    example: CodeExample,
    eval_example: EvalExample,
    in_empty_folder: Path,
    request: pytest.FixtureRequest,
) -> None:
    snippet = SNIPPET.match(example.source.strip())
    if snippet:
        included = ROOT / snippet["path"]
        assert included.is_file()
        assert included.parent == ROOT / "examples"  # run by tests/test_examples.py
        return
    if re.search(r"^(async )?def test_", example.source, re.M):
        run_as_test_module(example, in_empty_folder, request.config)
        return
    namespace = eval_example.run(example)
    if "app" in namespace:
        exercise_app(namespace["app"])


def shell_blocks() -> Iterator[tuple[Path, int, str, str]]:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in SHELL_FENCE.finditer(text):
            yield page, text[: m.start()].count("\n") + 1, m[2], m[3]


def console_steps(body: str) -> list[tuple[str, list[str]]]:
    """``$ command`` lines with the output lines that follow each."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1][1].append(line)
    return steps


RUNNABLE_SHELL = [b for b in shell_blocks() if not is_fragment(b[0], b[1])]


@pytest.mark.parametrize(
    "block",
    RUNNABLE_SHELL,
    ids=lambda b: f"{b[0].relative_to(ROOT).as_posix()}:{b[1]}",
)
def test_console_block_runs(block: tuple[Path, int, str, str], tmp_path: Path) -> None:
    _, _, language, body = block
    assert language == "console", "only console blocks ($ command, then its output) run here"
    bin_dir = str(Path(sys.executable).parent)  # where the installed `authcore` script lives
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    for env_name in ("AUTHCORE_DATABASE_URL", "AUTHCORE_SECRET_KEY", "AUTHCORE_CONFIG_FILE"):
        env.pop(env_name, None)
    for command, expected in console_steps(body):
        result = subprocess.run(
            shlex.split(command),
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.stdout.splitlines() == expected, f"$ {command}\n{result.stderr}"


def test_every_block_is_run_or_marked() -> None:
    """The pages have blocks, and the ones not run are marked (so nothing is silently left)."""
    python = list(python_blocks())
    shell = list(shell_blocks())
    assert len(python) >= 20
    assert len(shell) >= 20
    run = len(RUNNABLE) + len(RUNNABLE_SHELL)
    assert run >= 10
    for block in shell:
        assert block[2] == "console" or is_fragment(block[0], block[1]), (
            f"{block[0].relative_to(ROOT)}:{block[1]}: a {block[2]} block runs nowhere: "
            f"make it a console block or mark it with {MARKER}"
        )
