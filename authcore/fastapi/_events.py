"""Audit events: ``AuthEvent``, the ``authcore.audit`` log, and calling the app's hooks.

Every route that changes who is logged in, or an account's credentials,
reports it through :class:`Events`: one line on the ``authcore.audit``
logger (INFO; ``token_reuse`` at WARNING), then the app's ``on_event``
callable, which may be a plain function or a coroutine function. A failing
callable is logged and never changes the answer. No event carries a token,
a password or a hash: there is no field to put one in.
"""

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from fastapi import Request

from authcore._time import Clock, read_clock, system_clock

__all__ = [
    "EVENT_KINDS",
    "AuthEvent",
    "EventHook",
    "EventKind",
    "Events",
    "call_hook",
    "client_of",
]

EventKind = Literal[
    "registered",
    "login",
    "login_failed",
    "login_throttled",
    "logout",
    "logout_all",
    "session_revoked",
    "token_reuse",
    "password_changed",
    "password_reset_requested",
    "password_reset",
    "email_verified",
]
#: Every kind of :class:`AuthEvent`, in the order the contract lists them.
EVENT_KINDS: tuple[EventKind, ...] = get_args(EventKind)

audit_log = logging.getLogger("authcore.audit")
logger = logging.getLogger("authcore.fastapi")


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """Something that happened to an account or a session, for an audit trail.

    Attributes:
        kind: What happened: ``registered``, ``login``, ``login_failed``,
            ``login_throttled``, ``logout``, ``logout_all``, ``session_revoked``,
            ``token_reuse``, ``password_changed``, ``password_reset_requested``,
            ``password_reset`` or ``email_verified``.
        at: When (aware UTC, from the app's clock).
        user_id: The account concerned, when known (``None`` for a failed or
            throttled login, whose username may name no account).
        session_id: The session concerned (its public id, never its token),
            when there is one.
        ip: The client's address, as the server sees it.
        user_agent: The client's ``User-Agent`` header.
    """

    kind: EventKind
    at: datetime
    user_id: str | None
    session_id: str | None
    ip: str | None
    user_agent: str | None


#: ``AuthCore(on_event=...)``: a function or a coroutine function taking an AuthEvent.
EventHook = Callable[[AuthEvent], Awaitable[None] | None]


def client_of(request: Request) -> tuple[str | None, str | None]:
    """The client's address and user agent, as the session records them.

    The address is what the server says the peer is (behind a proxy,
    uvicorn's ``--proxy-headers`` take it from ``X-Forwarded-For`` when the
    proxy is trusted, so a client may send anything there); the store keeps
    it only when it parses as an IP address, and cuts the user agent.
    """
    host = request.client.host if request.client is not None else None
    return host, request.headers.get("user-agent")


async def call_hook(name: str, hook: Callable[..., Any], *args: Any) -> None:
    """Call an app's *hook* (sync or async); an exception is logged, never raised.

    The log line names the hook and the exception's type, not its message or
    the arguments (a token may be among them).
    """
    try:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:  # the app's code: whatever it raises must not fail the request
        logger.error("the %s hook failed (%s); the request goes on", name, type(exc).__name__)


class Events:
    """Reports :class:`AuthEvent` values to the audit log and to *on_event*.

    Args:
        on_event: The app's callable, sync or async, or ``None``.
        clock: The app's clock (aware UTC).
    """

    def __init__(self, on_event: EventHook | None = None, clock: Clock | None = None) -> None:
        if on_event is not None and not callable(on_event):
            raise TypeError("on_event must be a callable taking an AuthEvent, or None")
        self.on_event = on_event
        self._clock: Clock = clock or system_clock

    async def emit(
        self,
        kind: EventKind,
        request: Request,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> AuthEvent:
        """Log the event and hand it to *on_event*; never raises for the callable."""
        ip, user_agent = client_of(request)
        event = AuthEvent(
            kind=kind,
            at=read_clock(self._clock),
            user_id=user_id,
            session_id=session_id,
            ip=ip,
            user_agent=user_agent,
        )
        level = logging.WARNING if kind == "token_reuse" else logging.INFO
        audit_log.log(
            level,
            "%s user=%s session=%s ip=%s user_agent=%r",
            kind,
            user_id or "-",
            session_id or "-",
            ip or "-",
            (user_agent or "")[:200],
            extra={"auth_event": event},
        )
        if self.on_event is not None:
            await call_hook("on_event", self.on_event, event)
        return event
