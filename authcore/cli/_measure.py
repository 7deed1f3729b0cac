"""Timing for ``authcore bench``: a :class:`Measurement` and the loops that take one.

:func:`timed` runs coroutine calls with a given number in flight,
:func:`timed_loop` runs a plain function in a loop; both time each call and
the whole run. Nothing here knows what it measures.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Measurement", "percentile", "timed", "timed_loop"]

_T = TypeVar("_T")


def percentile(values: Sequence[float], q: float) -> float:
    """The *q*-th percentile (0..100) of *values*, nearest-rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Measurement:
    """One operation measured *count* times.

    Attributes:
        name: What was measured (``"create_session"``...).
        count: How many operations ran.
        seconds: Wall-clock time for all of them.
        latencies: Seconds taken by each operation.
        concurrency: How many ran at once.
        note: Extra context for the table (e.g. the bcrypt cost).
    """

    name: str
    count: int
    seconds: float
    latencies: tuple[float, ...] = field(repr=False)
    concurrency: int = 1
    note: str = ""

    @property
    def ops_per_second(self) -> float:
        """Throughput: operations per wall-clock second."""
        return self.count / self.seconds if self.seconds > 0 else math.inf

    @property
    def p50_ms(self) -> float:
        """Median latency in milliseconds."""
        return percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        """99th-percentile latency in milliseconds."""
        return percentile(self.latencies, 99) * 1000

    def as_dict(self) -> dict[str, Any]:
        """The figures as JSON-ready values (rounded)."""
        return {
            "name": self.name,
            "count": self.count,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 6),
            "ops_per_second": round(self.ops_per_second, 1),
            "p50_ms": round(self.p50_ms, 4),
            "p99_ms": round(self.p99_ms, 4),
            "note": self.note,
        }


async def timed(
    name: str,
    calls: Sequence[Callable[[], Awaitable[_T]]],
    concurrency: int,
    note: str = "",
) -> tuple[Measurement, list[_T]]:
    """Run *calls* with at most *concurrency* in flight; time each and the whole.

    Returns the measurement and each call's result, in the order of *calls*.

    Raises:
        ValueError: *concurrency* is less than 1.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    latencies = [0.0] * len(calls)
    results: list[Any] = [None] * len(calls)
    queue = iter(range(len(calls)))

    async def worker() -> None:
        for index in queue:
            start = time.perf_counter()
            results[index] = await calls[index]()
            latencies[index] = time.perf_counter() - start

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, len(calls)) or 1):
            group.create_task(worker())
    seconds = time.perf_counter() - start
    measurement = Measurement(name, len(calls), seconds, tuple(latencies), concurrency, note)
    return measurement, results


def timed_loop(name: str, call: Callable[[], object], count: int) -> Measurement:
    """Call *call* *count* times in a plain loop (CPU work, no I/O); time each and the whole."""
    latencies = []
    start = time.perf_counter()
    for _ in range(count):
        begin = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - begin)
    return Measurement(name, count, time.perf_counter() - start, tuple(latencies))
