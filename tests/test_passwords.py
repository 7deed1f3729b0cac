from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import metadata
from typing import Any

import pytest

from authcore import passwords
from authcore.errors import DependencyVersionError, PasswordPolicyError
from authcore.passwords import PasswordHasher
from authcore.passwords._bcrypt import check_bcrypt_version
from authcore.passwords._pool import get_executor, worker_count

PASSWORD = "correct horse"
# Hashes of PASSWORD at cost 4 made by other software (the bcrypt package, passlib 1.7.4).
LEGACY = {
    "2a": "$2a$04$EyLFgHkO85.cK.YABFnLcu6IDL2i.hvvV.hO8OOXJ3QT9gb2Up3IW",
    "2b": "$2b$04$l9Ie/s7x5JqJJXsNp0Ne.OPOAxsOKhqxyPPFhMMHozc00qwfnu8ja",
    "2y": "$2y$04$bzr3uS17LsMmmbftw5D8uOrYGwwwemMBUFlpCVPKS7gatPewhrRUm",
    "sha256-v1": "$bcrypt-sha256$2b,4$I0TFQ39Fk/yMrvrURPf3pO$cPXRcZBbjgvNReSMQKyKnT7M.OwxnuW",
    "sha256-v2": "$bcrypt-sha256$v=2,t=2b,r=4$6IzmL3p4eBwbS5QyeXtq9O"
    "$DvtRBRJVUv.LGW/PBMq8uBI7SlxdFBu",
}
SENTINEL = "SeNtInEl"


class SpyContext:
    """Stands in for passlib's CryptContext: records calls; ``verify`` never computes."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls: list[str] = []

    def handler(self, name: str) -> Any:
        return self.real.handler(name)

    def needs_update(self, hashed: str) -> bool:
        return bool(self.real.needs_update(hashed))

    def hash(self, password: str) -> str:
        self.calls.append("hash")
        return str(self.real.hash(password))

    def verify(self, password: str, hashed: str) -> bool:
        self.calls.append("verify")
        return False


def spy_on(hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> SpyContext:
    spy = SpyContext(hasher._context)
    monkeypatch.setattr(hasher, "_context", spy)
    return spy


def with_cost(hashed: str, cost: int) -> str:
    """*hashed* with its cost field rewritten (the digest no longer matches)."""
    if hashed.startswith("$2"):
        return f"{hashed[:4]}{cost:02d}{hashed[6:]}"
    head, salt, digest = hashed.rsplit("$", 2)
    if "r=" in head:
        return f"{head.split('r=')[0]}r={cost}${salt}${digest}"
    return f"{head.split(',')[0]},{cost}${salt}${digest}"


@pytest.fixture
def hasher() -> PasswordHasher:
    return PasswordHasher(rounds=4)


@pytest.fixture
def plain() -> PasswordHasher:
    return PasswordHasher(rounds=4, scheme="bcrypt")


def test_public_surface() -> None:
    assert passwords.__all__ == ["PasswordHasher", "PasswordPolicy"]


async def test_round_trip_in_both_schemes(hasher: PasswordHasher, plain: PasswordHasher) -> None:
    stored = await hasher.hash(PASSWORD)
    assert stored.startswith("$bcrypt-sha256$v=2,t=2b,r=4$")
    assert await hasher.verify(PASSWORD, stored)
    assert not await hasher.verify(PASSWORD + "!", stored)
    assert await hasher.hash(PASSWORD) != stored  # salted
    raw = await plain.hash(PASSWORD)
    assert raw.startswith("$2b$04$")
    assert len(raw) == 60
    assert await plain.verify(PASSWORD, raw)
    assert not await plain.verify("Correct horse", raw)


def test_sync_twins_without_an_event_loop(hasher: PasswordHasher) -> None:
    stored = hasher.hash_sync(PASSWORD)
    assert hasher.verify_sync(PASSWORD, stored)
    assert not hasher.verify_sync("wrong", stored)


async def test_default_rounds_are_12() -> None:
    assert repr(PasswordHasher()) == "PasswordHasher(scheme='bcrypt_sha256', rounds=12)"
    assert PasswordHasher().needs_update(LEGACY["2b"].replace("$2b$04$", "$2b$11$"))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "junk",
        "$2b$04$short",
        LEGACY["2b"] + "\n",
        " " + LEGACY["2b"],
        LEGACY["2b"].replace("$04$", "$4$"),
        "$2x$" + LEGACY["2b"][4:],
        "$2$" + LEGACY["2b"][4:],
        "$bcrypt-sha256$v=2,t=2b,r=04$" + LEGACY["sha256-v1"].split("$", 3)[3],
        with_cost(LEGACY["2b"], 3),  # well-formed, but outside bcrypt's 4..31
        with_cost(LEGACY["sha256-v2"], 3),
        with_cost(LEGACY["2b"], 32),
        with_cost(LEGACY["sha256-v1"], 99),
        LEGACY["2b"][:28] + "A" + LEGACY["2b"][29:],  # unused bits set: passlib would warn
        LEGACY["2b"][:-1] + "b",
        LEGACY["sha256-v2"][:-1] + "v",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        "$1$salt$checksum",
        None,
        123,
        LEGACY["2b"].encode(),
    ],
)
async def test_malformed_or_unknown_hash_is_false_never_an_error(
    hasher: PasswordHasher, bad: Any
) -> None:
    assert await hasher.verify(PASSWORD, bad) is False
    assert hasher.verify_sync(PASSWORD, bad) is False
    assert await hasher.verify_and_update(PASSWORD, bad) == (False, None)
    assert hasher.needs_update(bad) is False


async def test_long_passwords_are_fully_significant_with_bcrypt_sha256(
    hasher: PasswordHasher,
) -> None:
    first, second = "p" * 99 + "1", "p" * 99 + "2"
    stored = await hasher.hash(first)
    assert await hasher.verify(first, stored)
    assert not await hasher.verify(second, stored)
    longest = "é" * 1024
    assert await hasher.verify(longest, await hasher.hash(longest))


async def test_nul_is_significant_with_bcrypt_sha256(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("a\x00b")
    assert await hasher.verify("a\x00b", stored)
    assert not await hasher.verify("a\x00c", stored)
    assert not await hasher.verify("a", stored)


@pytest.mark.parametrize("password", ["a" * 73, "€" * 25, "a\x00b"])
async def test_plain_bcrypt_refuses_to_hash_what_it_would_truncate(
    plain: PasswordHasher, password: str
) -> None:
    with pytest.raises(PasswordPolicyError, match="truncate"):
        await plain.hash(password)
    with pytest.raises(PasswordPolicyError):
        plain.hash_sync(password)


async def test_plain_bcrypt_accepts_exactly_72_bytes(plain: PasswordHasher) -> None:
    password = "€" * 24  # 72 UTF-8 bytes
    assert await plain.verify(password, await plain.hash(password))


@pytest.mark.parametrize("scheme", ["bcrypt", "bcrypt_sha256"])
async def test_a_plain_bcrypt_hash_never_matches_a_longer_password(
    plain: PasswordHasher, scheme: str
) -> None:
    prefix = "x" * 72
    stored = await plain.hash(prefix)
    checker = PasswordHasher(rounds=4, scheme=scheme)
    assert await checker.verify(prefix, stored)
    # bcrypt itself would say True here: it only reads the first 72 bytes.
    assert not await checker.verify(prefix + "tail", stored)
    assert not checker.verify_sync(prefix + "tail", stored)
    assert await checker.verify_and_update(prefix + "tail", stored) == (False, None)
    nul_stored = await plain.hash("a")
    assert not await checker.verify("a\x00whatever", nul_stored)


CALLS: dict[str, Callable[[PasswordHasher, Any], Awaitable[object] | object]] = {
    "hash": lambda h, pw: h.hash(pw),
    "verify": lambda h, pw: h.verify(pw, LEGACY["2b"]),
    "verify_and_update": lambda h, pw: h.verify_and_update(pw, LEGACY["2b"]),
    "hash_sync": lambda h, pw: h.hash_sync(pw),
    "verify_sync": lambda h, pw: h.verify_sync(pw, LEGACY["2b"]),
}


async def call(method: str, hasher: PasswordHasher, password: Any) -> object:
    result = CALLS[method](hasher, password)
    return await result if asyncio.iscoroutine(result) else result


@pytest.mark.parametrize("method", sorted(CALLS))
@pytest.mark.parametrize(
    "password",
    ["", None, 123, b"bytes", "x" * 1025, "ab\ud800"],
    ids=["empty", "none", "int", "bytes", "1025-chars", "lone-surrogate"],
)
async def test_policy_violations_raise_before_any_hashing(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch, method: str, password: Any
) -> None:
    spy = spy_on(hasher, monkeypatch)
    with pytest.raises(PasswordPolicyError) as caught:
        await call(method, hasher, password)
    assert isinstance(caught.value, ValueError)
    assert caught.value.__context__ is None
    assert spy.calls == []


@pytest.mark.parametrize("scheme", ["bcrypt", "bcrypt_sha256"])
@pytest.mark.parametrize("kind", sorted(LEGACY))
async def test_existing_hashes_verify_under_either_scheme(scheme: str, kind: str) -> None:
    hasher = PasswordHasher(rounds=4, scheme=scheme)
    stored = LEGACY[kind]
    assert await hasher.verify(PASSWORD, stored)
    assert not await hasher.verify("wrong", stored)
    # 2a and 2y hash like 2b below 72 bytes, so passlib (rightly) keeps them.
    up_to_date = kind == "sha256-v2" if scheme == "bcrypt_sha256" else kind in {"2a", "2b", "2y"}
    assert hasher.needs_update(stored) is not up_to_date
    ok, fresh = await hasher.verify_and_update(PASSWORD, stored)
    assert ok
    if up_to_date:
        assert fresh is None
    else:
        assert fresh is not None
        assert fresh.startswith("$2b$04$" if scheme == "bcrypt" else "$bcrypt-sha256$v=2,")
        assert await hasher.verify(PASSWORD, fresh)
        assert not hasher.needs_update(fresh)
    assert await hasher.verify_and_update("wrong", stored) == (False, None)


async def test_needs_update_follows_rounds_and_scheme(hasher: PasswordHasher) -> None:
    stored = await hasher.hash(PASSWORD)
    assert not hasher.needs_update(stored)
    assert PasswordHasher(rounds=5).needs_update(stored)
    assert PasswordHasher(rounds=4, scheme="bcrypt").needs_update(stored)
    stronger = await PasswordHasher(rounds=5).hash(PASSWORD)
    assert not hasher.needs_update(stronger)
    assert await hasher.verify_and_update(PASSWORD, stronger) == (True, None)
    ok, fresh = await PasswordHasher(rounds=5).verify_and_update(PASSWORD, stored)
    assert ok
    assert fresh is not None
    assert fresh.startswith("$bcrypt-sha256$v=2,t=2b,r=5$")


async def test_no_upgrade_to_plain_bcrypt_when_it_would_truncate(
    hasher: PasswordHasher, plain: PasswordHasher
) -> None:
    long_password = "y" * 100
    stored = await hasher.hash(long_password)
    assert plain.needs_update(stored)
    assert await plain.verify_and_update(long_password, stored) == (True, None)


@pytest.mark.parametrize("kind", ["2b", "sha256-v1", "sha256-v2"])
async def test_a_hash_costlier_than_16_is_refused_without_computing(
    hasher: PasswordHasher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    spy = spy_on(hasher, monkeypatch)
    costly = with_cost(LEGACY[kind], 20)
    started = time.perf_counter()
    assert await hasher.verify(PASSWORD, costly) is False
    assert hasher.verify_sync(PASSWORD, costly) is False
    assert await hasher.verify_and_update(PASSWORD, costly) == (False, None)
    assert time.perf_counter() - started < 0.5
    assert spy.calls == []
    warnings = [r for r in caplog.records if r.name == "authcore.passwords"]
    assert len(warnings) == 3
    assert all(r.levelno == logging.WARNING for r in warnings)
    assert "cost 20" in warnings[0].getMessage()
    assert costly not in caplog.text
    assert LEGACY[kind][10:] not in caplog.text


@pytest.mark.parametrize(
    ("rounds", "cost", "computed"),
    [
        (4, 16, True),
        (4, 17, False),
        (16, 17, False),
        (17, 17, True),
        (20, 20, True),
        (20, 21, False),
        (30, 31, False),
        (31, 31, True),
    ],
)
async def test_cost_limit_is_max_of_16_and_rounds(
    monkeypatch: pytest.MonkeyPatch, rounds: int, cost: int, computed: bool
) -> None:
    hasher = PasswordHasher(rounds=rounds)
    spy = spy_on(hasher, monkeypatch)
    for kind in ("2b", "sha256-v1"):
        assert not await hasher.verify(PASSWORD, with_cost(LEGACY[kind], cost))
    assert not hasher.verify_sync(PASSWORD, with_cost(LEGACY["2b"], cost))
    assert spy.calls == (["verify"] * 3 if computed else [])


async def test_a_failing_backend_means_false_not_an_error(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Refusing(SpyContext):
        def verify(self, password: str, hashed: str) -> bool:
            raise ValueError("passlib refused the hash")

        def needs_update(self, hashed: str) -> bool:
            raise ValueError("passlib refused the hash")

    monkeypatch.setattr(hasher, "_context", Refusing(hasher._context))
    assert await hasher.verify(PASSWORD, LEGACY["2b"]) is False
    assert await hasher.verify_and_update(PASSWORD, LEGACY["2b"]) == (False, None)
    assert hasher.needs_update(LEGACY["2b"]) is False


def test_with_cost_makes_well_formed_hashes() -> None:
    assert with_cost(LEGACY["2y"], 20).startswith("$2y$20$")
    assert with_cost(LEGACY["sha256-v1"], 20).startswith("$bcrypt-sha256$2b,20$")
    fresh = "$bcrypt-sha256$v=2,t=2b,r=4$" + LEGACY["sha256-v1"].split("$", 3)[3]
    assert with_cost(fresh, 20).startswith("$bcrypt-sha256$v=2,t=2b,r=20$")
    for hashed in [*LEGACY.values(), fresh]:
        assert len(with_cost(hashed, 20)) == len(hashed) + (1 if "bcrypt-sha256" in hashed else 0)


def test_repr_and_errors_never_show_secrets(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    plain = PasswordHasher(rounds=4, scheme="bcrypt")
    stored = plain.hash_sync(SENTINEL)
    assert repr(plain) == "PasswordHasher(scheme='bcrypt', rounds=4)"
    assert SENTINEL not in repr(plain)
    assert stored not in repr(plain)
    assert not plain.verify_sync(SENTINEL + "x", stored)
    costly = f"$2b$20${(SENTINEL * 3)[:21]}O{(SENTINEL * 4)[:30]}u"
    assert not plain.verify_sync(SENTINEL, costly)
    assert "cost 20" in caplog.text
    assert not plain.verify_sync(SENTINEL, f"$2b$04${SENTINEL}")
    for bad in [SENTINEL * 10, SENTINEL * 200, SENTINEL + "\ud800"]:
        with pytest.raises(PasswordPolicyError) as caught:
            plain.hash_sync(bad)
        shown = str(caught.value) + repr(caught.value)
        assert SENTINEL not in shown
        assert SENTINEL not in repr(caught.value.__cause__) + repr(caught.value.__context__)
    assert SENTINEL not in caplog.text
    assert stored[7:] not in caplog.text


@pytest.mark.parametrize("rounds", [3, 32, -1])
def test_rounds_out_of_range(rounds: int) -> None:
    with pytest.raises(ValueError, match="between 4 and 31"):
        PasswordHasher(rounds=rounds)


@pytest.mark.parametrize("rounds", [True, 12.0, "12", None])
def test_rounds_of_the_wrong_type(rounds: Any) -> None:
    with pytest.raises(TypeError):
        PasswordHasher(rounds=rounds)


def test_extreme_rounds_are_accepted() -> None:
    assert repr(PasswordHasher(rounds=31)).endswith("rounds=31)")
    assert repr(PasswordHasher(rounds=4)).endswith("rounds=4)")


def test_scheme_is_validated() -> None:
    with pytest.raises(ValueError, match="md5_crypt"):
        PasswordHasher(scheme="md5_crypt")
    with pytest.raises(ValueError, match="BCRYPT"):
        PasswordHasher(scheme="BCRYPT")
    with pytest.raises(TypeError):
        PasswordHasher(scheme=None)  # type: ignore[arg-type]


# -- the door to passlib and bcrypt (passwords/_bcrypt.py) ---------------------------


@pytest.mark.parametrize("version", ["5.0.0", "4.0.1", "3.2.2", "garbage", "", "10.1"])
def test_bcrypt_version_outside_the_range_is_refused(version: str) -> None:
    with pytest.raises(DependencyVersionError) as caught:
        check_bcrypt_version(version)
    assert isinstance(caught.value, ImportError)
    assert repr(version) in str(caught.value)
    assert 'pip install "bcrypt>=4.1,<5"' in str(caught.value)


@pytest.mark.parametrize("version", ["4.1.0", "4.1.3", "4.3.0", "4.99"])
def test_bcrypt_version_inside_the_range_is_accepted(version: str) -> None:
    check_bcrypt_version(version)


def test_constructing_with_an_unsupported_bcrypt_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metadata, "version", lambda name: "5.0.0")
    with pytest.raises(DependencyVersionError, match=r"'5\.0\.0'.*pip install"):
        PasswordHasher(rounds=4)


def test_constructing_without_bcrypt_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    with pytest.raises(DependencyVersionError, match=r"needs bcrypt: pip install"):
        PasswordHasher(rounds=4)


def test_passlib_bcrypt_version_noise_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    noisy = logging.getLogger("passlib.handlers.bcrypt")
    try:
        raise AttributeError("module 'bcrypt' has no attribute '__about__'")
    except AttributeError:
        noisy.warning("(trapped) error reading bcrypt version", exc_info=True)
    noisy.warning("something that matters")
    assert [r.getMessage() for r in caplog.records] == ["something that matters"]


def run_python(code: str, tmp_path: Any, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
    )


def test_first_use_is_silent_with_warnings_as_errors(tmp_path: Any) -> None:
    code = (
        "import authcore.passwords as p; h=p.PasswordHasher(rounds=4); "
        "print(h.verify_sync('x', h.hash_sync('x')))"
    )
    done = run_python(code, tmp_path, "-W", "error")
    assert (done.stdout, done.stderr) == ("True\n", "")


def test_first_use_logs_nothing_from_passlib(tmp_path: Any) -> None:
    code = """
        import asyncio, logging
        records = []
        handler = logging.Handler()
        handler.emit = records.append
        logging.basicConfig(level=logging.DEBUG, handlers=[handler])
        import authcore.passwords as p
        h = p.PasswordHasher(rounds=4)
        assert asyncio.run(h.verify("x", h.hash_sync("x")))
        print([r.getMessage() for r in records if r.levelno >= logging.INFO])
        print(any("detected 'bcrypt' backend" in r.getMessage() for r in records))
    """
    done = run_python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    # passlib's own debug lines still arrive (so the handler saw first use), its warning does not.
    assert done.stdout == "[]\nTrue\n"


# -- the worker pool (passwords/_pool.py) ---------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_working_pool(tmp_path: Any) -> None:
    code = """
        import asyncio, os, signal, threading, time, warnings
        import authcore.passwords as p
        from authcore.passwords._pool import get_executor, worker_count
        h = p.PasswordHasher(rounds=4)
        executor, n = get_executor(), worker_count()
        barrier = threading.Barrier(n)
        for job in [executor.submit(barrier.wait, 10) for _ in range(n)]:
            job.result()  # every worker thread of the parent now exists
        with warnings.catch_warnings():  # 3.12+: "multi-threaded, fork() may deadlock"
            warnings.simplefilter("ignore", DeprecationWarning)  # which is what is tested
            pid = os.fork()
        if pid == 0:
            os._exit(0 if asyncio.run(h.verify("x", h.hash_sync("x"))) else 1)
        deadline = time.monotonic() + 10
        done, status = os.waitpid(pid, os.WNOHANG)
        while done == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the child: a hang must not outlive the test
            done, status = os.waitpid(pid, os.WNOHANG)
        if done == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print("child hung")
        else:
            print(os.waitstatus_to_exitcode(status))
    """
    done = run_python(code, tmp_path)
    assert (done.stdout, done.stderr) == ("0\n", "")


class GatedContext(SpyContext):
    """A context whose ``hash`` waits until the event loop has run while it was in progress."""

    def __init__(self, real: Any, loop_ran: threading.Event) -> None:
        super().__init__(real)
        self.loop_ran = loop_ran
        self.threads: list[int] = []

    def hash(self, password: str) -> str:
        self.threads.append(threading.get_ident())
        # On the loop's own thread this wait could never end early: the test then fails.
        self.loop_ran.wait(10)
        return super().hash(password)


async def test_a_login_flood_queues_without_stalling_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Deterministic, not timed: every hash is held in its worker until the loop has
    # served a callback, which it can only do if no hash runs on the loop's thread.
    hasher, loop_ran = PasswordHasher(rounds=4), threading.Event()
    gated = GatedContext(hasher._context, loop_ran)
    monkeypatch.setattr(hasher, "_context", gated)
    flood = asyncio.gather(*(hasher.hash(f"user-{i}") for i in range(6)))
    while not gated.threads:  # the first hash has started in a worker
        await asyncio.sleep(0)
    loop_ran.set()  # the loop runs while a hash is in progress
    hashes = await asyncio.wait_for(flood, timeout=30)
    assert len(set(hashes)) == 6
    assert threading.get_ident() not in gated.threads
    assert len(gated.threads) == 6


async def test_all_hashers_share_one_pool_bounded_by_the_cpu_count() -> None:
    first, second = PasswordHasher(rounds=6), PasswordHasher(rounds=6, scheme="bcrypt")
    await asyncio.gather(*(h.hash(f"user-{i}") for i in range(12) for h in (first, second)))
    workers = [t for t in threading.enumerate() if t.name.startswith("authcore-bcrypt")]
    assert 1 <= len(workers) <= (os.cpu_count() or 1)


async def test_a_cancelled_caller_never_runs_its_queued_hash(
    hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = spy_on(hasher, monkeypatch)
    executor, workers = get_executor(), worker_count()
    started, release = threading.Barrier(workers + 1), threading.Event()

    def block() -> bool:
        started.wait(10)
        return release.wait(10)

    blockers = [executor.submit(block) for _ in range(workers)]
    try:
        started.wait(10)  # every worker is now busy
        queued = asyncio.create_task(hasher.hash("queued"))
        await asyncio.sleep(0)  # one loop turn: the task submits its job behind the blockers
        assert executor._work_queue.qsize() == 1
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    finally:
        release.set()
    # The workers can only all meet at the barrier once the queue before it is drained.
    barrier = threading.Barrier(workers)
    meet = [asyncio.wrap_future(executor.submit(barrier.wait, 10)) for _ in range(workers)]
    await asyncio.gather(*meet)
    assert all(blocker.result() for blocker in blockers)
    assert spy.calls == []
    assert await hasher.hash("after")
    assert spy.calls == ["hash"]
