"""Checking a login's password: throttling, load shedding, and clients that went away.

:class:`LoginGuard` runs in ``POST /login`` before a session is made:

0. when the hashing queue is already full, a 503 with ``Retry-After`` at
   once, before any database work;
1. the :class:`~authcore.LoginThrottle` (a database read, no hashing):
   too many recent failures for the username or the client's address is a
   429 with ``Retry-After``, the same for known and unknown usernames;
2. the password check, which is abandoned if the client disconnects while
   it waits for a hashing thread (the queued hash then never runs), and
   which answers 503 with ``Retry-After`` at once when the hashing queue is
   full (:class:`~authcore.errors.HasherBusyError`);
3. the failure or success is recorded, and reported as an audit event.

The check also hands out a :class:`~authcore.users._receipt.LoginReceipt`:
once its session exists, the login keeps it only if the verified password is
still the user's (a password change that raced the login leaves the old
password no session); otherwise :meth:`LoginGuard.refuse` answers exactly as
for a wrong password.
"""

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import HTTPException, Request, Response, status

from authcore.errors import HasherBusyError, LoginThrottledError, PasswordPolicyError
from authcore.fastapi._browser import BrowserFlow, LoginBody, failed_login
from authcore.fastapi._events import Events, client_of
from authcore.fastapi._forms import Body, local_path, see_other, with_query
from authcore.fastapi._http import BAD_LOGIN, busy, http_errors, retry_seconds, unauthorized
from authcore.fastapi._stores import UserBackend
from authcore.passwords import PasswordHasher
from authcore.throttle import MAX_IP_LENGTH, LoginThrottle
from authcore.users import User
from authcore.users._receipt import LoginReceipt, watch_logins

__all__ = ["THROTTLED", "LoginGuard", "unless_disconnected"]

T = TypeVar("T")

#: The body of a 429 from ``/login``.
THROTTLED = "Too many failed logins; try again later"


async def _disconnected(request: Request) -> None:
    """Return once the client has gone away (the body must have been read)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[T]) -> tuple[bool, T | None]:
    """Run *work* unless or until the client disconnects; ``(finished, result)``.

    When the client goes away first, *work* is cancelled: a password hash
    still waiting for a thread never runs.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        task.add_done_callback(_forget)  # it may still finish (an uncancellable write)
        return False, None
    return True, task.result()


def _address(request: Request) -> str | None:
    """The client's address as the throttle counts it."""
    ip, _ = client_of(request)
    if ip is not None and len(ip) > MAX_IP_LENGTH:
        return None  # no address a socket reports; counted by username only
    return ip


def _forget(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()  # retrieved: no "exception was never retrieved" warning


class LoginGuard:
    """Throttles, sheds and records password checks for ``POST /login``.

    Args:
        users: The user store.
        hasher: The hasher whose queue is checked first, or ``None``.
        throttle: The login throttle, or ``None`` for none.
        events: Where the ``login_failed`` and ``login_throttled`` events go.
        flow: How browser form posts are answered.
    """

    def __init__(
        self,
        users: UserBackend,
        hasher: PasswordHasher | None,
        throttle: LoginThrottle | None,
        events: Events,
        flow: BrowserFlow,
    ) -> None:
        self.users = users
        self.hasher = hasher
        self.throttle = throttle
        self.events = events
        self.flow = flow

    async def check(
        self, request: Request, form: Body[LoginBody]
    ) -> tuple[User, LoginReceipt] | Response:
        """The user whose password matched with its receipt, or the answer to send instead.

        Raises:
            HTTPException: 401 (wrong credentials, for a JSON client), 429
                (throttled), 503 (hashing queue full, or the database failed).
        """
        username, password = form.value.username, form.value.password
        ip = _address(request)
        if self.hasher is not None and self.hasher.busy():
            raise busy(HasherBusyError())  # shed before any database work
        async with http_errors():
            if self.throttle is not None:
                try:
                    await self.throttle.check(username, ip)
                except LoginThrottledError as exc:
                    await self.events.emit("login_throttled", request)
                    return self._throttled(exc, form.next)
            if await request.is_disconnected():
                raise busy(HasherBusyError())  # nobody is listening; nothing is hashed
            try:
                with watch_logins() as receipt:  # the task made inside carries the receipt
                    finished, user = await unless_disconnected(
                        request, self.users.authenticate(username, password)
                    )
            except PasswordPolicyError:
                finished, user = True, None  # e.g. an over-long password: a wrong one
            if not finished:
                raise busy(HasherBusyError())  # the client left: the answer goes nowhere
            if user is None:
                return await self._failed(request, form, ip)
            if self.throttle is not None:
                await self.throttle.record_success(username, ip)
        return user, receipt

    async def refuse(self, request: Request, form: Body[LoginBody]) -> Response:
        """Answer a login whose password changed (or whose user was deactivated)
        after it was verified: as a wrong password is answered.

        The caller has revoked the session it made. Recorded as a failure.

        Raises:
            HTTPException: 401 for a JSON client; 503 when the database failed.
        """
        async with http_errors():
            return await self._failed(request, form, _address(request))

    async def _failed(self, request: Request, form: Body[LoginBody], ip: str | None) -> Response:
        if self.throttle is not None:
            await self.throttle.record_failure(form.value.username, ip)
        await self.events.emit("login_failed", request)
        back = failed_login(self.flow, form.next)
        if back is not None:
            return back
        raise unauthorized(BAD_LOGIN)

    def _throttled(self, exc: LoginThrottledError, next_page: str | None) -> Response:
        url = self.flow.login_page_url
        if next_page is not None and url is not None:
            return see_other(with_query(url, error="throttled", next=local_path(next_page)))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=THROTTLED,
            headers={"Retry-After": retry_seconds(exc.retry_after.total_seconds())},
        )
