"""The OU fit's worker process (:mod:`spreadbus.engine.offload`), with a real spawned pool.

The results are checked against :func:`spreadbus.analytics.ou_fit` run here on the same
window; the loop's freedom is checked by counting its turns while a job computes; a killed
worker is a real SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spreadbus import analytics as an
from spreadbus.engine.jobs import JobQueue
from spreadbus.engine.offload import Offloader
from spreadbus.engine.pairstate import OU_FIELDS, Job, PairState, ou_stats

PAIR = "AAAUSDT/BBBUSDT"


def ou_window(seed: int, n: int = 300, phi: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """x a random walk, y = 2 + 0.5 x + an AR(1) spread plus observation noise."""
    rng = np.random.default_rng(seed)
    xs = 100.0 + np.cumsum(rng.normal(0.0, 0.1, n))
    spread = np.zeros(n)
    for i in range(1, n):
        spread[i] = phi * spread[i - 1] + rng.normal(0.0, 0.05)
    return 2.0 + 0.5 * xs + spread + rng.normal(0.0, 0.01, n), xs


def ou_job(seed: int, bar_ms: int, results: list[tuple[int, dict[str, float]]]) -> Job:
    ys, xs = ou_window(seed)
    fit = an.ols_hedge(ys, xs)
    compute = partial(ou_stats, ys, xs, fit.alpha, fit.beta)
    return Job(PAIR, "ou", bar_ms, compute, lambda r: results.append((bar_ms, r)))


@contextlib.contextmanager
def pooled_queue() -> Iterator[tuple[JobQueue, Offloader]]:
    """A job queue whose offloadable jobs go to a real worker process, stopped on exit."""
    queue = JobQueue()
    offloader = Offloader(queue.complete)
    queue.offload = offloader.submit
    try:
        yield queue, offloader
    finally:
        offloader.close()


async def until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s  # generous: a spawned worker imports statsmodels
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_offloaded_fit_equals_the_library_and_is_applied_on_the_loop() -> None:
    results: list[tuple[int, dict[str, float]]] = []
    with pooled_queue() as (queue, _):
        queue.add(ou_job(3, 1_000, results))
        assert queue.run(0.003) == []  # handed over, not run here
        await until(lambda: queue.has_completed)
        done = queue.run(0.003)
    assert [job.bar_ms for job in done] == [1_000] and queue.failures == 0
    ys, xs = ou_window(3)
    fit = an.ols_hedge(ys, xs)
    reference = an.ou_fit(an.spread(ys, xs, fit.beta, fit.alpha), level=0.90)
    ((_, result),) = results
    assert set(result) == set(OU_FIELDS)
    for name in ("half_life", "half_life_lo", "half_life_hi"):
        assert result[name] == pytest.approx(getattr(reference, name), rel=1e-6), name
    assert queue.stats["ou"].runs == 1 and queue.stats["ou"].max_ms > 0.0  # the worker's CPU


async def test_the_loop_keeps_turning_while_a_fit_computes() -> None:
    """A job that takes two seconds in the worker: the loop meanwhile runs freely (held by
    the job, it would not turn at all until the job was done)."""
    slow = Job(PAIR, "ou", 1, partial(time.sleep, 2.0), lambda r: None)
    turns = 0
    with pooled_queue() as (queue, _):
        # warm the worker first, so the count below is not the spawn's import time
        queue.add(ou_job(1, 0, []))
        queue.run(0.003)
        await until(lambda: queue.has_completed)
        queue.run(0.003)
        queue.add(slow)
        queue.run(0.003)
        while not queue.has_completed:
            turns += 1
            await asyncio.sleep(0.01)
    assert turns >= 10, turns  # up to 200 turns of 10 ms; 10 even on a badly loaded box


async def test_a_backlog_keeps_only_the_newest_window_per_pair() -> None:
    results: list[tuple[int, dict[str, float]]] = []
    with pooled_queue() as (queue, offloader):
        for bar_ms in range(1_000, 11_000, 1_000):  # ten windows of one pair at once
            queue.add(ou_job(bar_ms, bar_ms, results))
            queue.run(0.003)
        await until(lambda: offloader.busy == 0)
    computed = [bar_ms for bar_ms, _ in results]
    # the first two went to the pool at once (IN_FLIGHT); the rest replaced each other
    assert computed[-1] == 10_000 and len(computed) <= 3, computed


async def test_a_killed_worker_is_counted_and_replaced() -> None:
    results: list[tuple[int, dict[str, float]]] = []
    with pooled_queue() as (queue, offloader):
        queue.add(Job(PAIR, "ou", 1, partial(time.sleep, 30.0), lambda r: None))
        queue.run(0.003)
        pool: Any = offloader._pool
        await until(lambda: bool(pool._processes))
        await asyncio.sleep(0.5)  # let it pick the job up (a kill before that is the same)
        for pid in list(pool._processes):
            os.kill(pid, signal.SIGKILL)
        await until(lambda: queue.has_completed)
        queue.run(0.003)
        assert queue.failures == 1 and "BrokenProcessPool" in queue.last_error
        assert offloader.restarts == 1
        queue.add(ou_job(5, 2_000, results))  # a new worker takes the next one
        queue.run(0.003)
        await until(lambda: queue.has_completed)
    assert [bar_ms for bar_ms, _ in results] == [2_000] and queue.failures == 1


def test_without_an_offload_every_job_runs_in_place() -> None:
    """The research tools and the core tests: no worker, same numbers."""
    state = PairState(PAIR, window=300, stale_s=60, history_s=600)
    ys, xs = ou_window(9)
    jobs = state.on_bars(
        ((i, float(y), float(x)) for i, (y, x) in enumerate(zip(ys, xs, strict=True))), live=False
    )
    queue = JobQueue()
    for job in jobs:
        queue.add(job)
    while len(queue):
        queue.run(1.0)
    fit = an.ols_hedge(ys, xs)
    reference = an.ou_fit(an.spread(ys, xs, fit.beta, fit.alpha), level=0.90)
    assert state.values["half_life"] == pytest.approx(reference.half_life, rel=1e-9)
    assert state.values["ou_ms"] == 299_000


PARENT = """
import asyncio, time
from functools import partial
from spreadbus.engine.jobs import JobQueue
from spreadbus.engine.offload import Offloader
from spreadbus.engine.pairstate import Job

async def main():
    queue = JobQueue()
    offloader = Offloader(queue.complete)
    offloader.submit(Job("A/B", "ou", 1, partial(time.sleep, 0.0), lambda result: None))
    while not queue.has_completed:
        await asyncio.sleep(0.01)
    print(*offloader._pool._processes, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def running(pid: int) -> bool:
    """Alive and not merely waiting to be reaped (a zombie has exited)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_a_worker_leaves_with_its_engine_killed_by_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    with parent:
        assert parent.stdout is not None
        (worker,) = (int(pid) for pid in parent.stdout.readline().split())
        assert running(worker)  # alive while its engine is
        parent.kill()
        parent.wait(10)
    deadline = time.monotonic() + 20  # it checks every 0.5 s; generous for a loaded box
    while running(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(worker), f"worker {worker} outlived its engine"
