"""``force_login``: log a user in on a test client without a password, as Django's does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import Awaitable, Callable
from http.cookiejar import Cookie
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from authcore.fastapi import AuthCore
    from authcore.users import User

__all__ = ["async_force_login", "force_login"]

T = TypeVar("T")


class ClientWithCookies(Protocol):
    """What the helpers need of a client: httpx's ``cookies`` jar and ``base_url``.

    Starlette's ``TestClient``, ``httpx2.Client`` and ``httpx2.AsyncClient``
    (and their ``httpx`` forebears) all qualify.
    """

    @property
    def cookies(self) -> Any: ...  # pragma: no cover - a protocol

    @property
    def base_url(self) -> Any: ...  # pragma: no cover - a protocol


def force_login(
    client: ClientWithCookies, auth: AuthCore, user: User | str, **session_kw: Any
) -> str:
    """Log *user* in on *client* without a password; return the session token.

    The test-suite twin of a successful ``POST /login`` (as Django's
    ``Client.force_login``): it creates a session with
    ``auth.sessions.create_session(user_id, **session_kw)`` and puts its token
    in *client*'s session cookie, so the client's next requests are
    authenticated by the cookie. The dependencies still apply every check:
    ``current_user`` refuses an unknown or inactive user with a 401.

    Where the session is created: when *client* is a Starlette ``TestClient``
    inside its ``with`` block, on the app's own event loop (``client.portal``),
    where the lifespan opened the engine; otherwise on a fresh event loop, as
    the client itself runs each request when it is not entered (in a worker
    thread when the calling thread already runs an event loop). In an
    ``async def`` test with an async client, use :func:`async_force_login`.

    The cookie is the app's cookie (``auth.cookie_name``, path ``/``,
    HttpOnly, ``SameSite=Lax``) set for the client's host, so the app's own
    ``Set-Cookie`` answers (logout, rotation) replace or delete it as they
    would in a browser. It is marked ``Secure`` only when the app's cookie is
    and the client's base URL is ``https``: with the ``TestClient``'s default
    ``http://testserver`` the client sends it anyway (a browser would not).

    Args:
        client: A test client (Starlette ``TestClient``, ``httpx2.Client``).
        auth: The app's :class:`~authcore.fastapi.AuthCore`.
        user: A :class:`~authcore.User` or a user id.
        **session_kw: Passed to ``create_session``: ``ttl``, ``data``, ``ip``,
            ``user_agent``.

    Returns:
        The session token (also usable as a refresh token).

    Raises:
        TypeError: *user* is neither a ``User`` nor a ``str``, or an unknown
            keyword; nothing is created.

    Example:
        >>> with TestClient(app) as client:  # doctest: +SKIP
        ...     force_login(client, auth, user)
        ...     assert client.get("/auth/me").status_code == 200
    """
    issue = functools.partial(auth.sessions.issue_session, _user_id(user), **session_kw)
    portal = getattr(client, "portal", None)
    issued = portal.call(issue) if portal is not None else _run_on_a_fresh_loop(issue)
    token: str = issued.token
    _set_session_cookie(client, auth, token)
    return token


async def async_force_login(
    client: ClientWithCookies, auth: AuthCore, user: User | str, **session_kw: Any
) -> str:
    """:func:`force_login` for async clients (``httpx2.AsyncClient`` with ``ASGITransport``).

    The session is created on the running event loop, the test's, which is
    the one the app runs on with ``ASGITransport``.

    Example:
        >>> async with httpx2.AsyncClient(  # doctest: +SKIP
        ...     transport=httpx2.ASGITransport(app), base_url="http://testserver"
        ... ) as client:
        ...     await async_force_login(client, auth, "user-id")
    """
    token = (await auth.sessions.issue_session(_user_id(user), **session_kw)).token
    _set_session_cookie(client, auth, token)
    return token


def _user_id(user: User | str) -> str:
    if isinstance(user, str):
        return user
    from authcore.users import User

    if isinstance(user, User):
        return user.id
    raise TypeError(f"user must be a User or a user id str, got {type(user).__name__}")


def _run_on_a_fresh_loop(function: Callable[[], Awaitable[T]]) -> T:
    async def call() -> T:
        return await function()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(call())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, call()).result()


def _set_session_cookie(client: ClientWithCookies, auth: AuthCore, token: str) -> None:
    base_url = urlsplit(str(client.base_url))
    host = (base_url.hostname or "").lower()
    # The domain the jar itself files the app's host-only cookies under (the
    # "effective request host": a name without a dot gets ".local", so
    # "testserver" becomes "testserver.local"), so a later Set-Cookie from the
    # app replaces this cookie instead of sitting beside it.
    domain = host if "." in host else f"{host}.local"
    cookie = Cookie(
        version=0,
        name=auth.cookie_name,
        value=token,
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=False,
        domain_initial_dot=False,
        path="/",
        path_specified=True,
        secure=auth.cookie_secure and base_url.scheme == "https",
        expires=None,  # the session's lifetime is the server's business (and its clock's)
        discard=True,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": "", "SameSite": "lax"},
    )
    client.cookies.jar.set_cookie(cookie)
