"""Deferred statistics too slow for the engine's loop, computed in a worker process.

The OU half-life is a maximum-likelihood fit (statsmodels) of about 15 ms on a 300-bar window
on a quiet machine and over 200 ms on a busy one. Run inside the loop's job budget it held
every tick behind it (35% of the loop's time at 10k ticks/s). The window statistics (ADF,
Hurst, Engle-Granger) followed: 3-10 ms each here, 25-30 ms of the loop a second at 10k/s
(:data:`~spreadbus.engine.pairstate.OFFLOADED_KINDS`). A thread would not help: the
fit is mostly Python holding the GIL. So it runs in a separate process:

- the job's ``compute`` is a module-level function on copies of the window's arrays, sent by
  pickle (a few KB); its ``apply`` stays here and runs on the loop's thread once the answer
  is back (:meth:`JobQueue.complete`), so the pair state has one writer;
- at most :data:`IN_FLIGHT` jobs are in the pool at a time; the others wait here, newest per
  (pair, kind) only, because after a backlog only the latest window matters;
- the worker is started by ``spawn`` (forking a process that runs threads, such as the lease
  keeper, can deadlock), limits BLAS to one thread (each tiny step spread over every core was
  27x slower) and lowers its priority, so on a small box the tick path wins the CPU;
- a worker exits within a second of its engine, even one killed with SIGKILL;
- a worker that dies (killed, out of memory) loses the jobs it held: each is counted as a
  failure and the pool is started again; the next schedule, 15 s of bar time later, refits.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from typing import Any, Final

from spreadbus.engine.pairstate import Job

IN_FLIGHT: Final = 2  # jobs handed to the pool at once: one computing, one queued behind it
WORKER_NICE: Final = 5  # background statistics yield the CPU to the tick path
ORPHAN_CHECK_S: Final = 0.5


def _start_worker(engine_pid: int) -> None:
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 (the worker's own import)

    threadpool_limits(1)
    with contextlib.suppress(OSError):  # not permitted in some containers: run at par
        os.nice(WORKER_NICE)
    # A pool's worker outlives an engine killed with SIGKILL (it waits on its queue for
    # ever), and each restart would leave one more: it leaves when its engine is gone.
    threading.Thread(target=_exit_with, args=(engine_pid,), daemon=True).start()


def _exit_with(engine_pid: int) -> None:
    while os.getppid() == engine_pid:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(0)


def _timed(compute: Callable[[], Any]) -> tuple[Any, float]:
    """In the worker: the result and the milliseconds of CPU it took."""
    began = time.process_time()
    result = compute()
    return result, (time.process_time() - began) * 1000.0


Complete = Callable[[Job, object, float], None]


class Offloader:
    """A one-process pool for :attr:`Job.offloadable` jobs; outcomes go to ``complete``."""

    def __init__(self, complete: Complete, workers: int = 1) -> None:
        self.complete = complete
        self.workers = workers
        self.restarts = 0
        self._pool: ProcessPoolExecutor | None = None
        self._waiting: OrderedDict[tuple[str, str], Job] = OrderedDict()
        self._in_flight = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def submit(self, job: Job) -> None:
        """Queue ``job`` (replacing a waiting one of its pair and kind); call on the loop."""
        if self._closed:
            return
        self._loop = asyncio.get_running_loop()
        key = (job.pair, job.kind)
        self._waiting.pop(key, None)
        self._waiting[key] = job
        self._pump()

    @property
    def busy(self) -> int:
        """Jobs waiting or in the pool."""
        return len(self._waiting) + self._in_flight

    def _pump(self) -> None:
        while self._waiting and self._in_flight < IN_FLIGHT:
            _, job = self._waiting.popitem(last=False)
            pool = self._executor()
            try:
                future = pool.submit(_timed, job.compute)
            except BrokenProcessPool as exc:  # died between two submits
                self._restart(pool)
                self.complete(job, exc, 0.0)
                continue
            self._in_flight += 1
            future.add_done_callback(partial(self._from_pool, job, pool))

    def _from_pool(
        self, job: Job, pool: ProcessPoolExecutor, future: Future[tuple[Any, float]]
    ) -> None:
        """On the pool's thread: hand the outcome to the loop's thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(self._done, job, future, pool)

    def _done(self, job: Job, future: Future[tuple[Any, float]], pool: ProcessPoolExecutor) -> None:
        self._in_flight -= 1
        if self._closed or future.cancelled():  # closed while it computed or waited
            return
        exc = future.exception()
        if exc is None:
            result, compute_ms = future.result()
            self.complete(job, result, compute_ms)
        else:
            if isinstance(exc, BrokenProcessPool):
                self._restart(pool)
            self.complete(job, exc, 0.0)
        self._pump()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        """Drop a broken pool once (each of its jobs reports the breakage); the next submit
        starts a new worker."""
        if self._pool is broken:
            broken.shutdown(wait=False, cancel_futures=True)
            self._pool = None
            self.restarts += 1

    def close(self) -> None:
        """Stop the worker; jobs still waiting or computing are dropped (results of a
        stopping engine would not be written anyway)."""
        self._closed = True
        self._waiting.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
