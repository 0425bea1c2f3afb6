"""How a spreadbus service lives and dies.

:func:`run_service` is the whole lifecycle of ``spreadbus gateway|engine|logger|archivist``:
connect (waiting for Redis if it is not up yet), run until SIGINT/SIGTERM or until the service
returns, beat a heartbeat into ``state:health:{service}`` (with a TTL; layout and state in
:mod:`spreadbus.bus.health`), and close everything in ``finally``. The heartbeat keeps beating
whatever the service's ``health()`` does; the log gets the service's state changes and a
periodic summary, not every beat. :func:`check_health` is ``spreadbus <service> --check``.

Structured logging: services log with :class:`EventLog` (``log.info("reconnected", delay=1.5)``);
each event goes to the console and, as a JSON :class:`LogEvent`, to ``stream:logs`` (durable:
the logger reads it with a consumer group) and ``channel:logs`` (live tails).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import redis.exceptions
from redis.typing import EncodableT, FieldT

from spreadbus.bus import keys
from spreadbus.bus.codec import LEVELS, Level, LogEvent, log_event_to_json
from spreadbus.bus.configstore import replace_pairs_from_flag
from spreadbus.bus.connect import AsyncRedis, RedisUnavailableError, connect, describe, resolve_url
from spreadbus.bus.embedded import stale_url, url_file
from spreadbus.bus.errors import REDIS_ERRORS as REDIS_ERRORS  # noqa: PLC0414 (re-export)
from spreadbus.bus.health import (
    HealthState,
    Verdict,
    beat_mapping,
    judge,
    stale_after_s,
    worst,
)
from spreadbus.bus.health import describe as describe_health
from spreadbus.config import Settings

LOG_QUEUE_LIMIT = 10_000
LOG_STREAM_KEEP_MS = 24 * 3600 * 1000  # stream:logs keeps about a day (trimmed by MINID ~)
STALE_URL_AFTER_S = 10.0  # nothing listening at the url file's address this long: stale
SUMMARY_EVERY_S = 60.0  # a "health" summary event at most this often (and on state changes)
STOP_GRACE = 15.0  # seconds a service gets to finish after the stop signal
CLEANUP_STEP = 2.0  # seconds each cleanup step (close, last log flush) may take
HARD_EXIT_AFTER = 30.0  # after a stop request, the process exits by force past this many s


class StopRequest:
    """The stop of one lifecycle. Requesting it also arms a last-resort timer that ends the
    process if the lifecycle has not finished by then: whatever the event loop is stuck on, a
    stopped service stops. A lifecycle that finishes disarms it."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self._timer: threading.Timer | None = None

    def request(self) -> None:
        if self.event.is_set():
            return
        self.event.set()
        self._timer = threading.Timer(STOP_GRACE + HARD_EXIT_AFTER, _hard_exit)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def _hard_exit() -> None:
    sys.stderr.write("spreadbus: stop did not complete in time; exiting by force\n")
    sys.stderr.flush()
    os._exit(1)


class EventLog:
    """Structured events for one service: ``log.warning("gap", symbol="BTCUSDT", missed=3)``."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._logger = logging.getLogger(f"spreadbus.{service}")

    def log(self, level: Level, event: str, **fields: Any) -> None:
        self._logger.log(logging.getLevelName(level), event, extra={"fields": fields})

    def debug(self, event: str, **fields: Any) -> None:
        self.log("DEBUG", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log("INFO", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("WARNING", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("ERROR", event, **fields)


def _fields_text(fields: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in fields.items())


class ConsoleFormatter(logging.Formatter):
    """``02:48:15.123 INFO    gateway  reconnected delay=1.5``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        service = record.name.removeprefix("spreadbus.")
        fields = _fields_text(getattr(record, "fields", {}) or {})
        line = f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} {service:<9} "
        line += f"{record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class LogPublisher(logging.Handler):
    """Forwards log records to ``stream:logs`` and ``channel:logs`` from a background task,
    never blocking.

    ``emit`` only appends to a bounded queue; when Redis is slow or down the oldest events are
    dropped and counted (``dropped``) rather than stalling the hot path. A failed send of any
    kind keeps its events for the next attempt and is counted (``send_failures``,
    ``last_send_error``): besides Redis errors, redis-py's cluster client was seen raising an
    internal ``AttributeError`` mid-failover, and a publisher that died of it left the service
    failing for good with its logs silenced.
    """

    def __init__(self, service: str) -> None:
        super().__init__(logging.DEBUG)
        self.service = service
        self.queue: collections.deque[bytes] = collections.deque(maxlen=LOG_QUEUE_LIMIT)
        self.dropped = 0
        self.send_failures = 0
        self.last_send_error = ""
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname if record.levelname in LEVELS else "INFO"
        fields = dict(getattr(record, "fields", {}) or {})
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = repr(record.exc_info[1])
        service = record.name.removeprefix("spreadbus.").split(".")[0]
        event = LogEvent(level=level, service=service, event=record.getMessage(), fields=fields)
        self.publish(event)

    def publish(self, event: LogEvent) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(log_event_to_json(event))
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed at exit
                self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, client: AsyncRedis) -> None:
        """Drain the queue into Redis until cancelled; survive Redis outages."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            # what was logged before this task ran (e.g. "started") goes out at once
            await self.flush_to(client)
            # a failed flush keeps its events: try again within a second even if none follow
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()

    async def flush_to(self, client: AsyncRedis) -> None:
        while self.queue:
            batch = [self.queue.popleft() for _ in range(min(len(self.queue), 500))]
            # the stream first: once it holds an event, a restarted logger still gets it
            minid = int(time.time() * 1000) - LOG_STREAM_KEEP_MS
            try:
                async with client.pipeline(transaction=False) as pipe:
                    for payload in batch:
                        pipe.xadd(
                            keys.LOG_STREAM, {keys.LOG_STREAM_FIELD: payload},
                            minid=minid, approximate=True,
                        )  # fmt: skip
                    for payload in batch:  # not pipe.publish: refused in a cluster pipeline
                        pipe.execute_command("PUBLISH", keys.CHANNEL_LOGS, payload)
                    await pipe.execute()
            except Exception as exc:  # whatever failed, the events are kept (see the class)
                self.queue.extendleft(reversed(batch))  # keep them for the next attempt
                self.send_failures += 1
                self.last_send_error = repr(exc)[:300]
                await asyncio.sleep(0.5)
                return


def configure_logging(service: str, level: str, console_level: str | None = None) -> LogPublisher:
    """Console + Redis logging for this process; returns the Redis handler."""
    root = logging.getLogger("spreadbus")
    root.handlers.clear()
    root.setLevel(logging.DEBUG)
    root.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level or level)
    console.setFormatter(ConsoleFormatter())
    publisher = LogPublisher(service)
    publisher.setLevel(level)
    root.addHandler(console)
    root.addHandler(publisher)
    return publisher


class Service(Protocol):
    """What a service implements; :func:`run_service` does the rest."""

    name: str

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set (or until done, e.g. a finite replay)."""

    def health(self) -> Mapping[str, Any]:
        """Counters for the heartbeat (flat, JSON-serializable values). A service may also
        have a ``health_state`` (:class:`~spreadbus.bus.health.HealthState`): its essential
        tasks and conditions, from which the heartbeat's ``status`` is derived."""

    async def close(self) -> None:
        """Release resources; called once, in ``finally``."""


ServiceFactory = Callable[[Settings, AsyncRedis, EventLog], Service]


async def _connect_when_ready(settings: Settings, log: EventLog, stop: asyncio.Event) -> AsyncRedis:
    """Connect, waiting (capped backoff) while Redis is not up yet, e.g. still loading its AOF."""
    delay = 0.2
    warned = False
    stale_since: float | None = None
    while True:
        url = resolve_url(settings)
        client = connect(settings, url)
        try:
            await client.ping()
            return client
        except (*REDIS_ERRORS, redis.exceptions.BusyLoadingError) as exc:
            await client.aclose()
            if not warned:
                log.warning("waiting for redis", url=describe(url), error=str(exc))
                warned = True
            if settings.redis_url is None and stale_url(settings.data_dir) == url:
                # nothing listens where <data-dir>/redis/url points; a supervisor restarting
                # its Redis takes a second or two, a server killed with -9 never comes back
                stale_since = stale_since or time.monotonic()
                if time.monotonic() - stale_since > STALE_URL_AFTER_S:
                    raise RedisUnavailableError(
                        f"stale {url_file(settings.data_dir)}: nothing listens at "
                        f"{describe(url)} (its Redis was killed?); start one with `spreadbus up` "
                        f"or `spreadbus redis --data-dir {settings.data_dir}`, or give --redis-url"
                    ) from None
            else:
                stale_since = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        if stop.is_set():
            raise RedisUnavailableError("stopped while waiting for Redis")
        delay = min(delay * 2, 1.0)  # a service is back within a second of Redis


class Heartbeat:
    """Beats ``state:health:{service}`` every interval, whatever the service does; logs the
    service's state when it changes, and a summary every :data:`SUMMARY_EVERY_S`."""

    def __init__(
        self,
        client: AsyncRedis,
        service: Service,
        lifecycle: HealthState,
        publisher: LogPublisher,
        settings: Settings,
        started_ms: int,
    ) -> None:
        self.client = client
        self.service = service
        self.lifecycle = lifecycle
        self.publisher = publisher
        self.interval = settings.heartbeat_interval
        self.started_ms = started_ms
        self.log = EventLog(service.name)
        self.last = Verdict("running")
        self._summary_at = time.monotonic() + SUMMARY_EVERY_S

    def sample(self) -> tuple[Verdict, dict[str, Any]]:
        """The service's state and counters now; a ``health()`` that raises is a failing
        state with its reason, not a missing heartbeat."""
        verdicts = [self.lifecycle.verdict()]
        own: HealthState | None = getattr(self.service, "health_state", None)
        fields: dict[str, Any] = {}
        try:
            if own is not None:
                verdicts.append(own.verdict())
            fields = dict(self.service.health())
        except Exception as exc:
            verdicts.append(Verdict("failing", f"health() raised {exc!r}"[:300]))
        fields["log_dropped"] = self.publisher.dropped
        fields["log_send_failures"] = self.publisher.send_failures
        return worst(verdicts), fields

    async def beat(self, stopping: bool) -> None:
        verdict, fields = self.sample()
        if stopping:  # tasks end on a stop: that is no failure
            verdict = Verdict(self.last.state, "stopping")
        elif verdict != self.last:
            level: Level = "INFO" if verdict.state == "running" else "WARNING"
            self.log.log(level, "state", state=verdict.state, reason=verdict.reason,
                         was=self.last.state)  # fmt: skip
            self.last = verdict
        if time.monotonic() >= self._summary_at:
            self._summary_at = time.monotonic() + SUMMARY_EVERY_S
            self.log.info("health", state=verdict.state, **fields)
        key = keys.health(self.service.name)
        beat = beat_mapping(
            self.service.name, pid=os.getpid(), started_ms=self.started_ms,
            now_ms=int(time.time() * 1000), interval_s=self.interval, verdict=verdict,
            fields=fields,
        )  # fmt: skip
        mapping: dict[FieldT, EncodableT] = {k: v for k, v in beat.items()}
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.hset(key, mapping=mapping)
                pipe.pexpire(key, int(stale_after_s(self.interval) * 1000))
                await pipe.execute()
        except (*REDIS_ERRORS, redis.exceptions.ResponseError):
            pass  # the service's own loop reports the outage; the key simply expires

    async def run(self, stop: asyncio.Event) -> None:
        while True:
            try:
                await self.beat(stop.is_set())
            except Exception as exc:  # never stop beating: say it, and beat again
                self.log.error("heartbeat failed", error=repr(exc))
            await asyncio.sleep(self.interval)


async def _lifecycle(factory: ServiceFactory, name: str, settings: Settings) -> int:
    publisher = configure_logging(name, settings.log_level, settings.console_level)
    log = EventLog(name)
    stop_request = StopRequest()
    stop = stop_request.event
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop_request.request)
    started_ms = int(time.time() * 1000)
    try:
        client = await _connect_when_ready(settings, log, stop)
    except RedisUnavailableError as exc:
        print(f"spreadbus {name}: {exc}", file=sys.stderr)
        stop_request.disarm()
        return 1
    if settings.pairs_override:
        try:
            replaced = await replace_pairs_from_flag(client, settings.pairs)
        except (*REDIS_ERRORS, redis.exceptions.ResponseError) as exc:
            log.error("could not apply --pairs", error=str(exc))
        else:
            if replaced:
                log.warning(replaced)
    service: Service | None = None
    tasks: list[asyncio.Task[None]] = []
    own = HealthState()  # the lifecycle's own essential task: the log publisher
    code = 0
    try:
        tasks.append(own.spawn("log publisher", publisher.run(client)))
        service = factory(settings, client, log)
        heartbeat = Heartbeat(client, service, own, publisher, settings, started_ms)
        tasks.append(asyncio.create_task(heartbeat.run(stop), name="heartbeat"))
        log.info("started", pid=os.getpid())
        work = asyncio.create_task(service.run(stop), name=f"{name}-main")
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({work, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stop_request.request()
        stopper.cancel()
        # asyncio.wait, not wait_for: wait_for would wait forever for a task that swallows its
        # cancellation; here a service that ignores the stop is abandoned after the grace time.
        await asyncio.wait({work}, timeout=STOP_GRACE)
        if not work.done():
            log.error("did not stop in time; abandoned", grace_s=STOP_GRACE)
            work.cancel()
            await asyncio.wait({work}, timeout=1)
            code = 1
        elif not work.cancelled() and (failure := work.exception()) is not None:
            log.error("crashed", error=repr(failure), exc_info=failure)
            code = 1
    finally:
        # Every step is bounded: with Redis gone, a cancelled client call or a close can
        # otherwise wait forever, and a stopping service must stop.
        own.tasks.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLEANUP_STEP)
        if service is not None:
            try:
                await asyncio.wait_for(service.close(), STOP_GRACE)
            except Exception as exc:
                log.error("close failed", error=repr(exc))
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.delete(keys.health(name)), CLEANUP_STEP)
        log.info("stopped", code=code)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(publisher.flush_to(client), CLEANUP_STEP)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.aclose(), CLEANUP_STEP)
        stop_request.disarm()
    return code


def run_service(factory: ServiceFactory, name: str, settings: Settings) -> int:
    """Run a service in this process until it stops; returns the process exit code."""
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(_lifecycle(factory, name, settings))
    except KeyboardInterrupt:
        code = 130
    # asyncio.run() would wait forever for a task that swallows its cancellation; give the
    # leftovers a bounded chance, then leave without them.
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.wait(leftovers, timeout=2))
    if any(not task.done() for task in leftovers):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 1)
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    return code


def check_health(name: str, settings: Settings) -> tuple[bool, str]:
    """``spreadbus <service> --check``: a fresh heartbeat whose state is not ``failing``."""
    from spreadbus.bus.connect import connect_sync  # noqa: PLC0415 (keep import light)

    try:
        client = connect_sync(settings)
        beat = client.hgetall(keys.health(name))
    except RedisUnavailableError as exc:
        return False, f"{name}: {exc}"
    except (*REDIS_ERRORS, redis.exceptions.RedisError) as exc:
        return False, f"{name}: cannot reach Redis ({exc})"
    seen = judge(beat, time.time())
    return seen.ok, describe_health(name, seen)
