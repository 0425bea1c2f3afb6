"""Deferred analytics work, run a slice at a time so the tick path never waits long.

ADF, Hurst, Engle-Granger and the OLS refit cost about a millisecond each on a 300-bar
window; run for 25 pairs inside one batch they would hold every tick behind them for tens of
milliseconds. The engine instead queues them (:class:`~spreadbus.engine.pairstate.Job`) and,
after each batch is written, runs jobs until a small time budget is spent. A newer job of the
same pair and kind replaces one still waiting (after a catch-up only the latest window
matters). Threads would not help: these are mostly Python-level work holding the GIL.

A job whose compute is a pure call (:attr:`Job.offloadable`: the OU fit and the window
statistics) is handed to :attr:`JobQueue.offload` when the service set one (a worker process,
:mod:`spreadbus.engine.offload`); its outcome comes back through :meth:`JobQueue.complete`
on the loop's thread and is applied there. Without an offload (tests, the research tools)
every job runs in place.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from spreadbus.engine.pairstate import Job


@dataclass(slots=True)
class KindStats:
    """Runs and durations of one job kind since the last report."""

    runs: int = 0
    total_ms: float = 0.0
    max_ms: float = 0.0

    def add(self, ms: float) -> None:
        self.runs += 1
        self.total_ms += ms
        self.max_ms = max(self.max_ms, ms)


@dataclass(slots=True)
class JobQueue:
    clock: Callable[[], float] = time.perf_counter
    offload: Callable[[Job], None] | None = None
    _jobs: OrderedDict[tuple[str, str], Job] = field(default_factory=OrderedDict)
    _completed: list[Job] = field(default_factory=list)
    stats: dict[str, KindStats] = field(default_factory=dict)
    failures: int = 0
    last_error: str = ""

    def __len__(self) -> int:
        return len(self._jobs)

    def add(self, job: Job) -> None:
        key = (job.pair, job.kind)
        self._jobs.pop(key, None)
        self._jobs[key] = job

    def drop_pair(self, pair: str) -> None:
        for key in [k for k in self._jobs if k[0] == pair]:
            del self._jobs[key]

    def run(self, budget_s: float) -> list[Job]:
        """Run waiting jobs, oldest first, until ``budget_s`` is spent (at least one job);
        returns the jobs that ran here and those offloaded ones completed since the last
        call. A job that raises is counted and dropped: one bad window must not stop the
        engine."""
        done, self._completed = self._completed, []
        start = self.clock()
        while self._jobs:
            _, job = self._jobs.popitem(last=False)
            if self.offload is not None and job.offloadable:
                self.offload(job)
                continue
            began = self.clock()
            try:
                job.run()
            except Exception as exc:  # logged by the service through last_error
                self._failed(job, exc)
            finally:
                ended = self.clock()
                self.stats.setdefault(job.kind, KindStats()).add((ended - began) * 1000.0)
            done.append(job)
            if ended - start >= budget_s:
                break
        return done

    def complete(self, job: Job, outcome: object, compute_ms: float) -> None:
        """An offloaded job's result (or the exception it raised) after ``compute_ms`` of
        work elsewhere: applied now, returned by the next :meth:`run`."""
        self.stats.setdefault(job.kind, KindStats()).add(compute_ms)
        if isinstance(outcome, BaseException):
            self._failed(job, outcome)
        else:
            try:
                job.apply(outcome)
            except Exception as exc:
                self._failed(job, exc)
        self._completed.append(job)

    @property
    def has_completed(self) -> bool:
        """Offloaded results applied but not yet returned by :meth:`run` (to be written)."""
        return bool(self._completed)

    def _failed(self, job: Job, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{job.kind} {job.pair}: {exc!r}"

    def take_stats(self) -> dict[str, KindStats]:
        stats, self.stats = self.stats, {}
        return stats
