"""An authcore app for the account-security tests and the login-flood benchmark.

Served by uvicorn in a child process (``uvicorn tests.account_app:app`` or with
``--app-dir``), configured by its environment:

- ``ACCOUNT_DATABASE_URL``, ``ACCOUNT_SECRET_KEY``: the database and the JWT key;
- ``ACCOUNT_OUTBOX``: a file the mail hooks append ``<kind> <username> <token>``
  lines to (the test reads the tokens there, as a user would read a mail);
- ``ACCOUNT_ROUNDS``: bcrypt's rounds (default 12, the production cost);
- ``ACCOUNT_QUEUE_WAIT``: the hasher's ``max_queue_wait`` in seconds, or ``off``
  (default: the library's default);
- ``ACCOUNT_THROTTLE``: ``off``, or ``<max_failures>,<max_failures_per_ip>``
  (default: the library's defaults).
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI, Request

from authcore import LoginThrottle, PasswordHasher, User, create_engine, dispose_engine
from authcore.fastapi import AuthCore


def _mail(kind: str):  # type: ignore[no-untyped-def]
    outbox = Path(os.environ["ACCOUNT_OUTBOX"])

    async def send(user: User, token: str, request: Request) -> None:
        with outbox.open("a", encoding="utf-8") as box:
            box.write(f"{kind} {user.username} {token}\n")

    return send


def create_app() -> FastAPI:
    engine = create_engine(os.environ["ACCOUNT_DATABASE_URL"])
    throttle_setting = os.environ.get("ACCOUNT_THROTTLE", "")
    throttle: LoginThrottle | bool | None = True
    if throttle_setting == "off":
        throttle = None
    elif throttle_setting:
        per_user, per_ip = (int(n) for n in throttle_setting.split(","))
        throttle = LoginThrottle(engine, max_failures=per_user, max_failures_per_ip=per_ip)
    queue: dict[str, timedelta | None] = {}
    wait = os.environ.get("ACCOUNT_QUEUE_WAIT", "")
    if wait:
        queue["max_queue_wait"] = None if wait == "off" else timedelta(seconds=float(wait))
    auth = AuthCore(
        engine=engine,
        secret_key=os.environ["ACCOUNT_SECRET_KEY"],
        hasher=PasswordHasher(rounds=int(os.environ.get("ACCOUNT_ROUNDS", "12")), **queue),
        cookie_secure=False,
        login_throttle=throttle,
        on_password_reset=_mail("reset"),
        on_verify_email=_mail("verify"),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with auth.lifespan(app):
                yield
        finally:
            await dispose_engine(engine)  # the app's own engine: AuthCore leaves it alone

    app = FastAPI(lifespan=lifespan)
    app.include_router(auth.router)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "ok"}

    return app


app = create_app()
