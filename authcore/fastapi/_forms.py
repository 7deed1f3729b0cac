"""Browser forms: request bodies that are JSON or a form, and redirects that stay local.

A route reads its body with :func:`read_body`, which accepts
``application/json`` and ``application/x-www-form-urlencoded`` (or
``multipart/form-data``) alike and validates it with the route's pydantic
model, so both kinds of client get the same 422 for a bad body. A form post
that names a ``next`` page (a form field, or a query parameter) is a
*browser* post: it is answered with ``303 See Other`` instead of JSON, but
only ever to a local path (:func:`local_path`); every other target falls
back to the app's default page. Nothing here trusts a URL the client sent.
"""

import json
import unicodedata
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import unquote, urlencode, urlsplit

from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError

__all__ = [
    "FORM_TYPES",
    "Body",
    "body_openapi",
    "is_form",
    "local_path",
    "login_required",
    "read_body",
    "see_other",
    "with_query",
]

M = TypeVar("M", bound=BaseModel)

#: The content types of an HTML form post.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The longest ``next`` accepted; a real page path is far shorter.
MAX_NEXT_LENGTH = 2048
_NEXT_DESCRIPTION = (
    "Browser forms: where to go after success (a local path such as /account). "
    "With it the answer is 303 See Other; a non-local value goes to the app's default page."
)


@dataclass(frozen=True, slots=True)
class Body(Generic[M]):
    """A validated request body and, for a browser form post, where to send the browser.

    Attributes:
        value: The body, validated by the route's model.
        form: Whether it came as a form post (CSRF-checked like a login).
        next: For a browser post (a form with a ``next`` field or query
            parameter): the raw ``next`` value, possibly empty, to be checked
            with :func:`local_path` before use; ``None`` for a JSON client or
            a form without ``next``, which get today's JSON answers.
    """

    value: M
    form: bool
    next: str | None


def is_form(request: Request) -> bool:
    """Whether *request* carries an HTML form's body."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in FORM_TYPES


async def read_body(request: Request, model: type[M]) -> Body[M]:
    """Read a JSON or form body into *model*; a bad body is FastAPI's usual 422.

    Raises:
        RequestValidationError: Not JSON or a form, malformed, or refused by
            the model (FastAPI's handler answers 422 with the error list).
    """
    form = is_form(request)
    raw: Any
    if form:
        parsed = await request.form()
        raw = {key: value for key, value in parsed.items() if isinstance(value, str)}
    else:
        data = await request.body()
        try:
            raw = json.loads(data) if data else {}
        except (ValueError, UnicodeDecodeError):
            raise _invalid("json_invalid", "The body is not valid JSON") from None
        if not isinstance(raw, dict):
            raise _invalid("model_attributes_type", "The body must be a JSON object")
    next_value = raw.pop("next", None) if form else None
    if form and next_value is None:
        next_value = request.query_params.get("next")
    try:
        value = model.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    return Body(value=value, form=form, next=next_value if isinstance(next_value, str) else None)


def _invalid(kind: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": message, "input": None}])


def local_path(value: object) -> str | None:
    """*value* when it is a path on this site, else ``None``: the open-redirect check.

    Accepted: a string starting with exactly one ``/``, with no scheme, no
    host, no backslash, no whitespace or control character, and no ``.`` or
    ``..`` segment, checked both as sent and with its percent-encoding
    undone (so ``/%2F%2Fevil.com`` and ``/%5Cevil`` are refused like
    ``//evil.com`` and ``/\\evil``).

    Example:
        >>> local_path("/account?tab=devices")
        '/account?tab=devices'
        >>> local_path("//evil.example") is None
        True
    """
    if not isinstance(value, str) or not value or len(value) > MAX_NEXT_LENGTH:
        return None
    decoded = value
    for _ in range(3):  # undo double and triple encoding as well
        if not _looks_local(decoded):
            return None
        try:
            once = unquote(decoded, errors="strict") if "%" in decoded else decoded
        except UnicodeDecodeError:
            return None
        if once == decoded:
            return value
        decoded = once
    return None  # still changing after three rounds of decoding: refuse


def _looks_local(value: str) -> bool:
    if not value.startswith("/") or value.startswith(("//", "/\\")) or "\\" in value:
        return False
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in value):
        return False
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return False
    segments = parts.path.split("/")
    return "//" not in parts.path and not any(s in {".", ".."} for s in segments)


def with_query(url: str, **params: str | None) -> str:
    """*url* with *params* (those not ``None``) added to its query string."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def login_required(login_page_url: str, request: Request) -> HTTPException:
    """The ``303 See Other`` to *login_page_url* with ``?next=<path and query>``."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = with_query(login_page_url, next=local_path(here))
    return HTTPException(
        status.HTTP_303_SEE_OTHER, detail="Login required", headers={"Location": target}
    )


def see_other(url: str) -> RedirectResponse:
    """A ``303 See Other`` to *url*: the browser follows it with a GET."""
    return RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)


def body_openapi(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """The ``openapi_extra`` documenting *model* as a JSON body or a form with ``next``."""
    schema = model.model_json_schema()
    form_schema = {
        **schema,
        "properties": {
            **schema.get("properties", {}),
            "next": {"type": "string", "description": _NEXT_DESCRIPTION},
        },
    }
    return {
        "requestBody": {
            "required": required,
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": form_schema},
            },
        }
    }
