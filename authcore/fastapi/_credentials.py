"""Reading credentials: how they travel (bearer header, cookie) and whom they prove.

:class:`Transport` carries the session token in the cookie and reads the
``Authorization: Bearer`` header; :class:`Credentials` turns what a request
carries into a :class:`~authcore.fastapi.Principal` (or the 401/403/503) and
builds the dependencies on top of it.
"""

# No `from __future__ import annotations`: FastAPI reads the dependencies'
# annotations at run time, and they name local variables.
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordBearer

from authcore.errors import InvalidTokenError, StorageError, TokenReuseError
from authcore.fastapi._csrf import UNSAFE_METHODS, OriginCheck
from authcore.fastapi._events import Events
from authcore.fastapi._forms import login_required
from authcore.fastapi._http import Principal, csrf_refused, seconds_until, unauthorized, unavailable
from authcore.fastapi._stores import SessionBackend, UserBackend
from authcore.jwt import JWTManager
from authcore.sessions import AuthSession, SessionStore
from authcore.users import User, UserStore

__all__ = ["TRANSPORT_MODES", "Credentials", "Outcome", "Transport", "TransportMode"]

#: How credentials travel: ``AuthCore(transport=...)``.
TransportMode = Literal["both", "cookie", "bearer"]
TRANSPORT_MODES: tuple[TransportMode, ...] = ("both", "cookie", "bearer")

logger = logging.getLogger("authcore.fastapi")


class Transport:
    """How the credentials travel: the session cookie and the bearer header.

    Args:
        prefix: Where the routes live (the OAuth2 ``tokenUrl`` is ``{prefix}/login``).
        cookie_name: The session cookie's name.
        cookie_secure: Send the cookie over HTTPS only.
        mode: ``"both"``; ``"cookie"``: the bearer header is never read (and
            the routes put no token in a body); ``"bearer"``: the cookie is
            never set, deleted or read.
    """

    def __init__(
        self, *, prefix: str, cookie_name: str, cookie_secure: bool, mode: TransportMode = "both"
    ) -> None:
        if not cookie_name or not cookie_name.isascii() or not cookie_name.isprintable():
            raise ValueError("cookie_name must be a non-empty printable ASCII name")
        if mode not in TRANSPORT_MODES:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORT_MODES)}")
        self.mode: TransportMode = mode
        self.cookie_name = cookie_name
        self.cookie_secure = cookie_secure
        self.bearer_scheme = OAuth2PasswordBearer(
            tokenUrl=f"{prefix}/login", auto_error=False, scheme_name="authcore"
        )

    def cookie_of(self, request: Request) -> str | None:
        """The session token in *request*'s cookie, or ``None`` (always with ``"bearer"``)."""
        if self.mode == "bearer":
            return None
        return request.cookies.get(self.cookie_name) or None

    async def bearer_of(self, request: Request) -> str | None:
        """The token in *request*'s ``Authorization: Bearer`` header, or ``None``.

        Always ``None`` with ``"cookie"``.
        """
        if self.mode == "cookie":
            return None
        return await self.bearer_scheme(request)

    def set_cookie(self, response: Response, token: str, session: AuthSession) -> None:
        """Put *token* in the session cookie, living as long as *session*.

        Does nothing with ``"bearer"``.
        """
        if self.mode == "bearer":
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

    def delete_cookie(self, response: Response) -> None:
        """Tell the browser to drop the session cookie (not with ``"bearer"``)."""
        if self.mode == "bearer":
            return
        response.delete_cookie(
            self.cookie_name, path="/", secure=self.cookie_secure, httponly=True, samesite="lax"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """The credentials of one request, resolved once (FastAPI caches dependencies)."""

    principal: Principal | None = None
    error: HTTPException | None = None
    cookie_failed: bool = False

    def require(self) -> Principal:
        """The principal, or raise the error (401 when there were no credentials)."""
        if self.error is not None:
            raise self.error
        if self.principal is None:
            raise unauthorized()
        return self.principal


class Credentials:
    """Whom a request's credentials prove, and the dependencies that ask.

    A bearer JWT is verified, then its ``sid`` must name an active session of
    its ``sub``; else the session cookie is validated. The header wins when
    both are sent. The user must exist and be active. An unsafe request
    authenticated by the cookie must pass the *origins* check.

    Attributes:
        principal, current_session, optional_session, current_user: The
            dependencies (see :class:`~authcore.fastapi.AuthCore`), each one
            stable callable so ``dependency_overrides`` can key on it.
    """

    principal: Callable[..., Awaitable[Principal]]
    current_session: Callable[..., Awaitable[AuthSession]]
    optional_session: Callable[..., Awaitable[AuthSession | None]]
    current_user: Callable[..., Awaitable[User]]
    page_user: Callable[..., Awaitable[User]]

    def __init__(
        self,
        *,
        transport: Transport,
        jwt: JWTManager,
        sessions: SessionBackend,
        users: UserBackend,
        origins: OriginCheck,
        events: Events,
        login_page_url: str | None = None,
    ) -> None:
        self.transport = transport
        self.events = events
        self.login_page_url = login_page_url
        self.jwt = jwt
        self.sessions = sessions
        self.users = users
        self.origins = origins
        self._make_dependencies()

    def access_claims(self, token: str) -> tuple[str, str]:
        """The user id (``sub``) and session id (``sid``) of a verified access token.

        Raises:
            InvalidTokenError: the token does not verify or names no session.
        """
        claims = self.jwt.verify(token)
        sid = claims.get("sid")
        if not isinstance(sid, str):
            raise InvalidTokenError("the access token names no session")
        return claims["sub"], sid

    async def session_from_jwt(self, token: str) -> AuthSession:
        """The active session an access token was issued for; else ``InvalidTokenError``."""
        user_id, sid = self.access_claims(token)
        session = await self.sessions.get_session_by_id(sid)
        if session is None or session.user_id != user_id:
            raise InvalidTokenError("the access token's session is not active")
        return session

    async def resolve(self, request: Request, bearer: str | None) -> Principal | None:
        """The request's principal; ``None`` without credentials.

        Raises:
            InvalidTokenError: the credentials are not accepted.
            StorageError: the database failed.
        """
        if self.transport.mode == "cookie":
            bearer = None  # bearer headers are not accepted
        joined = self._joined()
        if joined is not None:
            return await self._resolve_joined(request, bearer, joined)
        if bearer is not None:
            session = await self.session_from_jwt(bearer)
            via: Literal["bearer", "cookie"] = "bearer"
            token = None
        else:
            token = self.transport.cookie_of(request)
            if token is None:
                return None
            session = await self.sessions.validate(token)
            via = "cookie"
        user = await self.users.get_user(session.user_id)
        if user is None or not user.is_active:
            raise InvalidTokenError("the session's user is not active")
        return Principal(session=session, user=user, via=via, token=token)

    def _joined(self) -> SessionStore | None:
        """The session store, when it can read a session with its user in one statement.

        Only authcore's own SQL stores on one engine, with the methods this
        would bypass not replaced (a subclass or a patched instance keeps the
        two calls).
        """
        sessions, users = self.sessions, self.users
        if (
            isinstance(sessions, SessionStore)
            and isinstance(users, UserStore)
            and sessions.engine is users.engine
            and getattr(sessions.validate, "__func__", None) is SessionStore.validate
            and getattr(sessions.get_session_by_id, "__func__", None)
            is SessionStore.get_session_by_id
            and getattr(users.get_user, "__func__", None) is UserStore.get_user
        ):
            return sessions
        return None

    async def _resolve_joined(
        self, request: Request, bearer: str | None, sessions: SessionStore
    ) -> Principal | None:
        """:meth:`resolve` with the session and its user read in one statement."""
        via: Literal["bearer", "cookie"]
        if bearer is not None:
            user_id, sid = self.access_claims(bearer)
            found = await sessions.session_with_user(sid)
            if found is None or found[0].user_id != user_id:
                raise InvalidTokenError("the access token's session is not active")
            session, columns = found
            via, token = "bearer", None
        else:
            token = self.transport.cookie_of(request)
            if token is None:
                return None
            session, columns = await sessions.validate_with_user(token)
            via = "cookie"
        if columns is None or not columns["is_active"]:
            raise InvalidTokenError("the session's user is not active")
        return Principal(session=session, user=User(**columns), via=via, token=token)

    async def outcome(self, request: Request, bearer: str | None) -> Outcome:
        """The request's credentials resolved: once per request, whichever dependency asks.

        Kept in the request's scope rather than behind a dependency of its
        own: each level of FastAPI's dependency tree costs about as much as
        the session read itself.
        """
        outcomes = request.scope.setdefault("authcore.outcomes", {})
        outcome: Outcome | None = outcomes.get(self)
        if outcome is None:
            outcome = outcomes[self] = await self._resolve_outcome(request, bearer)
        return outcome

    async def _resolve_outcome(self, request: Request, bearer: str | None) -> Outcome:
        try:
            principal = await self.resolve(request, bearer)
        except InvalidTokenError as exc:
            if isinstance(exc, TokenReuseError):  # a stolen cookie, likely; its family is revoked
                await self.events.emit(
                    "token_reuse", request, user_id=exc.user_id, session_id=exc.session_id
                )
            by_cookie = bearer is None or self.transport.mode == "cookie"
            return Outcome(error=unauthorized(), cookie_failed=by_cookie)
        except StorageError:
            logger.warning("authentication failed: storage unavailable", exc_info=True)
            return Outcome(error=unavailable())
        if (
            principal is not None
            and principal.via == "cookie"
            and request.method in UNSAFE_METHODS
            and not self.origins.allowed(request)
        ):
            return Outcome(error=csrf_refused())
        return Outcome(principal=principal)

    def _make_dependencies(self) -> None:
        # Built once, so each is one stable callable: dependency_overrides can key
        # on them. Each takes the request and the bearer scheme (the scheme also
        # documents the security in OpenAPI); the credentials are resolved once
        # per request (see outcome).
        Bearer = Annotated[str | None, Depends(self.transport.bearer_scheme)]
        outcome_of = self.outcome

        async def principal(request: Request, bearer: Bearer) -> Principal:
            return (await outcome_of(request, bearer)).require()

        async def current_session(request: Request, bearer: Bearer) -> AuthSession:
            return (await outcome_of(request, bearer)).require().session

        async def optional_session(request: Request, bearer: Bearer) -> AuthSession | None:
            outcome = await outcome_of(request, bearer)
            if outcome.error is not None and outcome.cookie_failed:
                return None  # a stale cookie on a public page: anonymous
            if outcome.error is None and outcome.principal is None:
                return None
            return outcome.require().session

        async def current_user(request: Request, bearer: Bearer) -> User:
            return (await outcome_of(request, bearer)).require().user

        async def page_user(request: Request, bearer: Bearer) -> User:
            outcome = await outcome_of(request, bearer)
            if outcome.principal is not None:
                return outcome.principal.user
            if outcome.error is not None and outcome.error.status_code != 401:
                raise outcome.error  # 403 (CSRF) or 503: logging in again would not help
            if self.login_page_url is None:  # AuthCore.page_user refuses to hand it out
                raise RuntimeError("page_user needs a login_page_url")
            raise login_required(self.login_page_url, request)

        self.principal = principal
        self.current_session = current_session
        self.optional_session = optional_session
        self.current_user = current_user
        self.page_user = page_user
