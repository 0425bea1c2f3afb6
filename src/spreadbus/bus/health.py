"""A service's health, in one place: what it derives from its own tasks, how the heartbeat hash
``state:health:{service}`` is laid out, and when a heartbeat counts as stale.

Written by the lifecycle (:mod:`spreadbus.bus.service`), read by ``spreadbus <service> --check``,
``spreadbus up`` (:mod:`spreadbus.supervisor`) and ``/api/health``.

A service owns a :class:`HealthState`: the tasks it cannot work without (a gateway's flusher,
the archivist's reader, a config watcher) and named conditions it sets itself ("disk full",
"redis unavailable"). Its ``status`` is the worst of them: ``running``, ``degraded`` (working,
with a reason: data may be late) or ``failing`` (not doing its job). An essential task that has
ended makes the service ``failing``, whatever its event loop still does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import orjson

State = Literal["running", "degraded", "failing"]
STATES: Final[tuple[State, ...]] = ("running", "degraded", "failing")
Status = Literal["healthy", "stale", "down"]  # what a reader sees: fresh, too old, absent

STALE_BEATS: Final = 3  # a heartbeat is stale once this many intervals have passed ...
STALE_MIN_S: Final = 5.0  # ... and at least this long
# The lifecycle's own fields; everything else in the hash is one of the service's text fields.
BEAT_FIELDS: Final = (
    "service", "pid", "started_ms", "last_beat_ms", "interval_s", "status", "reason", "counters",
)  # fmt: skip


def stale_after_s(interval_s: float) -> float:
    """How old a heartbeat may get before its service counts as gone (also the key's TTL)."""
    return max(STALE_BEATS * interval_s, STALE_MIN_S)


@dataclass(frozen=True, slots=True)
class Verdict:
    state: State
    reason: str = ""


RUNNING: Final = Verdict("running")


def worst(verdicts: Iterable[Verdict]) -> Verdict:
    """The most severe state, with the reasons of everything in that state."""
    found = list(verdicts)
    if not found:
        return RUNNING
    rank = max(STATES.index(v.state) for v in found)
    state = STATES[rank]
    reasons = [v.reason for v in found if v.state == state and v.reason]
    return Verdict(state, "; ".join(reasons))


def task_verdict(name: str, task: asyncio.Task[Any]) -> Verdict:
    """A running essential task is fine; one that ended, for whatever cause, is not."""
    if not task.done():
        return RUNNING
    if task.cancelled():
        return Verdict("failing", f"{name} was cancelled")
    failure = task.exception()
    if failure is not None:
        return Verdict("failing", f"{name} died: {failure!r}"[:300])
    return Verdict("failing", f"{name} ended")


@dataclass
class HealthState:
    """The tasks a service cannot work without, and the conditions it reports itself."""

    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    conditions: dict[str, Verdict] = field(default_factory=dict)

    def spawn(self, name: str, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Start an essential task, watched under ``name``."""
        task: asyncio.Task[Any] = asyncio.create_task(work, name=name)
        self.tasks[name] = task
        return task

    def watch(self, name: str, task: asyncio.Task[Any]) -> None:
        self.tasks[name] = task

    def unwatch(self, name: str) -> None:
        """Stop watching (before a planned end of the task)."""
        self.tasks.pop(name, None)

    def set(self, name: str, state: State, reason: str) -> None:
        """Report a condition (``running`` clears it)."""
        if state == "running":
            self.conditions.pop(name, None)
        else:
            self.conditions[name] = Verdict(state, reason)

    def clear(self, name: str) -> None:
        self.conditions.pop(name, None)

    def verdict(self) -> Verdict:
        found = list(self.conditions.values())
        found += [task_verdict(name, task) for name, task in self.tasks.items()]
        return worst(found)


def beat_mapping(
    service: str,
    *,
    pid: int,
    started_ms: int,
    now_ms: int,
    interval_s: float,
    verdict: Verdict,
    fields: Mapping[str, Any],
) -> dict[str, str | int | float]:
    """The heartbeat hash: the lifecycle's fields, the service's text/number fields (for
    dashboards), and everything the service reported as one ``counters`` JSON."""
    beat: dict[str, str | int | float] = {
        k: v
        for k, v in fields.items()
        if isinstance(v, str | int | float) and not isinstance(v, bool) and k not in BEAT_FIELDS
    }
    beat |= {
        "service": service,
        "pid": pid,
        "started_ms": started_ms,
        "last_beat_ms": now_ms,
        "interval_s": interval_s,
        "status": verdict.state,
        "reason": verdict.reason,
        "counters": orjson.dumps(dict(fields), default=str).decode(),
    }
    return beat


@dataclass(frozen=True, slots=True)
class Judgement:
    """One service's heartbeat as a reader sees it at ``now``."""

    status: Status
    state: State
    reason: str
    age_s: float | None = None
    beat: Mapping[str, str] = field(default_factory=dict)  # the hash, decoded
    counters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Fresh and not failing: what ``--check`` exits 0 on."""
        return self.status == "healthy" and self.state != "failing"

    @property
    def pid(self) -> int | None:
        text = self.beat.get("pid", "")
        return int(text) if text.isdigit() else None


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def judge(raw: Mapping[Any, Any], now_s: float) -> Judgement:
    """Read a heartbeat hash (bytes or text): ``down`` without one, ``stale`` when it is older
    than :func:`stale_after_s` (or unreadable), else ``healthy`` with the service's own state.
    A missing or stale heartbeat is ``failing``."""
    if not raw:
        return Judgement("down", "failing", "not running (no heartbeat)")
    beat = {_text(k): _text(v) for k, v in raw.items()}
    try:
        last_ms = int(beat["last_beat_ms"])
        interval_s = float(beat.get("interval_s", 2.0))
        counters = orjson.loads(beat.get("counters", "{}"))
    except (KeyError, ValueError, orjson.JSONDecodeError):
        return Judgement("stale", "failing", "unreadable heartbeat", beat=beat)
    if not isinstance(counters, dict):
        counters = {}
    age_s = max(now_s - last_ms / 1000, 0.0)
    if age_s > stale_after_s(interval_s):
        reason = f"no heartbeat for {age_s:.1f} s"
        return Judgement("stale", "failing", reason, round(age_s, 3), beat, counters)
    status = beat.get("status", "running")
    if status in STATES:
        state: State = status
        reason = beat.get("reason", "")
    else:
        state, reason = "degraded", f"unknown status {status!r}"
    return Judgement("healthy", state, reason, round(age_s, 3), beat, counters)


def describe(name: str, judgement: Judgement) -> str:
    """One line for a person: ``engine: running, pid 42, last beat 0.4 s ago``."""
    if judgement.status == "down":
        return f"{name}: {judgement.reason}"
    pid = f", pid {judgement.pid}" if judgement.pid is not None else ""
    if judgement.status == "stale":
        return f"{name}: stale heartbeat ({judgement.reason}){pid}"
    reason = f" ({judgement.reason})" if judgement.reason else ""
    return f"{name}: {judgement.state}{reason}{pid}, last beat {judgement.age_s:.1f} s ago"
