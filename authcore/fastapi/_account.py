"""Credential recovery and email verification: ``/forgot-password``, ``/reset-password``,
``/request-verify`` and ``/verify``.

The app sends the mail: ``AuthCore(on_password_reset=..., on_verify_email=...)``
receive ``(user, token, request)`` and may be plain functions or coroutine
functions. They run after the answer has been sent (a background task), so
a slow mail server delays no one, and ``/forgot-password`` answers the same
202, as fast, whether the account exists or not: the look-up itself runs
after the answer. A failing hook is logged and changes nothing.
"""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations
# at run time, and they name local variables.
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request, Response, status

from authcore.errors import InvalidTokenError, PasswordPolicyError
from authcore.fastapi._browser import (
    CREDENTIAL_RESPONSES,
    FORM_RESPONSES,
    BrowserFlow,
    ErrorBody,
    Unprocessable,
    browser_body,
    finish,
)
from authcore.fastapi._credentials import Credentials
from authcore.fastapi._events import Events, call_hook
from authcore.fastapi._forms import body_openapi
from authcore.fastapi._http import Principal, http_errors, unprocessable
from authcore.fastapi._schemas import (
    Accepted,
    EmailToken,
    ForgotPassword,
    ResetPassword,
    UserInfo,
)
from authcore.users import User

__all__ = ["BAD_TOKEN", "NO_EMAIL", "RESET_SENT", "AccountOptions", "TokenHook", "add_routes"]

logger = logging.getLogger("authcore.fastapi")

#: ``on_password_reset`` and ``on_verify_email``: ``(user, token, request)``, sync or async.
TokenHook = Callable[[User, str, Request], Awaitable[None] | None]

#: The body of a 400 for a reset or verification token that is not accepted.
BAD_TOKEN = "The link is invalid or has expired"
#: The body of every answer to ``/forgot-password``.
RESET_SENT = "If the account exists and is active, a password reset message is on its way"
#: The body of a 202 from ``/request-verify``.
VERIFY_SENT = "A verification message is on its way"
#: The body of a 409 from ``/request-verify``.
NO_EMAIL = "The account has no email address to verify"

_BAD_TOKEN_RESPONSE: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid, used or expired token", "model": ErrorBody}
}
_POLICY_RESPONSE: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "An invalid body, or a password the policy refuses",
        "model": Unprocessable,
    }
}


@dataclass(frozen=True, slots=True)
class AccountOptions:
    """The account-security options of :class:`~authcore.fastapi.AuthCore`.

    Attributes:
        events: The audit events.
        on_password_reset: Sends a reset token (the app's mail), or ``None``.
        on_verify_email: Sends a verification token, or ``None``.
        reset_ttl: How long a reset token works.
        verify_ttl: How long a verification token works.
    """

    events: Events
    on_password_reset: TokenHook | None = None
    on_verify_email: TokenHook | None = None
    reset_ttl: timedelta = timedelta(minutes=30)
    verify_ttl: timedelta = timedelta(days=2)

    def __post_init__(self) -> None:
        for name in ("on_password_reset", "on_verify_email"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise TypeError(f"{name} must be a callable (user, token, request), or None")


def add_routes(
    router: APIRouter, auth: Credentials, flow: BrowserFlow, options: AccountOptions
) -> None:
    """Add the four account routes to *router*."""
    CurrentPrincipal = Annotated[Principal, Depends(auth.principal)]
    events = options.events

    async def send_reset(body: ForgotPassword, request: Request) -> None:
        """After the 202: find the account, make its token, call the app's hook."""
        try:
            if body.email is not None:
                user = await auth.users.get_user_by_email(body.email)
            else:
                assert body.username is not None  # the model requires one of them
                user = await auth.users.get_user_by_username(body.username)
            found = user if user is not None and user.is_active else None
            await events.emit(
                "password_reset_requested", request, user_id=None if found is None else found.id
            )
            if found is None or options.on_password_reset is None:
                return
            token = await auth.users.make_reset_token(found.id, ttl=options.reset_ttl)
            await call_hook("on_password_reset", options.on_password_reset, found, token, request)
        except Exception as exc:  # the answer is sent: log, never raise into the server
            logger.error("a password reset request failed (%s)", type(exc).__name__)

    @router.post(
        "/forgot-password",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses={**FORM_RESPONSES, **_POLICY_RESPONSE},
        openapi_extra=body_openapi(ForgotPassword),
    )
    async def forgot_password(request: Request, background: BackgroundTasks) -> Any:
        """Ask for a password reset by ``username`` or ``email``: always the same 202.

        When the account exists and is active, the app's ``on_password_reset``
        hook receives ``(user, token, request)`` after the answer was sent.
        JSON or a form; a browser form with ``next`` is sent there with a 303.
        """
        form = await browser_body(auth.origins, request, ForgotPassword)
        background.add_task(send_reset, form.value, request)
        return finish(flow, form.next, Response(), Accepted(detail=RESET_SENT))

    @router.post(
        "/reset-password",
        status_code=status.HTTP_204_NO_CONTENT,
        response_model=None,
        responses={**FORM_RESPONSES, **_BAD_TOKEN_RESPONSE, **_POLICY_RESPONSE},
        openapi_extra=body_openapi(ResetPassword),
    )
    async def reset_password(request: Request, response: Response) -> Any:
        """Set a new password with a reset token; every session of the user is revoked.

        400 for a token that is invalid, used, obsolete or expired; 422 with
        the reasons for a password the policy refuses (the token stays
        usable). JSON or a form; a browser form with ``next`` gets a 303.
        """
        form = await browser_body(auth.origins, request, ResetPassword)
        async with http_errors():
            try:
                user = await auth.users.reset_password(form.value.token, form.value.password)
            except InvalidTokenError:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=BAD_TOKEN) from None
            except (PasswordPolicyError, ValueError, TypeError) as exc:
                raise unprocessable(exc) from None
            await auth.sessions.revoke_all(user.id)
        auth.transport.delete_cookie(response)  # whatever session it named has ended
        await events.emit("password_reset", request, user_id=user.id)
        return finish(flow, form.next, response, None)

    async def send_verification(user: User, token: str, request: Request) -> None:
        assert options.on_verify_email is not None
        await call_hook("on_verify_email", options.on_verify_email, user, token, request)

    @router.post(
        "/request-verify",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=Accepted,
        responses={
            **CREDENTIAL_RESPONSES,
            409: {"description": "The account has no email address", "model": ErrorBody},
        },
    )
    async def request_verify(
        principal: CurrentPrincipal, request: Request, background: BackgroundTasks
    ) -> Accepted:
        """Send the caller a verification token for their email address.

        The app's ``on_verify_email`` hook receives ``(user, token, request)``
        after the answer was sent. 409 when the account has no email address.
        """
        user = principal.user
        if user.email is None:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=NO_EMAIL)
        if options.on_verify_email is not None:
            async with http_errors():
                try:
                    token = await auth.users.make_verify_token(user.id, ttl=options.verify_ttl)
                except ValueError:  # the address was removed meanwhile
                    raise HTTPException(status.HTTP_409_CONFLICT, detail=NO_EMAIL) from None
            background.add_task(send_verification, user, token, request)
        return Accepted(detail=VERIFY_SENT)

    @router.post(
        "/verify",
        response_model=UserInfo,
        responses={**FORM_RESPONSES, **_BAD_TOKEN_RESPONSE},
        openapi_extra=body_openapi(EmailToken),
    )
    async def verify(request: Request) -> Any:
        """Confirm an email address with a verification token: the user, now verified.

        400 for a token that is invalid, used, obsolete (the address changed)
        or expired. JSON or a form; a browser form with ``next`` gets a 303.
        """
        form = await browser_body(auth.origins, request, EmailToken)
        async with http_errors():
            try:
                user = await auth.users.verify_email(form.value.token)
            except InvalidTokenError:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, detail=BAD_TOKEN) from None
        await events.emit("email_verified", request, user_id=user.id)
        return finish(flow, form.next, Response(), UserInfo.of(user))
