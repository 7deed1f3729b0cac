"""What the routes need for browser forms: the options, bodies, the 303s, the documented errors."""

from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from fastapi import Request, Response
from pydantic import BaseModel, ConfigDict

from authcore.fastapi._csrf import OriginCheck
from authcore.fastapi._forms import (
    Body,
    is_form,
    local_path,
    read_body,
    see_other,
    with_query,
)
from authcore.fastapi._http import UNAUTHORIZED_RESPONSES
from authcore.fastapi._schemas import UserInfo

__all__ = [
    "CREDENTIAL_RESPONSES",
    "FORM_RESPONSES",
    "NOT_YOURS",
    "THROTTLED_RESPONSES",
    "BrowserFlow",
    "BrowserForm",
    "ErrorBody",
    "LoginBody",
    "Refusal",
    "RegisteredSession",
    "Unprocessable",
    "browser_body",
    "browser_next",
    "failed_login",
    "finish",
]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class BrowserFlow:
    """How the routes answer browser form posts (see ``AuthCore``'s arguments of these names).

    Raises:
        ValueError: *redirect_default* is not a local path, or
            *login_page_url* is neither a local path nor an http(s) URL.
    """

    login_page_url: str | None = None
    redirect_default: str = "/"
    login_after_register: bool = False

    def __post_init__(self) -> None:
        if local_path(self.redirect_default) is None:
            raise ValueError("redirect_default must be a local path such as '/'")
        url = self.login_page_url
        if url is not None and local_path(url) is None:
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in {"http", "https"} or not parts.netloc:
                raise ValueError("login_page_url must be a local path or an http(s) URL")


class LoginBody(BaseModel):
    """``POST /login``: JSON ``{username, password}`` or an OAuth2 password form.

    The OAuth2 form's other fields (``grant_type``, ``scope``, ``client_id``,
    ``client_secret``) are accepted and ignored, so OAuth2 clients and the
    "Authorize" button of the interactive docs keep working.
    """

    model_config = ConfigDict(extra="ignore")

    username: str
    password: str


class BrowserForm(BaseModel):
    """The (empty) body of a route that needs none; a browser form may add ``next``."""

    model_config = ConfigDict(extra="ignore")


class RegisteredSession(UserInfo):
    """``/register`` with ``login_after_register``: the new user and their first tokens."""

    access_token: str
    token_type: str = "bearer"
    expires_in: int
    refresh_token: str


class ErrorBody(BaseModel):
    """The body of an error answer: what went wrong, in words."""

    detail: str


class Refusal(BaseModel):
    """A value the store refused: the password policy's reason codes and the message."""

    message: str
    reasons: list[str]


class Unprocessable(BaseModel):
    """A 422: FastAPI's list of validation errors, or a refusal (the password policy's
    ``reasons``: ``too_short``, ``too_long``, ``similar_to_username``, ``too_common``)."""

    detail: list[dict[str, Any]] | Refusal


#: What the routes can answer besides success, for the OpenAPI schema.
CREDENTIAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {**answer, "model": ErrorBody} for code, answer in UNAUTHORIZED_RESPONSES.items()
}
CREDENTIAL_RESPONSES[422] = {
    "description": "An invalid body, or a password the policy refuses (its message)",
    "model": Unprocessable,
}
#: ... and for the routes that take browser forms.
FORM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **CREDENTIAL_RESPONSES,
    303: {"description": "A browser form with `next`: on to that page (local paths only)"},
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
#: ``/login``'s extra answers: throttled, or the hashing queue full.
THROTTLED_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "Too many failed logins for this username or address",
        "model": ErrorBody,
        "headers": _RETRY_AFTER,
    },
    503: {
        "description": "The database is unavailable, or too many logins wait for hashing",
        "model": ErrorBody,
        "headers": _RETRY_AFTER,
    },
}
NOT_YOURS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not one of your sessions", "model": ErrorBody}
}


async def browser_body(origins: OriginCheck, request: Request, model: type[M]) -> Body[M]:
    """Read the body as JSON or a form; every form post passes the CSRF check first."""
    if is_form(request):
        origins.check(request)  # a cross-site form changes nothing, logged in or not
    return await read_body(request, model)


async def browser_next(origins: OriginCheck, request: Request) -> str | None:
    """For a route without a body: the ``next`` of a browser form post, else ``None``."""
    if not is_form(request):
        return None
    return (await browser_body(origins, request, BrowserForm)).next


def finish(
    flow: BrowserFlow, next_page: str | None, response: Response, payload: T
) -> T | Response:
    """*payload* for a JSON client; for a browser, a 303 to its ``next`` page.

    The cookies the route set on *response* travel with the redirect.
    """
    if next_page is None:
        return payload
    redirect = see_other(local_path(next_page) or flow.redirect_default)
    for name, value in response.raw_headers:
        if name == b"set-cookie":
            redirect.raw_headers.append((name, value))
    return redirect


def failed_login(flow: BrowserFlow, next_page: str | None) -> Response | None:
    """The 303 back to the login page for a failed browser login, or ``None`` (a 401)."""
    if next_page is None or flow.login_page_url is None:
        return None
    return see_other(with_query(flow.login_page_url, error="invalid", next=local_path(next_page)))
