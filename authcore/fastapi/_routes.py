"""The routes of :attr:`AuthCore.router`: register, login, refresh, logout, sessions, password."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from authcore.errors import (
    InvalidTokenError,
    PasswordPolicyError,
    StorageError,
    UserExistsError,
)
from authcore.fastapi._browser import (
    BrowserForm,
    ErrorBody,
    LoginBody,
    RegisteredSession,
    Unprocessable,
    browser_body,
    browser_next,
    failed_login,
    finish,
)
from authcore.fastapi._core import (
    Principal,
    raise_storage_unavailable,
    unauthorized,
)
from authcore.fastapi._forms import body_openapi
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
SEE_OTHER = "Browser form posts (with `next`): on to the `next` page (local paths only)"
UNAUTHORIZED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid, expired or revoked credentials", "model": ErrorBody},
    403: {"description": "Cross-site request refused (CSRF check)", "model": ErrorBody},
    422: {"description": "Invalid body, or a password the policy refuses", "model": Unprocessable},
    503: {"description": "The session database is unavailable", "model": ErrorBody},
}
FORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED_RESPONSES,
    303: {"description": SEE_OTHER},
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
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc))


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The client's address and user agent, as the session records them."""
    ip = request.client.host if request.client is not None else None
    return ip, request.headers.get("user-agent")


def build_router(auth: "AuthCore") -> APIRouter:
    """The router behind :attr:`AuthCore.router`."""
    router = APIRouter(prefix=auth.prefix, tags=["auth"])
    cookie_only = auth.transport == "cookie"  # no token ever goes into a body
    CurrentPrincipal = Annotated[Principal, Depends(auth.principal)]

    async def token_pair(response: Response, token: str) -> TokenPair:
        """The JWT + refresh token answer for a fresh session *token*; sets the cookie."""
        session = await auth.sessions.validate(token)
        auth.set_session_cookie(response, token, session)
        if cookie_only:
            return TokenPair(access_token="", expires_in=0, refresh_token="")  # never sent
        access = auth.jwt.issue(session.user_id, session_id=session.id)
        return TokenPair(
            access_token=access,
            expires_in=int(auth.jwt.ttl.total_seconds()),
            refresh_token=token,
        )

    async def active_user(user_id: str) -> User | None:
        user = await auth.users.get_user(user_id)
        return user if user is not None and user.is_active else None

    registered_model = (
        RegisteredSession if auth.login_after_register and not cookie_only else UserInfo
    )

    @router.post(
        "/register",
        status_code=status.HTTP_201_CREATED,
        response_model=registered_model,
        responses={
            **FORM_RESPONSES,
            409: {"description": "The username is taken", "model": ErrorBody},
        },
        openapi_extra=body_openapi(Registration),
    )
    async def register(request: Request, response: Response) -> Any:
        """Create an account. 409 when the username is taken (case-insensitive).

        JSON or a form; with ``login_after_register`` the new user is also
        logged in (the cookie, and the tokens unless the transport is
        ``"cookie"``). A browser form with ``next`` is sent on with a 303.
        """
        form = await browser_body(auth, request, Registration)
        body = form.value
        async with storage_as_503():
            try:
                user = await auth.users.create_user(body.username, body.password)
            except UserExistsError:
                raise HTTPException(
                    status.HTTP_409_CONFLICT, detail="That username is already taken"
                ) from None
            except (PasswordPolicyError, ValueError, TypeError) as exc:
                raise unprocessable(exc) from None
            info = UserInfo(id=user.id, username=user.username)
            if auth.login_after_register:
                await revoke_presented(request)
                ip, user_agent = client_of(request)
                token = await auth.sessions.create_session(user.id, ip=ip, user_agent=user_agent)
                pair = await token_pair(response, token)
                if not cookie_only:
                    info = RegisteredSession(**info.model_dump(), **pair.model_dump())
        return finish(auth, form.next, response, info)

    @router.post(
        "/login",
        response_model=UserInfo if cookie_only else TokenPair,
        responses=FORM_RESPONSES,
        openapi_extra=body_openapi(LoginBody),
    )
    async def login(request: Request, response: Response) -> Any:
        """Log in with a username and password: an OAuth2 password form, or JSON.

        Returns a JWT access token and the refresh (session) token, and sets the
        session cookie (with ``transport="cookie"``: the cookie and the user,
        no token). A session presented with the request (cookie or bearer) is
        revoked first: a login always starts a new session. A browser form
        with ``next`` is sent there with a 303; when it fails, back to
        ``login_page_url?error=invalid&next=...`` (if set).
        """
        auth.check_origin(request)  # login CSRF: a cross-site form must not log you in
        form = await browser_body(auth, request, LoginBody)
        async with storage_as_503():
            try:
                user = await auth.users.authenticate(form.value.username, form.value.password)
            except PasswordPolicyError:
                user = None  # e.g. an over-long password: the same answer as a wrong one
            if user is None:
                back = failed_login(auth, form.next)
                if back is not None:
                    return back
                raise unauthorized(BAD_LOGIN)
            await revoke_presented(request)
            ip, user_agent = client_of(request)
            token = await auth.sessions.create_session(user.id, ip=ip, user_agent=user_agent)
            pair = await token_pair(response, token)
        answer = UserInfo(id=user.id, username=user.username) if cookie_only else pair
        return finish(auth, form.next, response, answer)

    async def revoke_presented(request: Request) -> None:
        """Revoke the session a login request came with (session fixation)."""
        cookie = auth.session_cookie(request)
        if cookie:
            await auth.sessions.revoke(cookie)
        bearer = None if cookie_only else await auth.bearer_scheme(request)
        if bearer:
            try:
                claims = auth.jwt.verify(bearer)
            except InvalidTokenError:
                return
            if isinstance(claims.get("sid"), str):
                await auth.sessions.revoke_session(claims["sub"], claims["sid"])

    async def rotated(old: str, response: Response) -> TokenPair:
        async with storage_as_503():
            try:
                token = await auth.sessions.rotate(old)
            except InvalidTokenError:
                raise unauthorized() from None
            session = await auth.sessions.validate(token)
            if await active_user(session.user_id) is None:
                await auth.sessions.revoke(token)
                raise unauthorized()
            return await token_pair(response, token)

    if cookie_only:

        @router.post(
            "/refresh", status_code=status.HTTP_204_NO_CONTENT, responses=UNAUTHORIZED_RESPONSES
        )
        async def refresh_cookie(request: Request, response: Response) -> None:
            """Rotate the session cookie: a new one is set, the old one revoked.

            Presenting a cookie that was already rotated is treated as theft:
            401, and every session of that rotation family is revoked.
            """
            token = auth.session_cookie(request)
            if token is None:
                raise unauthorized()
            auth.check_origin(request)  # a cookie-authenticated unsafe request
            await rotated(token, response)

    else:

        @router.post(
            "/refresh",
            responses={
                **UNAUTHORIZED_RESPONSES,
                400: {"description": "The body could not be decoded", "model": ErrorBody},
            },
        )
        async def refresh(body: Refresh, response: Response) -> TokenPair:
            """Rotate a refresh token: a new pair, the old refresh token revoked.

            Presenting a refresh token that was already rotated is treated as
            theft: 401, and every session of that rotation family is revoked.
            """
            return await rotated(body.refresh_token, response)

    no_body = body_openapi(BrowserForm, required=False)

    @router.post(
        "/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        response_model=None,
        responses=FORM_RESPONSES,
        openapi_extra=no_body,
    )
    async def logout(principal: CurrentPrincipal, request: Request, response: Response) -> Any:
        """Revoke the current session and clear the session cookie.

        A browser form with ``next`` is sent there with a 303.
        """
        next_page = await browser_next(auth, request)
        async with storage_as_503():
            await auth.sessions.revoke_session(principal.user.id, principal.session.id)
        auth.delete_session_cookie(response)
        return finish(auth, next_page, response, None)

    @router.post(
        "/logout-all", response_model=Revoked, responses=FORM_RESPONSES, openapi_extra=no_body
    )
    async def logout_all(principal: CurrentPrincipal, request: Request) -> Any:
        """Revoke every other session of the user; the current one stays.

        A browser form with ``next`` is sent there with a 303.
        """
        next_page = await browser_next(auth, request)
        async with storage_as_503():
            revoked = await auth.sessions.revoke_all(
                principal.user.id, except_session_id=principal.session.id
            )
        return finish(auth, next_page, Response(), Revoked(revoked=revoked))

    @router.get("/sessions", responses=UNAUTHORIZED_RESPONSES)
    async def list_sessions(principal: CurrentPrincipal) -> list[SessionInfo]:
        """The caller's active sessions (devices), newest first. Never a token."""
        async with storage_as_503():
            sessions = await auth.sessions.list_sessions(principal.user.id)
        return [session_info(s, current=s.id == principal.session.id) for s in sessions]

    not_yours: dict[int | str, dict[str, Any]] = {
        404: {"description": "Not one of your sessions", "model": ErrorBody}
    }

    @router.delete(
        "/sessions/{session_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses={**UNAUTHORIZED_RESPONSES, **not_yours},
    )
    async def revoke_session(
        session_id: str, principal: CurrentPrincipal, response: Response
    ) -> None:
        """Revoke one of the caller's sessions by its id. 404 when it is not theirs."""
        await revoke_one(session_id, principal, response)

    @router.post(
        "/sessions/{session_id}/revoke",
        status_code=status.HTTP_204_NO_CONTENT,
        response_model=None,
        responses={**FORM_RESPONSES, **not_yours},
        openapi_extra=no_body,
    )
    async def revoke_session_form(
        session_id: str, principal: CurrentPrincipal, request: Request, response: Response
    ) -> Any:
        """``DELETE /sessions/{id}`` for HTML forms, which cannot send a DELETE.

        A browser form with ``next`` is sent there with a 303.
        """
        next_page = await browser_next(auth, request)
        await revoke_one(session_id, principal, response)
        return finish(auth, next_page, response, None)

    async def revoke_one(session_id: str, principal: Principal, response: Response) -> None:
        async with storage_as_503():
            revoked = await auth.sessions.revoke_session(principal.user.id, session_id)
        if not revoked:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such session")
        if session_id == principal.session.id and principal.via == "cookie":
            auth.delete_session_cookie(response)

    @router.post(
        "/password",
        response_model=PasswordChanged,
        responses={
            **FORM_RESPONSES,
            400: {"description": "Wrong current password", "model": ErrorBody},
        },
        openapi_extra=body_openapi(PasswordChange),
    )
    async def change_password(
        principal: CurrentPrincipal, request: Request, response: Response
    ) -> Any:
        """Change the password and sign out every other session.

        A cookie session is rotated (the new token comes in ``Set-Cookie``); a
        bearer session is kept, so its access token goes on working. JSON or
        a form; a browser form with ``next`` is sent there with a 303.
        """
        form = await browser_body(auth, request, PasswordChange)
        body = form.value
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
        return finish(auth, form.next, response, PasswordChanged(revoked=revoked, rotated=rotated))

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
