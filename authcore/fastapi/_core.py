"""``AuthCore``: the stores, the lifespan and the dependencies for a FastAPI app."""

# No `from __future__ import annotations`: FastAPI reads the route and
# dependency annotations at run time, and they name local variables.
import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal, NoReturn
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._time import Clock
from authcore.db import create_engine, create_schema, dispose_engine
from authcore.db._engine import DEFAULT_URL
from authcore.errors import InvalidTokenError, StorageError
from authcore.fastapi._forms import local_path
from authcore.jwt import JWTManager
from authcore.passwords import PasswordHasher
from authcore.sessions import AuthSession, SessionStore
from authcore.users import User, UserStore

__all__ = ["AuthCore", "Principal", "Transport"]

#: How credentials travel: see ``AuthCore(transport=...)``.
Transport = Literal["both", "cookie", "bearer"]
TRANSPORTS: tuple[Transport, ...] = ("both", "cookie", "bearer")

logger = logging.getLogger("authcore.fastapi")

#: The body of every 401 from the dependencies, whatever the reason.
NOT_AUTHENTICATED = "Not authenticated"
#: The body of a 503: the database failed or is unreachable.
UNAVAILABLE = "Authentication is temporarily unavailable"
#: The body of a 403 from the CSRF check.
CSRF_REFUSED = "Cross-site request refused"

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SAME_SITE_SIGNALS = frozenset({"same-origin", "none"})


def unauthorized(detail: str = NOT_AUTHENTICATED) -> HTTPException:
    """The 401 every credential problem becomes, with ``WWW-Authenticate: Bearer``."""
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def unavailable() -> HTTPException:
    """The 503 a :class:`~authcore.errors.StorageError` becomes."""
    return HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request, and how they proved it.

    Attributes:
        session: The active session behind the credentials.
        user: Its user, active.
        via: ``"bearer"`` (a JWT access token in ``Authorization``) or
            ``"cookie"`` (the session cookie).
        token: The session token when *via* is ``"cookie"``, else ``None``.
            Never shown in ``repr``.
    """

    session: AuthSession
    user: User
    via: Literal["bearer", "cookie"]
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """The credentials of one request, resolved once (FastAPI caches dependencies)."""

    principal: Principal | None = None
    error: HTTPException | None = None
    cookie_failed: bool = False

    def require(self) -> Principal:
        if self.error is not None:
            raise self.error
        if self.principal is None:
            raise unauthorized()
        return self.principal


def _normalize_origin(origin: str) -> str:
    parts = urlsplit(origin.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.path not in {"", "/"}:
        raise ValueError(f"trusted origin {origin!r} must look like https://example.com[:port]")
    return f"{parts.scheme}://{parts.netloc}".lower()


def _page_url(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in {"http", "https"} and parts.netloc:
        return True
    return local_path(url) is not None


class AuthCore:
    """Sessions, users, passwords and JWTs for a FastAPI app, in one object.

    Example:
        >>> auth = AuthCore(secret_key=os.environ["AUTHCORE_SECRET_KEY"])  # doctest: +SKIP
        >>> app = FastAPI(lifespan=auth.lifespan)  # doctest: +SKIP
        >>> app.include_router(auth.router)  # doctest: +SKIP
        >>> @app.get("/private")  # doctest: +SKIP
        ... async def private(user: User = Depends(auth.current_user)) -> dict[str, str]:
        ...     return {"hello": user.username}

    Credentials come from ``Authorization: Bearer <JWT>`` (verified, then its
    ``sid`` must name an active session of its ``sub``, so logout and
    revocation act at once) or from the session cookie; never from the query
    string. When both are sent, the header wins. Every credential problem is
    a 401 with ``WWW-Authenticate: Bearer`` and one constant body; an inactive
    or deleted user is a credential problem too. A
    :class:`~authcore.errors.StorageError` is a 503.

    CSRF: an unsafe request (POST, PUT, PATCH, DELETE) authenticated by the
    cookie, and every ``/login``, must come from the app's own origin. Browsers
    say where a request comes from in ``Sec-Fetch-Site`` and ``Origin``:
    ``same-origin``/``none``, an ``Origin`` whose host is the request's
    ``Host``, or an origin in *trusted_origins* passes; anything else is a
    403. A request with neither header is not from a browser and passes.
    Bearer requests need no check (browsers never add the header on their own).
    ``SameSite=Lax`` on the cookie is a second line of defence.

    Args:
        database_url: Where to keep sessions and users (ignored with *engine*).
        secret_key: Signs the JWT access tokens; at least 32 bytes for HS256.
        engine: An engine you created and dispose yourself; by default one is
            created from *database_url* and disposed by :attr:`lifespan`.
        hasher: The password hasher; ``PasswordHasher()`` (bcrypt_sha256, 12
            rounds) by default.
        session_ttl: Absolute lifetime of a session (the refresh token and
            the cookie).
        idle_timeout: End sessions unused for this long; ``None`` disables it.
        access_ttl: Lifetime of a JWT access token.
        prefix: Where :attr:`router`'s routes live.
        cookie_name: The session cookie's name.
        cookie_secure: Send the cookie over HTTPS only (``Secure``). Switch it
            off only for plain-HTTP development.
        previous_secret_keys: Retired JWT keys, still accepted for verifying
            (key rotation).
        trusted_origins: Other origins (``https://app.example.com``) whose
            cookie-authenticated requests pass the CSRF check.
        clock: Zero-argument callable returning aware UTC time, for tests.
        transport: How credentials travel: ``"both"`` (the default: the
            session cookie and bearer JWTs), ``"cookie"`` (the cookie only:
            no token or JWT is ever put in a response body, and bearer
            headers are ignored) or ``"bearer"`` (no cookie is set or read).
        login_page_url: The app's login page. :attr:`page_user` sends an
            anonymous browser there (``?next=<page>``) and a failed form
            login goes back there with ``?error=invalid&next=...``.
        redirect_default: Where a browser form post goes when its ``next``
            is not a local path (``"/"``).
        login_after_register: Whether ``/register`` also logs the new user in
            (the cookie and/or tokens, as *transport* says).

    Attributes:
        engine: The async engine.
        sessions: The :class:`~authcore.SessionStore`.
        users: The :class:`~authcore.UserStore`.
        hasher: The :class:`~authcore.PasswordHasher`.
        jwt: The :class:`~authcore.JWTManager` of the access tokens.
        current_session: Dependency: the request's active
            :class:`~authcore.AuthSession`; else 401 (or 403 from the CSRF
            check, 503 when the database fails).
        optional_session: Dependency: the same, or ``None`` when the request
            carries no credentials or only a session cookie that is no longer
            valid (a public page stays reachable with a stale cookie). A bearer
            token that fails is still a 401: an API client sent it on purpose.
        current_user: Dependency: the request's active :class:`~authcore.User`;
            else 401/403/503 as for *current_session*.
        principal: Dependency: the :class:`Principal` (session, user and how
            they were proved); else 401/403/503.
    """

    principal: Callable[..., Awaitable[Principal]]
    current_session: Callable[..., Awaitable[AuthSession]]
    optional_session: Callable[..., Awaitable[AuthSession | None]]
    current_user: Callable[..., Awaitable[User]]

    def __init__(
        self,
        *,
        database_url: str | URL = DEFAULT_URL,
        secret_key: str | bytes,
        engine: AsyncEngine | None = None,
        hasher: PasswordHasher | None = None,
        session_ttl: timedelta = timedelta(days=14),
        idle_timeout: timedelta | None = None,
        access_ttl: timedelta = timedelta(minutes=15),
        prefix: str = "/auth",
        cookie_name: str = "authcore_session",
        cookie_secure: bool = True,
        previous_secret_keys: Sequence[str | bytes] = (),
        trusted_origins: Sequence[str] = (),
        clock: Clock | None = None,
        transport: Transport = "both",
        login_page_url: str | None = None,
        redirect_default: str = "/",
        login_after_register: bool = False,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("prefix must start with '/' and not end with one, or be empty")
        if not cookie_name or not cookie_name.isascii() or not cookie_name.isprintable():
            raise ValueError("cookie_name must be a non-empty printable ASCII name")
        if isinstance(trusted_origins, str):
            raise TypeError("trusted_origins must be a sequence of origins, not one str")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}")
        if local_path(redirect_default) is None:
            raise ValueError("redirect_default must be a local path such as '/'")
        if login_page_url is not None and not _page_url(login_page_url):
            raise ValueError("login_page_url must be a local path or an http(s) URL")
        # Everything that can refuse its arguments runs before the engine exists.
        self.jwt = JWTManager(
            secret_key, ttl=access_ttl, clock=clock, previous_secrets=previous_secret_keys
        )
        self.hasher = PasswordHasher() if hasher is None else hasher
        self._trusted_origins = frozenset(_normalize_origin(o) for o in trusted_origins)
        self._owns_engine = engine is None
        self.engine: AsyncEngine = create_engine(database_url) if engine is None else engine
        self.sessions = SessionStore(
            self.engine, ttl=session_ttl, idle_timeout=idle_timeout, clock=clock
        )
        self.users = UserStore(self.engine, hasher=self.hasher, clock=clock)
        self.prefix = prefix
        self.cookie_name = cookie_name
        self.cookie_secure = cookie_secure
        self.transport: Transport = transport
        self.login_page_url = login_page_url
        self.redirect_default = redirect_default
        self.login_after_register = login_after_register
        self.bearer_scheme = OAuth2PasswordBearer(
            tokenUrl=f"{prefix}/login", auto_error=False, scheme_name="authcore"
        )
        self._router: APIRouter | None = None
        self._make_dependencies()

    def __repr__(self) -> str:
        url = self.engine.url.render_as_string(hide_password=True)
        return (
            f"AuthCore(engine={url!r}, prefix={self.prefix!r}, "
            f"cookie_name={self.cookie_name!r}, cookie_secure={self.cookie_secure!r}, "
            f"transport={self.transport!r})"
        )

    # -- lifecycle -------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """For ``FastAPI(lifespan=auth.lifespan)``: the schema on start, disposal on stop.

        The engine is disposed only when this object created it. An app with
        a lifespan of its own enters this one inside it:
        ``async with auth.lifespan(app): yield``.
        """
        await create_schema(self.engine)
        try:
            yield
        finally:
            if self._owns_engine:
                await asyncio.shield(dispose_engine(self.engine))

    @property
    def router(self) -> APIRouter:
        """The login, logout, refresh, register and session routes, under *prefix*."""
        if self._router is None:
            from authcore.fastapi._routes import build_router

            self._router = build_router(self)
        return self._router

    @property
    def page_user(self) -> Callable[..., Awaitable[User]]:
        """Dependency for HTML pages: the request's active :class:`~authcore.User`.

        Where :attr:`current_user` answers 401, an anonymous request (or one
        with a stale cookie) gets ``303 See Other`` to *login_page_url* with
        ``?next=<path and query>``, so the login form can bring the browser
        back. 403 and 503 are as for :attr:`current_user`.

        Raises:
            ValueError: When ``AuthCore(login_page_url=...)`` is not set
                (at ``Depends(auth.page_user)``, when the app is defined).
        """
        if self.login_page_url is None:
            raise ValueError(
                "auth.page_user needs AuthCore(login_page_url=...): "
                "the page that anonymous visitors are sent to"
            )
        return self._page_user

    # -- account changes that must end sessions ---------------------------------

    async def set_password(self, user_id: str, new_password: str) -> int:
        """Change a user's password and revoke all their sessions; how many were revoked."""
        await self.users.set_password(user_id, new_password)
        return await self.sessions.revoke_all(user_id)

    async def set_active(self, user_id: str, active: bool) -> int:
        """Activate or deactivate a user; deactivating revokes all their sessions.

        Returns how many sessions were revoked (0 when activating).
        """
        await self.users.set_active(user_id, active)
        return 0 if active else await self.sessions.revoke_all(user_id)

    # -- cookies ---------------------------------------------------------------

    def set_session_cookie(self, response: Response, token: str, session: AuthSession) -> None:
        """Put *token* in the session cookie, living as long as *session*.

        Does nothing with ``transport="bearer"``.
        """
        if self.transport == "bearer":
            return
        response.set_cookie(
            self.cookie_name,
            token,
            max_age=seconds_until(session.expires_at, session.last_seen_at),
            path="/",
            secure=self.cookie_secure,
            httponly=True,
            samesite="lax",
        )

    def delete_session_cookie(self, response: Response) -> None:
        """Tell the browser to drop the session cookie (not with ``transport="bearer"``)."""
        if self.transport == "bearer":
            return
        response.delete_cookie(
            self.cookie_name, path="/", secure=self.cookie_secure, httponly=True, samesite="lax"
        )

    # -- the CSRF check --------------------------------------------------------

    def origin_allowed(self, request: Request) -> bool:
        """Whether a browser sent *request* from this app's own or a trusted origin."""
        site = request.headers.get("sec-fetch-site")
        if site in _SAME_SITE_SIGNALS:
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return site is None  # neither header: not a browser
        if origin.lower().rstrip("/") in self._trusted_origins:
            return True
        host = request.headers.get("host")
        return site is None and host is not None and urlsplit(origin).netloc == host.lower()

    def check_origin(self, request: Request) -> None:
        """Raise the 403 of the CSRF check unless :meth:`origin_allowed`."""
        if not self.origin_allowed(request):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=CSRF_REFUSED)

    # -- credentials -----------------------------------------------------------

    async def _session_from_jwt(self, token: str) -> AuthSession:
        claims = self.jwt.verify(token)
        sid = claims.get("sid")
        if not isinstance(sid, str):
            raise InvalidTokenError("the access token names no session")
        session = await self.sessions.get_session_by_id(sid)
        if session is None or session.user_id != claims["sub"]:
            raise InvalidTokenError("the access token's session is not active")
        return session

    def session_cookie(self, request: Request) -> str | None:
        """The session token in *request*'s cookie (never read with ``transport="bearer"``)."""
        if self.transport == "bearer":
            return None
        return request.cookies.get(self.cookie_name) or None

    async def _resolve(self, request: Request, bearer: str | None) -> Principal | None:
        if self.transport == "cookie":
            bearer = None  # bearer headers are not accepted
        if bearer is not None:
            session = await self._session_from_jwt(bearer)
            via: Literal["bearer", "cookie"] = "bearer"
            token = None
        else:
            token = self.session_cookie(request)
            if token is None:
                return None
            session = await self.sessions.validate(token)
            via = "cookie"
        user = await self.users.get_user(session.user_id)
        if user is None or not user.is_active:
            raise InvalidTokenError("the session's user is not active")
        return Principal(session=session, user=user, via=via, token=token)

    def _make_dependencies(self) -> None:
        # Built once per AuthCore, so each is one stable callable: FastAPI resolves
        # the credentials once per request, and dependency_overrides can key on them.
        async def credentials(
            request: Request,
            bearer: Annotated[str | None, Depends(self.bearer_scheme)],
        ) -> _Outcome:
            try:
                principal = await self._resolve(request, bearer)
            except InvalidTokenError:
                return _Outcome(error=unauthorized(), cookie_failed=bearer is None)
            except StorageError:
                logger.warning("authentication failed: storage unavailable", exc_info=True)
                return _Outcome(error=unavailable())
            if (
                principal is not None
                and principal.via == "cookie"
                and request.method in UNSAFE_METHODS
                and not self.origin_allowed(request)
            ):
                return _Outcome(error=HTTPException(status.HTTP_403_FORBIDDEN, CSRF_REFUSED))
            return _Outcome(principal=principal)

        async def principal(outcome: Annotated[_Outcome, Depends(credentials)]) -> Principal:
            return outcome.require()

        async def current_session(
            outcome: Annotated[_Outcome, Depends(credentials)],
        ) -> AuthSession:
            return outcome.require().session

        async def optional_session(
            outcome: Annotated[_Outcome, Depends(credentials)],
        ) -> AuthSession | None:
            if outcome.error is not None and outcome.cookie_failed:
                return None  # a stale cookie on a public page: anonymous
            if outcome.error is None and outcome.principal is None:
                return None
            return outcome.require().session

        async def current_user(outcome: Annotated[_Outcome, Depends(credentials)]) -> User:
            return outcome.require().user

        self.principal = principal
        self.current_session = current_session
        self.optional_session = optional_session
        self.current_user = current_user
        self._page_user = make_page_user(self, credentials)


def raise_storage_unavailable(exc: StorageError) -> NoReturn:
    """Turn a :class:`~authcore.errors.StorageError` into the 503, logging the cause."""
    logger.warning("request failed: storage unavailable (%s)", exc)
    raise unavailable() from exc


def seconds_until(moment: datetime, now: datetime) -> int:
    """Whole seconds from *now* to *moment*, never negative."""
    return max(int((moment - now).total_seconds()), 0)


def make_page_user(
    auth: AuthCore, credentials: Callable[..., Awaitable[_Outcome]]
) -> Callable[..., Awaitable[User]]:
    """The :attr:`AuthCore.page_user` dependency: ``current_user`` that sends browsers to log in."""
    from authcore.fastapi._forms import with_query

    async def page_user(
        request: Request, outcome: Annotated[_Outcome, Depends(credentials)]
    ) -> User:
        if outcome.principal is not None:
            return outcome.principal.user
        if outcome.error is not None and outcome.error.status_code != status.HTTP_401_UNAUTHORIZED:
            raise outcome.error  # 403 (CSRF) or 503: logging in again would not help
        assert auth.login_page_url is not None  # checked when the dependency was taken
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target = with_query(auth.login_page_url, next=local_path(here))
        raise HTTPException(
            status.HTTP_303_SEE_OTHER, detail="Login required", headers={"Location": target}
        )

    return page_user
