"""The device routes: ``GET /sessions``, ``DELETE /sessions/{id}`` and its form twin."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations
# at run time, and they name local variables.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status

from authcore.fastapi._browser import (
    CREDENTIAL_RESPONSES,
    FORM_RESPONSES,
    NOT_YOURS,
    BrowserFlow,
    BrowserForm,
    browser_next,
    finish,
)
from authcore.fastapi._credentials import Credentials
from authcore.fastapi._events import Events
from authcore.fastapi._forms import body_openapi
from authcore.fastapi._http import Principal, http_errors
from authcore.fastapi._schemas import SessionInfo

__all__ = ["DEFAULT_LISTED", "MAX_LISTED", "add_routes"]

#: ``GET /sessions``: how many sessions by default, and at most.
DEFAULT_LISTED = 50
MAX_LISTED = 100


def add_routes(router: APIRouter, auth: Credentials, flow: BrowserFlow, events: Events) -> None:
    """Add the routes that list and end the caller's sessions to *router*."""
    CurrentPrincipal = Annotated[Principal, Depends(auth.principal)]
    transport = auth.transport
    no_body = body_openapi(BrowserForm, required=False)

    @router.get("/sessions", responses=CREDENTIAL_RESPONSES)
    async def list_sessions(
        principal: CurrentPrincipal,
        limit: Annotated[
            int,
            Query(ge=1, le=MAX_LISTED, description="How many sessions to return, newest first."),
        ] = DEFAULT_LISTED,
    ) -> list[SessionInfo]:
        """The caller's active sessions (devices), newest first, at most *limit*. Never a token."""
        async with http_errors():
            sessions = await auth.sessions.list_sessions(principal.user.id)
        here = principal.session.id
        return [SessionInfo.of(s, current=s.id == here) for s in sessions[:limit]]

    @router.delete(
        "/sessions/{session_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses={**CREDENTIAL_RESPONSES, **NOT_YOURS},
    )
    async def revoke_session(
        session_id: str, principal: CurrentPrincipal, request: Request, response: Response
    ) -> None:
        """Revoke one of the caller's sessions by its id. 404 when it is not theirs."""
        await revoke_one(session_id, principal, request, response)

    @router.post(
        "/sessions/{session_id}/revoke",
        status_code=status.HTTP_204_NO_CONTENT,
        response_model=None,
        responses={**FORM_RESPONSES, **NOT_YOURS},
        openapi_extra=no_body,
    )
    async def revoke_session_form(
        session_id: str, principal: CurrentPrincipal, request: Request, response: Response
    ) -> Any:
        """``DELETE /sessions/{id}`` for HTML forms, which cannot send a DELETE.

        A browser form with ``next`` is sent there with a 303.
        """
        next_page = await browser_next(auth.origins, request)
        await revoke_one(session_id, principal, request, response)
        return finish(flow, next_page, response, None)

    async def revoke_one(
        session_id: str, principal: Principal, request: Request, response: Response
    ) -> None:
        async with http_errors():
            revoked = await auth.sessions.revoke_session(principal.user.id, session_id)
        if not revoked:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such session")
        await events.emit(
            "session_revoked", request, user_id=principal.user.id, session_id=session_id
        )
        if session_id == principal.session.id and principal.via == "cookie":
            transport.delete_cookie(response)
