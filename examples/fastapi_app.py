"""A complete FastAPI app on authcore, with one protected route of its own.

Serve it (from this folder)::

    export AUTHCORE_SECRET_KEY="$(authcore gen-secret)"
    export AUTHCORE_DATABASE_URL="sqlite+aiosqlite:///app.db"   # the default: ./authcore.db
    uvicorn fastapi_app:app

then open http://127.0.0.1:8000/docs, register, "Authorize" with your username
and password, and call ``GET /notes``.

Or run it as a script with no arguments: ``python examples/fastapi_app.py``
starts the app with uvicorn on a free local port (a temporary database unless
AUTHCORE_DATABASE_URL is set), walks through register, login, the protected
route, refresh, reuse detection and logout over real HTTP, and stops.

Needs ``pip install "authcore[fastapi]" uvicorn``.
"""

import asyncio
import json
import logging
import os
import secrets
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI

from authcore import User
from authcore.fastapi import AuthCore

logger = logging.getLogger("fastapi_app")


def create_app(database_url: str | None = None, secret_key: str | None = None) -> FastAPI:
    """The app: authcore's routes under /auth, and /notes for logged-in users."""
    database_url = database_url or os.environ.get(
        "AUTHCORE_DATABASE_URL", "sqlite+aiosqlite:///authcore.db"
    )
    secret_key = secret_key or os.environ.get("AUTHCORE_SECRET_KEY")
    ephemeral = not secret_key
    auth = AuthCore(database_url=database_url, secret_key=secret_key or secrets.token_urlsafe(32))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # An app's own lifespan wraps authcore's: schema on start, engine disposed on stop.
        if ephemeral:
            logger.warning(
                "AUTHCORE_SECRET_KEY is not set: using a random key, so access tokens "
                "stop working when the server restarts"
            )
        async with auth.lifespan(app):
            yield

    app = FastAPI(title="authcore example", lifespan=lifespan)
    app.include_router(auth.router)
    app.state.auth = auth

    @app.get("/notes", responses={401: {"description": "Not logged in"}})
    async def notes(user: Annotated[User, Depends(auth.current_user)]) -> dict[str, Any]:
        """A protected route: only a logged-in, active user gets here."""
        return {"owner": user.username, "notes": [f"welcome back, {user.username}"]}

    return app


app = create_app()


# -- `python fastapi_app.py`: the whole flow over real HTTP -------------------------


def http(method: str, url: str, *, json_body: Any = None, form: Any = None, token: str = "") -> Any:
    """One request with the standard library; returns (status, decoded JSON or None)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if json_body is not None:
        data, headers["Content-Type"] = json.dumps(json_body).encode(), "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            return response.status, json.loads(body) if body else None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


async def walk_through(database_url: str) -> None:
    import uvicorn

    demo = create_app(database_url, secrets.token_urlsafe(32))
    server = uvicorn.Server(
        uvicorn.Config(demo, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:  # the lifespan has run and the socket is listening
        if serving.done():
            serving.result()  # start-up failed: raise its error
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"

    async def call(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, body = await asyncio.to_thread(http, method, base + path, **kwargs)
        shown = {k: (v[:16] + "…" if k.endswith("token") else v) for k, v in (body or {}).items()}
        print(f"  {method:6} {path:<16} -> {status} {shown if isinstance(body, dict) else body}")
        return status, body

    try:
        print(f"serving on {base}")
        account = {"username": "alice", "password": "correct horse battery staple"}
        await call("POST", "/auth/register", json_body=account)
        _, pair = await call("POST", "/auth/login", form=account)
        await call("GET", "/notes", token=pair["access_token"])
        await call("GET", "/notes")  # no credentials: 401
        _, fresh = await call(
            "POST", "/auth/refresh", json_body={"refresh_token": pair["refresh_token"]}
        )
        print("replaying the old refresh token (a stolen copy) revokes the whole family:")
        await call("POST", "/auth/refresh", json_body={"refresh_token": pair["refresh_token"]})
        await call("GET", "/notes", token=fresh["access_token"])
        _, again = await call("POST", "/auth/login", form=account)
        await call("POST", "/auth/logout", token=again["access_token"])
        await call("GET", "/notes", token=again["access_token"])  # logged out: 401 at once
    finally:
        server.should_exit = True
        await serving  # runs the lifespan's shutdown: the engine is disposed


def main() -> None:
    # authcore's audit trail (logins, logouts, a detected token theft at WARNING),
    # shown with the walk-through instead of on stderr.
    audit = logging.StreamHandler(sys.stdout)
    audit.setFormatter(logging.Formatter("  audit: %(levelname)s %(message)s"))
    logging.getLogger("authcore.audit").addHandler(audit)
    logging.getLogger("authcore.audit").setLevel(logging.INFO)
    url = os.environ.get("AUTHCORE_DATABASE_URL")
    if url:
        asyncio.run(walk_through(url))
        return
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(walk_through(f"sqlite+aiosqlite:///{Path(folder) / 'example.db'}"))


if __name__ == "__main__":
    main()
