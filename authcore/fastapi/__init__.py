"""FastAPI integration: ``AuthCore`` bundles the stores, a lifespan, dependencies and routes.

Install with ``pip install "authcore[fastapi]"``::

    from fastapi import Depends, FastAPI
    from authcore import User
    from authcore.fastapi import AuthCore

    auth = AuthCore(database_url="sqlite+aiosqlite:///app.db", secret_key=SECRET)
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)

    @app.get("/hello")
    async def hello(user: User = Depends(auth.current_user)) -> dict[str, str]:
        return {"hello": user.username}

The routes (under ``prefix``, ``/auth`` by default): ``POST /register``,
``POST /login``, ``POST /refresh``, ``POST /logout``, ``POST /logout-all``,
``GET /sessions``, ``DELETE /sessions/{id}`` (and ``POST /sessions/{id}/revoke``
for HTML forms), ``POST /password``, ``GET /me``, and for account recovery
``POST /forgot-password``, ``POST /reset-password``, ``POST /request-verify``,
``POST /verify``. Audit events reach ``AuthCore(on_event=...)`` as
:class:`AuthEvent` values and the ``authcore.audit`` logger.
"""

from authcore.fastapi._core import AuthCore
from authcore.fastapi._events import AuthEvent
from authcore.fastapi._http import Principal

__all__ = ["AuthCore", "AuthEvent", "Principal"]
