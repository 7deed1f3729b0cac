"""A server-rendered web app on authcore: HTML forms and the session cookie, no JavaScript.

Pages: ``/login``, ``/register``, ``/`` (your account and a password change)
and ``/devices`` (log out one device, or every other one). The forms post
straight to authcore's routes under ``/auth``, which answer a browser with
``303 See Other`` to the form's ``next`` page (local paths only) and refuse
cross-site posts. Tokens live only in the ``HttpOnly`` cookie: no page and no
response body ever shows one.

Serve it (from this folder)::

    export AUTHCORE_SECRET_KEY="$(authcore gen-secret)"
    export AUTHCORE_DATABASE_URL="sqlite+aiosqlite:///app.db"   # the default: ./authcore.db
    export WEBAPP_COOKIE_SECURE=false   # only for plain-HTTP development on your machine
    uvicorn webapp:app

and open http://127.0.0.1:8000/. Run as a script with no arguments
(``python examples/webapp.py``), it starts itself on a free local port with a
temporary database, walks through the pages over real HTTP, and stops.

Needs ``pip install "authcore[fastapi]" uvicorn jinja2``.
"""

import asyncio
import http.cookiejar
import os
import secrets
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from authcore import AuthSession, User
from authcore.fastapi import AuthCore

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


def create_app(
    database_url: str | None = None, secret_key: str | None = None, *, cookie_secure: bool = True
) -> FastAPI:
    """The app: authcore's routes under /auth and four pages of its own."""
    auth = AuthCore(
        database_url=database_url
        or os.environ.get("AUTHCORE_DATABASE_URL", "sqlite+aiosqlite:///authcore.db"),
        secret_key=secret_key
        or os.environ.get("AUTHCORE_SECRET_KEY")
        or secrets.token_urlsafe(32),  # a random key is fine: no JWT leaves the server
        transport="cookie",  # the session lives in the HttpOnly cookie, never in a page
        login_page_url="/login",  # where page_user and a failed login send the browser
        login_after_register=True,  # a new account is logged in at once
        cookie_secure=cookie_secure and os.environ.get("WEBAPP_COOKIE_SECURE") != "false",
    )
    app = FastAPI(title="authcore web app", lifespan=auth.lifespan)
    app.include_router(auth.router)  # the API: in the OpenAPI schema at /docs
    pages = APIRouter(include_in_schema=False)  # the HTML pages: not an API
    # page_user: the logged-in user, or a 303 to /login?next=<this page>.
    PageUser = Annotated[User, Depends(auth.page_user)]

    def render(request: Request, page: str, **context: Any) -> HTMLResponse:
        context.setdefault("user", None)
        return templates.TemplateResponse(request, page, {"prefix": auth.prefix, **context})

    @pages.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request, next: str = "/", error: str = "") -> HTMLResponse:
        return render(request, "login.html", next=next, error=bool(error))

    @pages.get("/register", response_class=HTMLResponse)
    async def register_page(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "register.html", next=next)

    @pages.get("/", response_class=HTMLResponse)
    async def account_page(request: Request, user: PageUser) -> HTMLResponse:
        return render(request, "account.html", user=user, changed="changed" in request.query_params)

    @pages.get("/devices", response_class=HTMLResponse)
    async def devices_page(
        request: Request,
        user: PageUser,  # first: an anonymous visitor is sent to /login before anything else
        session: Annotated[AuthSession, Depends(auth.current_session)],
    ) -> HTMLResponse:
        devices = await auth.sessions.list_sessions(user.id)
        return render(request, "devices.html", user=user, devices=devices, current_id=session.id)

    app.include_router(pages)

    @app.exception_handler(HTTPException)
    async def html_errors(request: Request, exc: HTTPException) -> Response:
        """Browsers get pages for errors (a taken username, a wrong password); APIs get JSON."""
        if exc.status_code < 400 or "text/html" not in request.headers.get("accept", ""):
            return await http_exception_handler(request, exc)
        if exc.status_code == 401:  # the session ended meanwhile: log in again
            return RedirectResponse("/login", status_code=303)
        back = "/register" if request.url.path == f"{auth.prefix}/register" else "/"
        page = render(request, "error.html", message=exc.detail, back=back)
        page.status_code = exc.status_code
        return page

    return app


app = create_app()


# -- `python webapp.py`: the pages over real HTTP, as a browser would use them ------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # show each 303 instead of following it


async def walk_through(database_url: str) -> None:
    import uvicorn

    demo = create_app(database_url, secrets.token_urlsafe(32), cookie_secure=False)
    server = uvicorn.Server(
        uvicorn.Config(demo, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect
    )

    def fetch(method: str, path: str, form: dict[str, str] | None) -> tuple[int, str, str]:
        data = None if form is None else urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("Accept", "text/html")
        try:
            with browser.open(request, timeout=30) as response:
                return response.status, "", response.read().decode()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.headers.get("location", ""), error.read().decode()

    async def visit(method: str, path: str, form: dict[str, str] | None = None) -> str:
        status, location, page = await asyncio.to_thread(fetch, method, path, form)
        print(f"  {method:4} {path:<22} -> {status} {location}")
        return page

    try:
        print(f"serving on {base}")
        account = {"username": "alice", "password": "correct horse battery staple"}
        await visit("GET", "/")  # anonymous: sent to the login page
        await visit("POST", "/auth/register", {**account, "next": "/"})
        page = await visit("GET", "/")
        assert "Hello, alice" in page
        assert "token_" not in page  # the session lives in the HttpOnly cookie only
        await visit("POST", "/auth/login", {**account, "password": "wrong", "next": "/devices"})
        print("a `next` pointing elsewhere is ignored (no open redirect):")
        await visit("POST", "/auth/login", {**account, "next": "https://evil.example/"})
        await visit("GET", "/devices")
        await visit("POST", "/auth/logout", {"next": "/login"})
        await visit("GET", "/devices")
    finally:
        server.should_exit = True
        await serving


def main() -> None:
    url = os.environ.get("AUTHCORE_DATABASE_URL")
    if url:
        asyncio.run(walk_through(url))
        return
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(walk_through(f"sqlite+aiosqlite:///{Path(folder) / 'webapp.db'}"))


if __name__ == "__main__":
    main()
