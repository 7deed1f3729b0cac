"""The routes of :attr:`AuthCore.router`: register, login, refresh, logout, sessions, password."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations
# at run time, and they name local variables.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from authcore.errors import (
    InvalidTokenError,
    PasswordPolicyError,
    TokenReuseError,
    UserExistsError,
)
from authcore.fastapi._account import AccountOptions
from authcore.fastapi._account import add_routes as add_account_routes
from authcore.fastapi._browser import (
    CREDENTIAL_RESPONSES,
    FORM_RESPONSES,
    THROTTLED_RESPONSES,
    BrowserFlow,
    BrowserForm,
    ErrorBody,
    LoginBody,
    RegisteredSession,
    browser_body,
    browser_next,
    finish,
)
from authcore.fastapi._credentials import Credentials
from authcore.fastapi._devices import add_routes as add_device_routes
from authcore.fastapi._events import Events, client_of
from authcore.fastapi._forms import body_openapi
from authcore.fastapi._http import (
    BAD_CURRENT_PASSWORD,
    Principal,
    http_errors,
    unauthorized,
    unprocessable,
)
from authcore.fastapi._login import LoginGuard
from authcore.fastapi._schemas import (
    PasswordChange,
    PasswordChanged,
    Refresh,
    Registration,
    Revoked,
    TokenPair,
    UserInfo,
)
from authcore.sessions import IssuedSession
from authcore.tokens import parse_token
from authcore.users import User

__all__ = ["TAKEN", "build_router"]

#: The body of a 409 from ``/register``.
TAKEN = "That username or email is already taken"


def build_router(
    auth: Credentials,
    *,
    prefix: str,
    browser: BrowserFlow | None = None,
    guard: LoginGuard | None = None,
    account: AccountOptions | None = None,
) -> APIRouter:
    """The router behind :attr:`AuthCore.router`, under *prefix*.

    Every route maps a credential problem to the usual 401 whenever it
    happens, also after a concurrent request revoked what the route had just
    made, and a :class:`~authcore.errors.StorageError` to a 503: a race never
    answers 500. A browser form post (a form with ``next``) is answered with
    a 303 instead of JSON (see :mod:`authcore.fastapi._forms`).
    """
    flow = BrowserFlow() if browser is None else browser
    options = AccountOptions(events=Events()) if account is None else account
    events = options.events
    if guard is None:
        guard = LoginGuard(auth.users, None, None, events, flow)
    router = APIRouter(prefix=prefix, tags=["auth"])
    CurrentPrincipal = Annotated[Principal, Depends(auth.principal)]
    Bearer = Annotated[str | None, Depends(auth.transport.bearer_scheme)]
    transport = auth.transport
    cookie_only = transport.mode == "cookie"  # no token ever goes into a body

    def token_pair(response: Response, issued: IssuedSession) -> TokenPair:
        """The JWT + refresh token answer for a session just made; sets the cookie."""
        session = issued.session
        transport.set_cookie(response, issued.token, session)
        if cookie_only:  # never sent: the routes answer without the tokens
            return TokenPair(access_token="", expires_in=0, refresh_token="")
        access = auth.jwt.issue(session.user_id, session_id=session.id)
        return TokenPair(
            access_token=access,
            expires_in=int(auth.jwt.ttl.total_seconds()),
            refresh_token=issued.token,
        )

    async def active_user(user_id: str) -> User | None:
        user = await auth.users.get_user(user_id)
        return user if user is not None and user.is_active else None

    with_tokens = flow.login_after_register and not cookie_only

    @router.post(
        "/register",
        status_code=status.HTTP_201_CREATED,
        response_model=RegisteredSession if with_tokens else UserInfo,
        responses={
            **FORM_RESPONSES,
            409: {"description": "The username or email is taken", "model": ErrorBody},
        },
        openapi_extra=body_openapi(Registration),
    )
    async def register(request: Request, response: Response) -> Any:
        """Create an account, with an optional ``email``. 409 when the username or
        the email is taken (case-insensitive); 422 with the reasons for a
        password the policy refuses.

        JSON or a form. With ``login_after_register`` the new user is also
        logged in (the cookie, and the tokens unless the transport is
        ``"cookie"``). A browser form with ``next`` is sent on with a 303.
        """
        form = await browser_body(auth.origins, request, Registration)
        body = form.value
        async with http_errors():
            extra = {} if body.email is None else {"email": body.email}
            try:
                user = await auth.users.create_user(body.username, body.password, **extra)
            except UserExistsError:
                raise HTTPException(status.HTTP_409_CONFLICT, detail=TAKEN) from None
            except (PasswordPolicyError, ValueError, TypeError) as exc:
                raise unprocessable(exc) from None
            await events.emit("registered", request, user_id=user.id)
            info = UserInfo.of(user)
            if flow.login_after_register:
                issued = await start_session(request, user)
                pair = token_pair(response, issued)
                if with_tokens:
                    info = RegisteredSession(**info.model_dump(), **pair.model_dump())
        return finish(flow, form.next, response, info)

    async def new_session(request: Request, user: User) -> IssuedSession:
        """A new session for *user*, replacing the one the request came with."""
        await revoke_presented(request)
        ip, user_agent = client_of(request)
        return await auth.sessions.issue_session(user.id, ip=ip, user_agent=user_agent)

    async def start_session(request: Request, user: User) -> IssuedSession:
        """:func:`new_session`, reported as a ``login`` event."""
        issued = await new_session(request, user)
        await events.emit("login", request, user_id=user.id, session_id=issued.session.id)
        return issued

    @router.post(
        "/login",
        response_model=UserInfo if cookie_only else TokenPair,
        responses={**FORM_RESPONSES, **THROTTLED_RESPONSES},
        openapi_extra=body_openapi(LoginBody),
    )
    async def login(request: Request, response: Response) -> Any:
        """Log in with a username and password: an OAuth2 password form, or JSON.

        Returns a JWT access token and the refresh (session) token, and sets the
        session cookie (with ``transport="cookie"``: the cookie and the user,
        no token). A session presented with the request (cookie or bearer) is
        revoked first: a login always starts a new session. A browser form
        with ``next`` is sent there with a 303; when the login fails, back to
        ``login_page_url?error=invalid&next=...`` (when set). Too many recent
        failures for the username or the address: 429 with ``Retry-After``
        (a browser: ``?error=throttled``); too many logins waiting for
        password hashing: 503 with ``Retry-After``, at once. A login that
        verified a password which a concurrent change replaced (or whose user
        was deactivated) before its session existed fails as a wrong password
        does, and leaves no session.
        """
        auth.origins.check(request)  # login CSRF: a cross-site form must not log you in
        form = await browser_body(auth.origins, request, LoginBody)
        checked = await guard.check(request, form)
        if isinstance(checked, Response):
            return checked
        user, receipt = checked
        async with http_errors():
            issued = await new_session(request, user)
            # A password change sets the hash, then revokes sessions: this session was
            # either revoked, or the re-read sees the new hash (see users/_receipt.py).
            kept = await receipt.still_current(user.id)
            if kept:
                await events.emit("login", request, user_id=user.id, session_id=issued.session.id)
            else:
                await auth.sessions.revoke(issued.token)
        if not kept:
            return await guard.refuse(request, form)
        pair = token_pair(response, issued)
        answer = UserInfo.of(user) if cookie_only else pair
        return finish(flow, form.next, response, answer)

    async def revoke_presented(request: Request) -> None:
        """Revoke the session a login request came with (session fixation)."""
        cookie = transport.cookie_of(request)
        if cookie:
            await auth.sessions.revoke(cookie)
        bearer = await transport.bearer_of(request)
        if bearer:
            try:
                claims = auth.jwt.verify(bearer)
            except InvalidTokenError:
                return
            if isinstance(claims.get("sid"), str):
                await auth.sessions.revoke_session(claims["sub"], claims["sid"])

    async def rotated(old: str, request: Request, response: Response) -> TokenPair:
        async with http_errors():
            try:
                issued = await auth.sessions.rotate_session(old)
            except TokenReuseError as exc:
                await events.emit(
                    "token_reuse", request, user_id=exc.user_id, session_id=exc.session_id
                )
                raise
            if await active_user(issued.session.user_id) is None:
                await auth.sessions.revoke(issued.token)
                raise unauthorized()
        return token_pair(response, issued)

    if cookie_only:

        @router.post(
            "/refresh",
            status_code=status.HTTP_204_NO_CONTENT,
            response_model=None,
            responses=CREDENTIAL_RESPONSES,
        )
        async def refresh_cookie(request: Request, response: Response) -> None:
            """Rotate the session cookie: a new one is set, the old one revoked.

            Presenting a cookie that was already rotated is treated as theft:
            401, and every session of that rotation family is revoked (unless
            the app allows a ``rotation_grace``).
            """
            token = transport.cookie_of(request)
            if token is None:
                raise unauthorized()
            auth.origins.check(request)  # a cookie-authenticated unsafe request
            await rotated(token, request, response)

    else:

        @router.post(
            "/refresh",
            responses={
                **CREDENTIAL_RESPONSES,
                400: {"description": "The body could not be decoded", "model": ErrorBody},
            },
        )
        async def refresh(body: Refresh, request: Request, response: Response) -> TokenPair:
            """Rotate a refresh token: a new pair, the old refresh token revoked.

            Presenting a refresh token that was already rotated is treated as
            theft: 401, and every session of that rotation family is revoked
            (unless the app allows a ``rotation_grace``, for two tabs
            refreshing at once).
            """
            return await rotated(body.refresh_token, request, response)

    no_body = body_openapi(BrowserForm, required=False)

    @router.post(
        "/logout",
        status_code=status.HTTP_204_NO_CONTENT,
        response_model=None,
        responses=FORM_RESPONSES,
        openapi_extra=no_body,
    )
    async def logout(request: Request, response: Response, bearer: Bearer) -> Any:
        """End the current session and clear the session cookie.

        Logging out a session that a concurrent ``/refresh`` has just rotated
        away (by its cookie or by an access token issued for it) ends the
        session made by that refresh too. 401 when the credentials name no
        session that is or was just replaced by an active one. A
        browser form with ``next`` is sent there with a 303.
        """
        next_page = await browser_next(auth.origins, request)
        if cookie_only:
            bearer = None  # bearer headers are not accepted
        async with http_errors():
            if bearer is not None:  # the header wins, as in the dependencies
                user_id, session_id = auth.access_claims(bearer)
                # A session a concurrent refresh rotated away ends its successor too.
                ended = await auth.sessions.revoke_session(user_id, session_id)
                who: tuple[str | None, str | None] = (user_id, session_id)
            else:
                token = transport.cookie_of(request)
                if token is None:
                    raise unauthorized()
                auth.origins.check(request)
                ended = await auth.sessions.revoke(token)  # or its successor from a race
                who = (parse_token(token).user_id, None) if ended else (None, None)
            if not ended:
                raise unauthorized()
        transport.delete_cookie(response)
        await events.emit("logout", request, user_id=who[0], session_id=who[1])
        return finish(flow, next_page, response, None)

    @router.post(
        "/logout-all", response_model=Revoked, responses=FORM_RESPONSES, openapi_extra=no_body
    )
    async def logout_all(principal: CurrentPrincipal, request: Request) -> Any:
        """Revoke every other session of the user; the current one stays.

        A browser form with ``next`` is sent there with a 303.
        """
        next_page = await browser_next(auth.origins, request)
        async with http_errors():
            revoked = await auth.sessions.revoke_all(
                principal.user.id, except_session_id=principal.session.id
            )
        await events.emit(
            "logout_all", request, user_id=principal.user.id, session_id=principal.session.id
        )
        return finish(flow, next_page, Response(), Revoked(revoked=revoked))

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
        bearer session is kept, so its access token goes on working. When a
        concurrent request ended the cookie session meanwhile, the password
        is still changed, ``rotated`` is false and the cookie is cleared.
        JSON or a form; a browser form with ``next`` is sent there with a 303.
        """
        form = await browser_body(auth.origins, request, PasswordChange)
        body = form.value
        user, session = principal.user, principal.session
        async with http_errors():
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
            issued = None
            if principal.token is not None:  # only cookie sessions carry theirs
                try:
                    issued = await auth.sessions.rotate_session(principal.token)
                except InvalidTokenError:  # ended by a concurrent request meanwhile
                    transport.delete_cookie(response)
        if issued is not None:
            transport.set_cookie(response, issued.token, issued.session)
        await events.emit("password_changed", request, user_id=user.id, session_id=session.id)
        changed = PasswordChanged(revoked=revoked, rotated=issued is not None)
        return finish(flow, form.next, response, changed)

    @router.get("/me", responses=CREDENTIAL_RESPONSES)
    async def me(principal: CurrentPrincipal) -> UserInfo:
        """The caller's account."""
        return UserInfo.of(principal.user)

    add_device_routes(router, auth, flow, events)
    add_account_routes(router, auth, flow, options)
    return router
