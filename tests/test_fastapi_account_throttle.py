"""``/login`` under attack: the login throttle (429) and load shedding (503)."""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations.
import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

import authcore.passwords._pool as passwords_pool
from authcore import LoginThrottle, PasswordHasher, create_engine, dispose_engine
from authcore.fastapi import AuthCore, AuthEvent
from authcore.fastapi._login import unless_disconnected
from authcore.testing import FakeClock, InMemorySessionStore, InMemoryUserStore, fast_hasher

SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery staple"
ACCOUNT = {"username": "alice", "password": PASSWORD}
WRONG = {"username": "alice", "password": "not the password"}


class CountingHasher(PasswordHasher):
    """A fast hasher that counts the password checks it runs."""

    def __init__(self) -> None:
        super().__init__(rounds=4)
        self.checks = 0

    async def verify(self, password: str, hashed: str) -> bool:
        self.checks += 1
        return await super().verify(password, hashed)

    async def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        self.checks += 1
        return await super().verify_and_update(password, hashed)


def serve(auth: AuthCore) -> TestClient:
    app = FastAPI(lifespan=auth.lifespan)
    app.include_router(auth.router)
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def hasher() -> CountingHasher:
    return CountingHasher()


@pytest.fixture
def events() -> list[AuthEvent]:
    return []


@pytest.fixture
def auth(clock: FakeClock, hasher: CountingHasher, events: list[AuthEvent]) -> AuthCore:
    return AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=hasher,
        clock=clock,
        cookie_secure=False,
        on_event=events.append,
        login_page_url="/login",
    )


@pytest.fixture
def client(auth: AuthCore) -> Iterator[TestClient]:
    with serve(auth) as client:
        yield client


def fail(client: TestClient, times: int, username: str = "alice") -> None:
    for _ in range(times):
        response = client.post("/auth/login", json={**WRONG, "username": username})
        assert response.status_code == 401


# -- throttling ----------------------------------------------------------------------


def test_the_sixth_try_is_throttled_alike_for_known_and_unknown_users(
    client: TestClient, hasher: CountingHasher
) -> None:
    assert client.post("/auth/register", json=ACCOUNT).status_code == 201
    fail(client, 5, "alice")
    fail(client, 5, "nobody")
    known = client.post("/auth/login", json=ACCOUNT)  # even the right password
    unknown = client.post("/auth/login", json={**ACCOUNT, "username": "nobody"})
    for response in (known, unknown):
        assert response.status_code == 429
        assert response.json() == {"detail": "Too many failed logins; try again later"}
        assert 1 <= int(response.headers["retry-after"]) <= 15 * 60
    assert (known.text, known.headers["retry-after"]) == (
        unknown.text,
        unknown.headers["retry-after"],
    )


def test_a_throttled_attempt_costs_no_hashing(client: TestClient, hasher: CountingHasher) -> None:
    client.post("/auth/register", json=ACCOUNT)
    fail(client, 5)
    before = hasher.checks
    for _ in range(20):
        assert client.post("/auth/login", json=ACCOUNT).status_code == 429
    assert hasher.checks == before


def test_the_window_passes_and_a_success_clears_the_count(
    client: TestClient, clock: FakeClock
) -> None:
    client.post("/auth/register", json=ACCOUNT)
    fail(client, 5)
    assert client.post("/auth/login", json=ACCOUNT).status_code == 429
    clock.advance(minutes=16)
    assert client.post("/auth/login", json=ACCOUNT).status_code == 200
    fail(client, 4)  # the success forgot the earlier failures
    assert client.post("/auth/login", json=ACCOUNT).status_code == 200


def test_a_throttled_browser_login_goes_back_to_the_login_page(client: TestClient) -> None:
    client.post("/auth/register", json=ACCOUNT)
    fail(client, 5)
    response = client.post("/auth/login", data={**ACCOUNT, "next": "/account"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?error=throttled&next=%2Faccount"


def test_login_throttled_is_an_event(client: TestClient, events: list[AuthEvent]) -> None:
    fail(client, 5)
    client.post("/auth/login", json=ACCOUNT)
    assert [e.kind for e in events][-6:] == ["login_failed"] * 5 + ["login_throttled"]
    assert events[-1].user_id is None


def test_login_throttle_none_turns_it_off(clock: FakeClock) -> None:
    auth = AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=fast_hasher(),
        clock=clock,
        login_throttle=None,
    )
    assert auth.login_throttle is None
    with serve(auth) as client:
        fail(client, 8)


async def test_a_throttle_of_your_own(clock: FakeClock) -> None:
    engine = create_engine("sqlite+aiosqlite://")
    try:
        throttle = LoginThrottle(engine, max_failures=2, clock=clock)
        auth = AuthCore(
            engine=engine,
            secret_key=SECRET,
            hasher=fast_hasher(),
            clock=clock,
            login_throttle=throttle,
        )
        assert auth.login_throttle is throttle
    finally:
        await dispose_engine(engine)


def test_injected_stores_without_an_engine_have_no_throttle(clock: FakeClock) -> None:
    auth = AuthCore(
        secret_key=SECRET,
        sessions=InMemorySessionStore(clock=clock),
        users=InMemoryUserStore(hasher=fast_hasher(), clock=clock),
    )
    assert auth.engine is None
    assert auth.login_throttle is None
    with pytest.raises(TypeError, match="login_throttle"):
        AuthCore(secret_key=SECRET, login_throttle="on")  # type: ignore[arg-type]


# -- load shedding -------------------------------------------------------------------


class BusyPool:
    """Every worker thread of the bcrypt pool held until :meth:`release`."""

    def __init__(self) -> None:
        executor, workers = passwords_pool.get_executor(), passwords_pool.worker_count()
        self.started, self.released = threading.Barrier(workers + 1), threading.Event()
        self.blockers = [executor.submit(self._block) for _ in range(workers)]
        self.started.wait(10)

    def _block(self) -> bool:
        self.started.wait(10)
        return self.released.wait(10)

    def release(self) -> None:
        self.released.set()
        for blocker in self.blockers:
            blocker.result(10)


def test_a_full_hashing_queue_answers_503_at_once(clock: FakeClock) -> None:
    hasher = PasswordHasher(rounds=4, max_waiting=1)
    auth = AuthCore(
        database_url="sqlite+aiosqlite://",
        secret_key=SECRET,
        hasher=hasher,
        clock=clock,
        login_throttle=None,
    )
    with serve(auth) as client:
        assert client.post("/auth/register", json=ACCOUNT).status_code == 201
        pool = BusyPool()
        assert client.portal is not None
        try:
            queued = client.portal.start_task_soon(hasher.hash, "one waiting job")
            deadline = time.monotonic() + 10
            while passwords_pool.waiting_hashes() < 1 and time.monotonic() < deadline:
                time.sleep(0.001)  # polling until the job is queued, bounded by the deadline
            assert passwords_pool.waiting_hashes() == 1
            response = client.post("/auth/login", json=ACCOUNT)
            assert response.status_code == 503
            assert response.json() == {"detail": "The server is busy; try again shortly"}
            assert int(response.headers["retry-after"]) >= 1
            register = client.post("/auth/register", json={**ACCOUNT, "username": "bob"})
            assert register.status_code == 503
        finally:
            pool.release()
        assert queued.result(10)
        assert client.post("/auth/login", json=ACCOUNT).status_code == 200


async def test_a_client_that_went_away_is_not_hashed() -> None:
    hasher = CountingHasher()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.disconnect"}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    await request.body()
    pool = BusyPool()  # the hash can only wait in the queue
    try:
        finished, result = await unless_disconnected(request, hasher.hash("never hashed"))
    finally:
        pool.release()
    assert (finished, result) == (False, None)
    await asyncio.sleep(0)
    assert passwords_pool.waiting_hashes() == 0


async def test_a_connected_client_gets_its_result() -> None:
    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # never disconnects
        raise AssertionError

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    finished, result = await unless_disconnected(request, asyncio.sleep(0, "done"))
    assert (finished, result) == (True, "done")


def test_the_hasher_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_waiting"):
        PasswordHasher(max_waiting=0)
    with pytest.raises(TypeError, match="max_waiting"):
        PasswordHasher(max_waiting=True)
    with pytest.raises(ValueError, match="max_queue_wait"):
        PasswordHasher(max_queue_wait=timedelta(0))
    with pytest.raises(TypeError, match="max_queue_wait"):
        PasswordHasher(max_queue_wait=1)  # type: ignore[arg-type]


async def test_the_queue_is_bounded_by_the_expected_wait() -> None:
    from authcore import HasherBusyError

    hasher = PasswordHasher(rounds=4, max_queue_wait=timedelta(seconds=1))
    # As if each of its hashes took 5 s per worker thread: one waiting is 5 s ahead.
    hasher._pace.mean = 5.0 * passwords_pool.worker_count()
    pool = BusyPool()
    try:
        assert not hasher.busy()
        queued = [asyncio.create_task(hasher.hash("the first waits"))]  # nothing ahead of it
        await asyncio.sleep(0)  # the job reaches the queue
        assert passwords_pool.waiting_hashes() == 1
        assert hasher.busy()
        with pytest.raises(HasherBusyError) as caught:
            await hasher.hash("one too many")
        assert caught.value.retry_after >= timedelta(seconds=1)
        assert "one too many" not in str(caught.value)
    finally:
        pool.release()
    assert all(await asyncio.gather(*queued))
    assert passwords_pool.waiting_hashes() == 0
    assert not hasher.busy()
