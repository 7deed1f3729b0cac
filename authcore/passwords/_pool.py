"""The process-wide pool of bcrypt worker threads, with a bounded queue.

One worker thread per CPU, shared by every hasher of the process, so a login
flood queues up instead of starving the event loop, and work whose caller was
cancelled while it waited in the queue never runs. The queue is bounded (load
shedding): when the hashes already waiting for a thread would keep a new one
waiting longer than *max_queue_wait* (estimated from how long recent hashes
took), or when *max_waiting* hashes wait, a new one raises
:class:`~authcore.errors.HasherBusyError` at once instead of queueing behind
them, so an overloaded server answers quickly rather than minutes later.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Final, TypeVar

from authcore.errors import HasherBusyError

__all__ = ["Pace", "get_executor", "is_full", "run_in_pool", "waiting_hashes", "worker_count"]

_T = TypeVar("_T")

_SMOOTHING: Final = 0.2  # weight of the latest hash in the running mean of hash times

_executor_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_waiting_lock = threading.Lock()
_waiting = 0  # jobs handed to the pool that no worker thread has started yet
_queued_seconds = 0.0  # what the waiting jobs are expected to take, in all


def worker_count() -> int:
    """How many worker threads the pool has: the CPUs this process may run on."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return len(affinity(0)) or 1
    return os.cpu_count() or 1


def get_executor() -> ThreadPoolExecutor:
    """The process-wide bcrypt pool, created on first use with one thread per CPU."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(worker_count(), thread_name_prefix="authcore-bcrypt")
        return _executor


def _forget_state_after_fork() -> None:
    # The parent's worker threads do not exist in a forked child.
    global _executor, _executor_lock, _waiting_lock, _waiting, _queued_seconds
    _executor, _executor_lock = None, threading.Lock()
    _waiting_lock, _waiting, _queued_seconds = threading.Lock(), 0, 0.0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_state_after_fork)


def waiting_hashes() -> int:
    """How many hashes of this process are queued and not yet started."""
    return _waiting


class Pace:
    """How long one hasher's jobs take: a running mean, learnt as they run."""

    __slots__ = ("mean",)

    def __init__(self) -> None:
        self.mean = 0.0

    def learn(self, took: float) -> None:
        with _waiting_lock:
            mean = self.mean
            self.mean = took if mean == 0.0 else mean + _SMOOTHING * (took - mean)


class _Job:
    """One queued job and its expected cost; *claimed* once started or given up."""

    __slots__ = ("claimed", "cost")

    def __init__(self, cost: float) -> None:
        self.claimed = False
        self.cost = cost

    def claim(self) -> bool:
        """Whether this call took the job out of the queue (only the first one does)."""
        global _waiting, _queued_seconds
        with _waiting_lock:
            if self.claimed:
                return False
            self.claimed = True
            _waiting -= 1
            _queued_seconds = max(_queued_seconds - self.cost, 0.0) if _waiting else 0.0
            return True


def _shed(max_waiting: int | None, max_queue_wait: float | None) -> float | None:
    """How long the queue would hold a new job back when it is full, else ``None``.

    Called with ``_waiting_lock`` held.
    """
    ahead = _queued_seconds / worker_count()
    full = max_waiting is not None and _waiting >= max_waiting
    if full or (max_queue_wait is not None and ahead > max_queue_wait):
        return ahead
    return None


def is_full(max_waiting: int | None, max_queue_wait: float | None) -> bool:
    """Whether :func:`run_in_pool` with these bounds would raise ``HasherBusyError`` now."""
    with _waiting_lock:
        return _shed(max_waiting, max_queue_wait) is not None


async def run_in_pool(
    call: Callable[[], _T], pace: Pace, max_waiting: int | None, max_queue_wait: float | None
) -> _T:
    """Run *call* on the pool, unless the queue is full (``HasherBusyError``, at once).

    Full: *max_waiting* jobs wait, or the jobs waiting would hold this one
    back for more than *max_queue_wait* seconds (each job counted at its
    hasher's mean time, spread over the worker threads). A caller cancelled
    while its job waits takes it out of the queue: it never runs.
    """
    global _waiting, _queued_seconds
    with _waiting_lock:
        ahead = _shed(max_waiting, max_queue_wait)
        if ahead is not None:
            raise HasherBusyError(timedelta(seconds=max(1.0, ahead)))
        _waiting += 1
        _queued_seconds += pace.mean
        job = _Job(pace.mean)

    def run() -> _T | None:
        if not job.claim():  # the caller gave up while the job waited
            return None
        started = time.perf_counter()
        try:
            return call()
        finally:
            pace.learn(time.perf_counter() - started)

    try:
        result = await asyncio.get_running_loop().run_in_executor(get_executor(), run)
    finally:
        job.claim()  # a no-op when a worker started it
    return result  # type: ignore[return-value]  # None only for a cancelled caller
