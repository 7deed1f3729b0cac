"""``AuthCore``: the stores, the lifespan and the dependencies for a FastAPI app."""

# No `from __future__ import annotations`: FastAPI reads the dependencies'
# annotations at run time.
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Self

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from authcore._time import Clock
from authcore.config import Settings, app_keywords, load_settings
from authcore.db import create_schema, dispose_engine
from authcore.db._engine import DEFAULT_URL
from authcore.fastapi._account import AccountOptions, TokenHook
from authcore.fastapi._browser import BrowserFlow
from authcore.fastapi._credentials import Credentials, Transport, TransportMode
from authcore.fastapi._csrf import OriginCheck
from authcore.fastapi._events import EventHook, Events
from authcore.fastapi._http import Principal
from authcore.fastapi._login import LoginGuard
from authcore.fastapi._routes import build_router
from authcore.fastapi._stores import SessionBackend, UserBackend, open_stores
from authcore.jwt import JWTManager
from authcore.passwords import PasswordHasher
from authcore.policy import PasswordPolicy
from authcore.sessions import AuthSession
from authcore.throttle import LoginThrottle
from authcore.users import User

__all__ = ["AuthCore"]


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
        database_url: Where to keep sessions and users (ignored with *engine*,
            and with both *sessions* and *users*).
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
            headers are not accepted) or ``"bearer"`` (no cookie is set or
            read).
        login_page_url: The app's login page (a local path or an http(s)
            URL). :attr:`page_user` sends an anonymous browser there with
            ``?next=<page>``, and a failed browser login goes back there with
            ``?error=invalid&next=...``.
        redirect_default: Where a browser form post goes when its ``next``
            is missing or not a local path.
        login_after_register: Whether ``/register`` also logs the new user in
            (the cookie and/or the tokens, as *transport* says).
        sessions: A session store to use instead of a
            :class:`~authcore.SessionStore` on the engine: any object with its
            methods, such as :class:`authcore.testing.InMemorySessionStore`.
            *session_ttl*, *idle_timeout*, *rotation_grace* and
            *max_sessions_per_user* then belong to that store.
        users: A user store to use instead of a :class:`~authcore.UserStore`
            (any object with its methods). With both stores injected, no
            engine is created and no database is needed.
        rotation_grace: How long a rotated-away refresh token may still be
            refreshed (two tabs, a lost response) without counting as reuse;
            see :class:`~authcore.SessionStore`. Off by default.
        max_sessions_per_user: At most this many active sessions per user; a
            login beyond it ends the least recently seen one. ``None``: no cap.
        password_policy: Checked wherever a password is set (register,
            ``/password``, ``/reset-password``); a refused one is a 422 with
            its ``reasons``. ``None`` turns it off. Not used with *users*
            (the injected store has its own).
        login_throttle: ``True`` (the default): a :class:`~authcore.LoginThrottle`
            on the engine (none when both stores are injected and no
            *engine* is given); or your own ``LoginThrottle``; ``None`` or
            ``False``: no throttling. A throttled ``/login`` is a 429 with
            ``Retry-After``, for known and unknown usernames alike, and
            costs no password hashing.
        on_event: Receives every :class:`AuthEvent` (a function or a
            coroutine function); an exception in it is logged, never raised.
        on_password_reset: ``(user, token, request)``: send *token* to the
            user (``/forgot-password``); sync or async, run after the answer.
        on_verify_email: ``(user, token, request)``: send the verification
            token (``/request-verify``); sync or async, run after the answer.
        issuer: The JWTs' ``iss`` claim, required back when verifying.
        audience: The JWTs' ``aud`` claim, required back when verifying.

    Attributes:
        engine: The async engine; ``None`` when both stores were injected
            and no *engine* was given.
        sessions: The session store.
        users: The user store.
        hasher: The :class:`~authcore.PasswordHasher`.
        login_throttle: The :class:`~authcore.LoginThrottle` of ``/login``, or ``None``.
        events: Where the audit events go (the ``authcore.audit`` log and *on_event*).
        jwt: The :class:`~authcore.JWTManager` of the access tokens.
        current_session: Dependency: the request's active
            :class:`~authcore.AuthSession`; else 401 (or 403 from the CSRF
            check, 503 when the database fails).
        optional_session: Dependency: the same, or ``None`` when the request
            carries no credentials or only a session cookie that is no longer
            valid (a public page stays reachable with a stale cookie). A bearer
            token that fails is still a 401: an API client sent it on purpose.
        transport: How the credentials travel (the cookie, the bearer header).
        origins: The CSRF (origin) check.
        browser: How the routes answer browser form posts: *login_page_url*,
            *redirect_default* and *login_after_register*.
        credentials: What resolves a request's credentials, behind the
            dependencies below.
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
        sessions: SessionBackend | None = None,
        users: UserBackend | None = None,
        rotation_grace: timedelta = timedelta(0),
        max_sessions_per_user: int | None = None,
        transport: TransportMode = "both",
        login_page_url: str | None = None,
        redirect_default: str = "/",
        login_after_register: bool = False,
        password_policy: PasswordPolicy | None = PasswordPolicy(),  # noqa: B008 - immutable
        login_throttle: LoginThrottle | bool | None = True,
        on_event: EventHook | None = None,
        on_password_reset: TokenHook | None = None,
        on_verify_email: TokenHook | None = None,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError("prefix must start with '/' and not end with one, or be empty")
        # Everything that can refuse its arguments runs before the engine exists.
        self.transport = Transport(
            prefix=prefix, cookie_name=cookie_name, cookie_secure=cookie_secure, mode=transport
        )
        self.browser = BrowserFlow(login_page_url, redirect_default, login_after_register)
        self.origins = OriginCheck(trusted_origins)
        self.jwt = JWTManager(
            secret_key,
            ttl=access_ttl,
            clock=clock,
            previous_secrets=previous_secret_keys,
            issuer=issuer,
            audience=audience,
        )
        self.events = Events(on_event, clock)
        account = AccountOptions(self.events, on_password_reset, on_verify_email)
        stores = open_stores(
            database_url=database_url,
            engine=engine,
            sessions=sessions,
            users=users,
            hasher=hasher,
            password_policy=password_policy,
            login_throttle=login_throttle,
            session_ttl=session_ttl,
            idle_timeout=idle_timeout,
            rotation_grace=rotation_grace,
            max_sessions_per_user=max_sessions_per_user,
            clock=clock,
        )
        self.hasher = stores.hasher
        self._owns_engine = stores.owns_engine
        self.engine: AsyncEngine | None = stores.engine
        self.login_throttle: LoginThrottle | None = stores.login_throttle
        self.sessions: SessionBackend = stores.sessions
        self.users: UserBackend = stores.users
        self.prefix = prefix
        self.credentials = Credentials(
            transport=self.transport,
            jwt=self.jwt,
            sessions=self.sessions,
            users=self.users,
            origins=self.origins,
            login_page_url=login_page_url,
            events=self.events,
        )
        self.principal = self.credentials.principal
        self.current_session = self.credentials.current_session
        self.optional_session = self.credentials.optional_session
        self.current_user = self.credentials.current_user
        self._account = account
        self._guard = LoginGuard(
            self.users,
            stores.users_hasher,
            self.login_throttle,
            self.events,
            self.browser,
        )
        self._router: APIRouter | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **keywords: Any) -> Self:
        """Build the app from settings: the values ``authcore validate`` reports.

        Example:
            >>> auth = AuthCore.from_settings(cookie_secure=False)  # doctest: +SKIP
            >>> app = FastAPI(lifespan=auth.lifespan)  # doctest: +SKIP

        The values come from :func:`authcore.config.app_keywords`, the one
        translation the command line prints too: ``database_url``,
        ``secret_key``, ``session_ttl``, ``idle_timeout``, ``access_ttl``, and
        ``bcrypt_rounds`` as ``hasher=PasswordHasher(rounds=...)``.

        Args:
            settings: The settings; ``None`` loads them with
                :func:`~authcore.config.load_settings` (``AUTHCORE_*``
                variables and the file named by ``AUTHCORE_CONFIG_FILE``).
            **keywords: Any other ``AuthCore`` keyword; one that the settings
                also give wins over them (``hasher`` over ``bcrypt_rounds``).

        Raises:
            ConfigError: the settings are invalid or have no ``secret_key``
                (and no ``secret_key`` keyword is given).
        """
        require_secret = "secret_key" not in keywords
        if settings is None:
            settings = load_settings(require_secret=require_secret)
        options = app_keywords(settings, require_secret=require_secret)
        rounds = options.pop("bcrypt_rounds")
        if "hasher" not in keywords:
            options["hasher"] = PasswordHasher(rounds=rounds)
        return cls(**{**options, **keywords})

    def __repr__(self) -> str:
        url = None if self.engine is None else self.engine.url.render_as_string(hide_password=True)
        return (
            f"AuthCore(engine={url!r}, prefix={self.prefix!r}, "
            f"cookie_name={self.cookie_name!r}, cookie_secure={self.cookie_secure!r}, "
            f"transport={self.transport.mode!r})"
        )

    @property
    def cookie_name(self) -> str:
        """The session cookie's name."""
        return self.transport.cookie_name

    @property
    def cookie_secure(self) -> bool:
        """Whether the cookie is sent over HTTPS only."""
        return self.transport.cookie_secure

    @property
    def bearer_scheme(self) -> OAuth2PasswordBearer:
        """The ``Authorization: Bearer`` scheme (``auto_error=False``), for the OpenAPI docs."""
        return self.transport.bearer_scheme

    @property
    def page_user(self) -> Callable[..., Awaitable[User]]:
        """Dependency for HTML pages: the request's active :class:`~authcore.User`.

        Where :attr:`current_user` answers 401, an anonymous request (or one
        with a stale cookie) gets ``303 See Other`` to *login_page_url* with
        ``?next=<path and query>``, so the login form can bring the browser
        back. 403 and 503 are as for :attr:`current_user`.

        Raises:
            ValueError: ``AuthCore(login_page_url=...)`` is not set (raised at
                ``Depends(auth.page_user)``, when the app is defined).
        """
        if self.browser.login_page_url is None:
            raise ValueError(
                "auth.page_user needs AuthCore(login_page_url=...): "
                "the page that anonymous visitors are sent to"
            )
        return self.credentials.page_user

    # -- lifecycle -------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        """For ``FastAPI(lifespan=auth.lifespan)``: the schema on start, disposal on stop.

        The engine is disposed only when this object created it (with both
        stores injected there is none, and no database). An app with
        a lifespan of its own enters this one inside it:
        ``async with auth.lifespan(app): yield``.
        """
        if self.engine is not None:
            await create_schema(self.engine)
        try:
            yield
        finally:
            if self._owns_engine and self.engine is not None:
                await asyncio.shield(dispose_engine(self.engine))

    @property
    def router(self) -> APIRouter:
        """The login, logout, refresh, register and session routes, under *prefix*."""
        if self._router is None:
            self._router = build_router(
                self.credentials,
                prefix=self.prefix,
                browser=self.browser,
                guard=self._guard,
                account=self._account,
            )
        return self._router

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

    # -- cookies and the CSRF check (for an app's own routes) -------------------

    def set_session_cookie(self, response: Response, token: str, session: AuthSession) -> None:
        """Put *token* in the session cookie, living as long as *session*."""
        self.transport.set_cookie(response, token, session)

    def delete_session_cookie(self, response: Response) -> None:
        """Tell the browser to drop the session cookie."""
        self.transport.delete_cookie(response)

    def origin_allowed(self, request: Request) -> bool:
        """Whether a browser sent *request* from this app's own or a trusted origin."""
        return self.origins.allowed(request)

    def check_origin(self, request: Request) -> None:
        """Raise the 403 of the CSRF check unless :meth:`origin_allowed`."""
        self.origins.check(request)
