"""A real Chromium (Playwright) against examples/webapp.py under uvicorn on 127.0.0.1.

The user's flow (register, log in by the form, two devices, log one out, the
cookie as the browser holds it, password change, log out) and an attacker: a
page on another 127.0.0.1 port (same site, other origin, so ``SameSite=Lax``
does not help and the CSRF check must) that auto-submits forms to the app,
and ``next`` values that try to send the browser away after login.

Needs Debian's Chromium (``apt-get install chromium``; or the browser named
by ``AUTHCORE_CHROMIUM``, or Google Chrome) and ``pip install playwright``
(never ``playwright install``). Skipped when either is missing, except under
CI on Linux (the ``CI`` environment variable), where that is a failure.
Set ``AUTHCORE_SCREENSHOTS=docs/img`` to refresh the guide's screenshots.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .served_app import ServedApp

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

#: Debian's Chromium; or Google Chrome (preinstalled on GitHub's Ubuntu runners).
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/google-chrome")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "a-browser-test-secret-key-of-sufficient-length"
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a brand new passphrase for alice"
MALLORY = {"username": "mallory", "password": "mallory's own passphrase"}
COOKIE = "authcore_session"
TIMEOUT_MS = 30_000  # generous: a "does not hang" bound, not a timing assertion

pytestmark = pytest.mark.slow


class Steps:
    """Named steps with their durations, printed at the end (``pytest -s`` shows them)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.timings: list[tuple[str, float]] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.timings.append((name, time.perf_counter() - started))

    def report(self) -> None:
        print(f"\n{self.title}")
        for name, seconds in self.timings:
            print(f"  {seconds * 1000:7.0f} ms  {name}")
        print(f"  {sum(s for _, s in self.timings) * 1000:7.0f} ms  total")


# -- the browser, the app, the attacker ------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install playwright)"
    named = os.environ.get("AUTHCORE_CHROMIUM")
    found = [p for p in ([named] if named else CANDIDATES) if Path(p).exists()]
    if reason is None and not found:
        reason = f"no Chromium at {named or ' or '.join(CANDIDATES)} (apt-get install chromium)"
    if reason is not None:
        if os.environ.get("CI") and sys.platform == "linux":
            pytest.fail(f"{reason}: the browser test is never skipped in CI")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=found[0], args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class WebApp(ServedApp):
    """examples/webapp.py under uvicorn; ``Secure`` cookies unless *secure* is false."""

    def __init__(self, folder: Path, *, secure: bool) -> None:
        env = {"AUTHCORE_SECRET_KEY": SECRET}
        if not secure:
            env["WEBAPP_COOKIE_SECURE"] = "false"
        super().__init__("webapp", folder, env)

    def post_json(self, path: str, body: dict[str, str]) -> int:
        """An API call with no browser headers (as a script would make it)."""
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            with error:
                return error.code


def assert_clean_log(log: str) -> None:
    for secret in (SECRET, PASSWORD, NEW_PASSWORD, "token_"):
        assert secret not in log
    assert "Traceback" not in log, log


@pytest.fixture
def webapp(tmp_path: Path) -> Iterator[WebApp]:
    app = WebApp(tmp_path, secure=True)
    try:
        yield app
    finally:
        assert_clean_log(app.stop())


@pytest.fixture(scope="module")
def alices_webapp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebApp]:
    """One server with alice registered, shared by tests that only log her in.

    Each of those tests uses a new browser context (no cookies) and its own attacker site.
    """
    app = WebApp(tmp_path_factory.mktemp("webapp"), secure=True)
    try:
        assert app.post_json("/auth/register", {"username": "alice", "password": PASSWORD}) == 201
        yield app
    finally:
        assert_clean_log(app.stop())


class Attacker:
    """Another origin on 127.0.0.1 serving pages; it records every path it was asked for."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.requested: list[str] = []
        attacker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                attacker.requested.append(self.path)
                page = attacker.pages.get(self.path, "<p>phished</p>").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def auto_submit(self, path: str, action: str, fields: dict[str, str]) -> str:
        """Serve at *path* a page that posts a form to *action* as soon as it loads."""
        inputs = "".join(
            f'<input type="hidden" name="{name}" value="{value}">' for name, value in fields.items()
        )
        self.pages[path] = (
            '<body onload="document.forms[0].submit()">'
            f'<form method="post" action="{action}">{inputs}</form></body>'
        )
        return self.base + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    site = Attacker()
    try:
        yield site
    finally:
        site.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: ``AUTHCORE_SCREENSHOTS`` (e.g. docs/img) or a temporary folder."""
    folder = Path(os.environ.get("AUTHCORE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_device(browser: Browser, name: str) -> BrowserContext:
    context = browser.new_context(user_agent=f"{name} (Playwright Chromium)")
    context.set_default_timeout(TIMEOUT_MS)
    return context


def log_in(page: Page, base: str, password: str = PASSWORD, *, start: str = "/") -> None:
    """Open *start*, get sent to the login page, and log in with the form."""
    page.goto(base + start)
    assert page.url.startswith(base + "/login?next=")
    page.fill("#username", "alice")
    page.fill("#password", password)
    page.click("button:text('Log in')")


def path_of(page: Page, base: str) -> str:
    assert page.url.startswith(base + "/"), page.url
    return page.url[len(base) :]


# -- the user's flow ---------------------------------------------------------------


def test_register_login_devices_password_logout(
    browser: Browser, webapp: WebApp, screenshots: Path
) -> None:
    base, steps = webapp.base, Steps("browser flow (Chromium, uvicorn, SQLite file)")
    laptop, phone = new_device(browser, "Laptop"), new_device(browser, "Phone")
    page = laptop.new_page()

    with steps("anonymous / is sent to the login page"):
        page.goto(base + "/")
        assert path_of(page, base) == "/login?next=%2F"
        page.screenshot(path=str(screenshots / "webapp-login.png"))
    with steps("register by the form: logged in at once"):
        page.click("text=Register")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("button:text('Register')")
        assert path_of(page, base) == "/"
        assert page.inner_text("h1") == "Hello, alice"
    with steps("the cookie as Chromium holds it"):
        (cookie,) = laptop.cookies(base)
        assert cookie["name"] == COOKIE
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["path"] == "/"
        assert cookie["secure"] is True  # the example's default, as configured
        assert cookie["expires"] > time.time() + 13 * 86400  # Max-Age: the session's 14 days
        assert "token_" not in page.content()  # no token in any page
    with steps("log out, then a wrong password: back to the form with an error"):
        page.click("button:text('Log out')")
        assert path_of(page, base) == "/login"
        assert laptop.cookies(base) == []
        log_in(page, base, "not the password", start="/devices")
        assert path_of(page, base) == "/login?error=invalid&next=%2Fdevices"
        assert "Incorrect username or password" in page.inner_text("[role=alert]")
    with steps("log in by the form: on to the page asked for"):
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("button:text('Log in')")
        assert path_of(page, base) == "/devices"
    with steps("a second device logs in"):
        phone_page = phone.new_page()
        log_in(phone_page, base, start="/devices")
        assert path_of(phone_page, base) == "/devices"
    with steps("the first device sees both and logs the second out"):
        page.reload()
        rows = page.locator("tr", has_text="Playwright Chromium")
        assert rows.count() == 2
        assert "this device" in page.locator("tr", has_text="Laptop").inner_text()
        page.screenshot(path=str(screenshots / "webapp-devices.png"))
        page.locator("tr", has_text="Phone").locator("button").click()
        assert path_of(page, base) == "/devices"
        assert rows.count() == 1
        phone_page.reload()
        assert path_of(phone_page, base) == "/login?next=%2Fdevices"
    with steps("password change by the form"):
        log_in(phone_page, base, start="/")  # the phone is back
        page.goto(base + "/")
        page.fill("#current_password", PASSWORD)
        page.fill("#new_password", NEW_PASSWORD)
        page.click("button:text('Change password')")
        assert path_of(page, base) == "/?changed=1"
        assert "Password changed" in page.inner_text("[role=status]")
        phone_page.reload()  # the change logged the phone out
        assert path_of(phone_page, base) == "/login?next=%2F"
    with steps("log out everywhere else"):
        log_in(phone_page, base, NEW_PASSWORD, start="/")
        assert path_of(phone_page, base) == "/"
        page.goto(base + "/devices")
        page.click("button:text('Log out everywhere else')")
        assert path_of(page, base) == "/devices"
        phone_page.reload()
        assert path_of(phone_page, base) == "/login?next=%2F"
    with steps("log out"):
        page.click("button:text('Log out')")
        assert path_of(page, base) == "/login"
        page.goto(base + "/devices")
        assert path_of(page, base) == "/login?next=%2Fdevices"
    laptop.close()
    phone.close()
    steps.report()


# -- the attacker ------------------------------------------------------------------


def test_cross_site_forms_are_refused_and_change_nothing(
    browser: Browser, webapp: WebApp, attacker: Attacker
) -> None:
    base, steps = webapp.base, Steps("cross-site forms from another 127.0.0.1 port")
    assert webapp.post_json("/auth/register", {"username": "alice", "password": PASSWORD}) == 201
    assert webapp.post_json("/auth/register", MALLORY) == 201
    victim, other = new_device(browser, "Victim"), new_device(browser, "Other")
    page, other_page = victim.new_page(), other.new_page()
    log_in(page, base, start="/devices")
    log_in(other_page, base, start="/devices")
    page.reload()
    devices = page.locator("tr", has_text="Playwright Chromium")
    assert devices.count() == 2
    revoke_action = page.locator("tr", has_text="Other").locator("form").get_attribute("action")
    assert revoke_action is not None

    attacks = {
        "login": ("/auth/login", {**MALLORY, "next": "/"}),  # login CSRF: you become mallory
        "logout": ("/auth/logout", {"next": "/"}),
        "logout-all": ("/auth/logout-all", {"next": "/"}),
        "revoke": (revoke_action, {"next": "/"}),
        "password": (
            "/auth/password",
            {"current_password": PASSWORD, "new_password": "chosen by mallory!", "next": "/"},
        ),
    }
    for name, (action, fields) in attacks.items():
        with steps(f"attacker auto-submits {action.split('/')[-1]}: 403"):
            url = attacker.auto_submit(f"/{name}", base + action, fields)
            with page.expect_response(lambda r, a=action: r.url == base + a) as answer:
                page.goto(url, wait_until="commit")
            page.wait_for_url(lambda u: u.startswith(base))  # the post's answer (or redirect)
            assert answer.value.status == 403, name
            assert answer.value.request.headers.get("origin") == attacker.base

    with steps("nothing changed"):
        page.goto(base + "/devices")
        assert path_of(page, base) == "/devices"  # still logged in, as alice
        assert page.inner_text("nav strong") == "alice"
        assert devices.count() == 2
        other_page.reload()
        assert path_of(other_page, base) == "/devices"
        assert webapp.post_json("/auth/login", {"username": "alice", "password": PASSWORD}) == 200
        assert webapp.post_json("/auth/login", MALLORY) == 200
    victim.close()
    other.close()
    steps.report()


@pytest.mark.parametrize(
    "target",
    [
        "{attacker}/phish",
        "//{host}/phish",
        "/\\{host}/phish",
        "/%2F%2F{host}/phish",
        "/%5C{host}/phish",
        "\t//{host}/phish",
        "javascript:alert(document.cookie)",
    ],
)
def test_login_never_redirects_off_site(
    browser: Browser, alices_webapp: WebApp, attacker: Attacker, target: str
) -> None:
    base = alices_webapp.base
    context = new_device(browser, "Victim")
    page = context.new_page()
    next_page = target.format(attacker=attacker.base, host=attacker.base.split("//")[1])
    page.goto(f"{base}/login?next={urllib.parse.quote(next_page, safe='')}")
    page.fill("#username", "alice")
    page.fill("#password", PASSWORD)
    page.click("button:text('Log in')")
    page.wait_for_load_state()
    assert page.url == base + "/"  # the app's default page, logged in
    assert page.inner_text("h1") == "Hello, alice"
    assert attacker.requested == []
    context.close()


def test_insecure_cookie_as_configured(browser: Browser, tmp_path: Path) -> None:
    app = WebApp(tmp_path, secure=False)  # WEBAPP_COOKIE_SECURE=false: plain-HTTP development
    try:
        context = new_device(browser, "Dev")
        page = context.new_page()
        page.goto(app.base + "/register")
        page.fill("#username", "alice")
        page.fill("#password", PASSWORD)
        page.click("button:text('Register')")
        assert path_of(page, app.base) == "/"
        (cookie,) = context.cookies(app.base)
        assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (False, True, "Lax")
        context.close()
    finally:
        app.stop()
