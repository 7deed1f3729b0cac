"""The routes of :attr:`AuthCore.router`: register, login, refresh, logout, sessions, password."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from authcore.errors import (
    InvalidTokenError,
    PasswordPolicyError,
    StorageError,
    UserExistsError,
)
from authcore.fastapi._core import (
    Principal,
    raise_storage_unavailable,
    unauthorized,
)
from authcore.fastapi._schemas import (
    PasswordChange,
    PasswordChanged,
    Refresh,
    Registration,
    Revoked,
    SessionInfo,
    TokenPair,
    UserInfo,
)
from authcore.sessions import AuthSession
from authcore.users import User

if TYPE_CHECKING:
    from authcore.fastapi._core import AuthCore

__all__ = ["build_router"]

BAD_LOGIN = "Incorrect username or password"
BAD_CURRENT_PASSWORD = "The current password is incorrect"
UNAUTHORIZED_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing, invalid, expired or revoked credentials"},
    403: {"description": "Cross-site request refused (CSRF check)"},
    503: {"description": "The session database is unavailable"},
}


@asynccontextmanager
async def storage_as_503() -> AsyncIterator[None]:
    """Turn a :class:`~authcore.errors.StorageError` in the block into a 503."""
    try:
        yield
    except StorageError as exc:
        raise_storage_unavailable(exc)


def unprocessable(exc: ValueError | TypeError) -> HTTPException:
    """A 422 carrying the policy's message (which never contains the password)."""
    return HTTPException(422, detail=str(exc))  # no HTTP_422_UNPROCESSABLE_CONTENT before 0.48


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The client's address and user agent, as the session records them."""
    ip = request.client.host if request.client is not None else None
    return ip, request.headers.get("user-agent")


def build_router(auth: "AuthCore") -> APIRouter:
    """The router behind :attr:`AuthCore.router`."""
    router = APIRouter(prefix=auth.prefix, tags=["auth"])
    CurrentPrincipal = Annotated[Principal, Depends(auth.principal)]

    async def token_pair(response: Response, token: str) -> TokenPair:
        """The JWT + refresh token answer for a fresh session *token*; sets the cookie."""
        session = await auth.sessions.validate(token)
        auth.set_session_cookie(response, token, session)
        access = auth.jwt.issue(session.user_id, session_id=session.id)
        return TokenPair(
            access_token=access,
            expires_in=int(auth.jwt.ttl.total_seconds()),
            refresh_token=token,
        )

    async def active_user(user_id: str) -> User | None:
        user = await auth.users.get_user(user_id)
        return user if user is not None and user.is_active else None

    @router.post("/register", status_code=status.HTTP_201_CREATED, responses={409: {}})
    async def register(body: Registration) -> UserInfo:
        """Create an account. 409 when the username is taken (case-insensitive)."""
        async with storage_as_503():
            try:
                user = await auth.users.create_user(body.username, body.password)
            except UserExistsError:
                raise HTTPException(
                    status.HTTP_409_CONFLICT, detail="That username is already taken"
                ) from None
            except (PasswordPolicyError, ValueError, TypeError) as exc:
                raise unprocessable(exc) from None
        return UserInfo(id=user.id, username=user.username)

    @router.post("/login", responses=UNAUTHORIZED_RESPONSES)
    async def login(
        request: Request,
        response: Response,
        form: Annotated[OAuth2PasswordRequestForm, Depends()],
    ) -> TokenPair:
        """Log in with a username and password (an OAuth2 password form).

        Returns a JWT access token and the refresh (session) token, and sets the
        session cookie. A session presented with the request (cookie or
        bearer) is revoked first: a login always starts a new session.
        """
        auth.check_origin(request)  # login CSRF: a cross-site form must not log you in
        async with storage_as_503():
            try:
                user = await auth.users.authenticate(form.username, form.password)
            except PasswordPolicyError:
                user = None  # e.g. an over-long password: the same answer as a wrong one
            if user is None:
                raise unauthorized(BAD_LOGIN)
            await revoke_presented(request)
            ip, user_agent = client_of(request)
            token = await auth.sessions.create_session(user.id, ip=ip, user_agent=user_agent)
            return await token_pair(response, token)

    async def revoke_presented(request: Request) -> None:
        """Revoke the session a login request came with (session fixation)."""
        cookie = request.cookies.get(auth.cookie_name)
        if cookie:
            await auth.sessions.revoke(cookie)
        bearer = await auth.bearer_scheme(request)
        if bearer:
            try:
                claims = auth.jwt.verify(bearer)
            except InvalidTokenError:
                return
            if isinstance(claims.get("sid"), str):
                await auth.sessions.revoke_session(claims["sub"], claims["sid"])

    @router.post("/refresh", responses=UNAUTHORIZED_RESPONSES)
    async def refresh(body: Refresh, response: Response) -> TokenPair:
        """Rotate a refresh token: a new pair, the old refresh token revoked.

        Presenting a refresh token that was already rotated is treated as theft:
        401, and every session of that rotation family is revoked.
        """
        async with storage_as_503():
            try:
                token = await auth.sessions.rotate(body.refresh_token)
            except InvalidTokenError:
                raise unauthorized() from None
            session = await auth.sessions.validate(token)
            if await active_user(session.user_id) is None:
                await auth.sessions.revoke(token)
                raise unauthorized()
            return await token_pair(response, token)

    @router.post(
        "/logout", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED_RESPONSES
    )
    async def logout(principal: CurrentPrincipal, response: Response) -> None:
        """Revoke the current session and clear the session cookie."""
        async with storage_as_503():
            await auth.sessions.revoke_session(principal.user.id, principal.session.id)
        auth.delete_session_cookie(response)

    @router.post("/logout-all", responses=UNAUTHORIZED_RESPONSES)
    async def logout_all(principal: CurrentPrincipal) -> Revoked:
        """Revoke every other session of the user; the current one stays."""
        async with storage_as_503():
            revoked = await auth.sessions.revoke_all(
                principal.user.id, except_session_id=principal.session.id
            )
        return Revoked(revoked=revoked)

    @router.get("/sessions", responses=UNAUTHORIZED_RESPONSES)
    async def list_sessions(principal: CurrentPrincipal) -> list[SessionInfo]:
        """The caller's active sessions (devices), newest first. Never a token."""
        async with storage_as_503():
            sessions = await auth.sessions.list_sessions(principal.user.id)
        return [session_info(s, current=s.id == principal.session.id) for s in sessions]

    @router.delete(
        "/sessions/{session_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses={**UNAUTHORIZED_RESPONSES, 404: {"description": "Not one of your sessions"}},
    )
    async def revoke_session(
        session_id: str, principal: CurrentPrincipal, response: Response
    ) -> None:
        """Revoke one of the caller's sessions by its id. 404 when it is not theirs."""
        async with storage_as_503():
            revoked = await auth.sessions.revoke_session(principal.user.id, session_id)
        if not revoked:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such session")
        if session_id == principal.session.id and principal.via == "cookie":
            auth.delete_session_cookie(response)

    @router.post(
        "/password",
        responses={**UNAUTHORIZED_RESPONSES, 400: {"description": "Wrong current password"}},
    )
    async def change_password(
        body: PasswordChange, principal: CurrentPrincipal, response: Response
    ) -> PasswordChanged:
        """Change the password and sign out every other session.

        A cookie session is rotated (the new token comes in ``Set-Cookie``); a
        bearer session is kept, so its access token goes on working.
        """
        user, session = principal.user, principal.session
        async with storage_as_503():
            try:
                confirmed = await auth.users.authenticate(user.username, body.current_password)
            except PasswordPolicyError:
                confirmed = None
            if confirmed is None or confirmed.id != user.id:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=BAD_CURRENT_PASSWORD)
            try:
                await auth.users.set_password(user.id, body.new_password)
            except (PasswordPolicyError, ValueError) as exc:
                raise unprocessable(exc) from None
            # After the change, so a session created with the old password cannot survive.
            revoked = await auth.sessions.revoke_all(user.id, except_session_id=session.id)
            rotated = principal.token is not None  # only cookie sessions carry theirs
            if principal.token is not None:
                try:
                    token = await auth.sessions.rotate(principal.token)
                except InvalidTokenError:  # revoked by a concurrent request meanwhile
                    raise unauthorized() from None
                auth.set_session_cookie(response, token, await auth.sessions.validate(token))
        return PasswordChanged(revoked=revoked, rotated=rotated)

    @router.get("/me", responses=UNAUTHORIZED_RESPONSES)
    async def me(principal: CurrentPrincipal) -> UserInfo:
        """The caller's account."""
        return UserInfo(id=principal.user.id, username=principal.user.username)

    return router


def session_info(session: AuthSession, *, current: bool) -> SessionInfo:
    """The public view of *session*."""
    return SessionInfo(
        id=session.id,
        created_at=session.created_at,
        last_seen_at=session.last_seen_at,
        expires_at=session.expires_at,
        ip=session.ip,
        user_agent=session.user_agent,
        current=current,
    )
