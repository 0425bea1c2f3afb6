"""The chaos suite's stack: ``spreadbus up`` (embedded Redis, every service as a real process,
the sim source) on a data dir of its own, faults applied from outside, and the invariants
checked afterwards against Redis and the Parquet archive.

Every fault is timed from the moment it ends (the process killed, Redis back, the disk freed)
until every service beats again with status ``running`` (a killed service with a new pid).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import redis

from spreadbus.bus import keys
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.bus.health import judge
from spreadbus.proc import free_port, terminate
from spreadbus.testing.candles import minute_bars

SERVICES = ("logger", "gateway", "engine", "archivist", "web")
PAIRS = "ETHUSDT/BTCUSDT,SOLUSDT/ETHUSDT,BNBUSDT/BTCUSDT"
SYMBOLS = ("ETHUSDT", "BTCUSDT", "SOLUSDT", "BNBUSDT")
RECOVERY_LIMIT_S = 5.0


StreamId = tuple[int, int]


def parse_id(text: str | bytes) -> StreamId:
    raw = text.decode() if isinstance(text, bytes) else text
    ms, _, seq = raw.partition("-")
    return int(ms), int(seq or 0)


@dataclass
class FaultResult:
    name: str
    recovery_s: float | None  # None: not back to running within the wait
    # per symbol: the stream's last id before the fault and 2 s after the recovery; the
    # entries in between are this fault's ticks (the sim's clock need not be the wall clock)
    before: dict[str, StreamId] = field(default_factory=dict)
    after: dict[str, StreamId] = field(default_factory=dict)
    last_back: str = ""  # the service that took longest to be running again
    cold_start_s: float = 0.0  # same-run reference: importing that service's code afresh
    lost: int = 0
    duplicated: int = 0
    note: str = ""

    def holds(self, symbol: str, stream_id: str) -> bool:
        low, high = self.before.get(symbol), self.after.get(symbol)
        return low is not None and high is not None and low < parse_id(stream_id) <= high


def wait_until(predicate: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.05)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Stack:
    data_dir: Path
    redis_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    client: redis.Redis | None = None
    url: str = ""
    faults: list[FaultResult] = field(default_factory=list)
    started_s: float = 0.0  # from the first tick to every service running

    # -- life ------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("SPREADBUS_")},
            "SPREADBUS_DATA_DIR": str(self.data_dir),
            "SPREADBUS_SOURCE": "sim",
            "SPREADBUS_SPEED": "5",  # the sim's clock 5x: about 1,500 ticks/s on 4 symbols
            "SPREADBUS_PAIRS": PAIRS,
            "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
            "SPREADBUS_ARCHIVE_INTERVAL": "2s",
            "SPREADBUS_STREAM_RETENTION": "3600",  # keep every entry: the reference to check
            "SPREADBUS_WEB_PORT": str(self.web_port),
        }

    def prepare(self) -> None:
        """Before ``up``: the engine's cursor at 0-0 for every stream, so that its counts
        cover each stream from its first entry (the engine otherwise starts at the head)."""
        with EmbeddedRedis(self.data_dir, self.redis_port) as server:
            client = redis.Redis.from_url(server.url)
            cursor = {keys.tick_stream(s): "0-0" for s in SYMBOLS}
            cursor |= {keys.ghost_stream(s): "0-0" for s in SYMBOLS}
            client.hset(keys.engine_cursor(), mapping=cursor)
            client.close()

    def start(self) -> None:
        self.prepare()
        log = (self.data_dir / "up.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spreadbus", "up", "--redis-port", str(self.redis_port)],
            env=self.env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        url_file = self.data_dir / "redis" / "url"
        self.url = wait_until(
            lambda: url_file.exists() and url_file.read_text().strip(), 60, "Redis"
        )
        self.client = redis.Redis.from_url(self.url, socket_timeout=10)
        self.started_s = max(self.wait_running({}, 90).values())

    def stop(self) -> int:
        assert self.process is not None
        code = terminate(self.process, 90)
        if self.client is not None:
            self.client.close()
        return code

    def output(self) -> str:
        return (self.data_dir / "up.log").read_text(errors="replace")

    # -- health ----------------------------------------------------------------------------

    def beats(self) -> dict[str, Any]:
        assert self.client is not None
        try:
            pipe = self.client.pipeline(transaction=False)
            for name in SERVICES:
                pipe.hgetall(keys.health(name))
            raw = pipe.execute()
        except (redis.RedisError, OSError):
            return {}
        now = time.time()
        return {name: judge(beat, now) for name, beat in zip(SERVICES, raw, strict=True)}

    def pids(self) -> dict[str, int]:
        return {n: j.pid for n, j in self.beats().items() if j.pid is not None}

    def wait_running(
        self, old_pids: dict[str, int], within: float, since_ms: int = 0
    ) -> dict[str, float]:
        """Seconds until each service beats fresh with status running (a beat after
        ``since_ms``; the services in ``old_pids`` with another pid than that), each service
        timed from the start; raises if one is not back ``within``."""
        began = time.monotonic()
        back: dict[str, float] = {}

        def ready() -> bool:
            for name, seen in self.beats().items():
                if name in back:
                    continue
                fresh = int(seen.beat.get("last_beat_ms", 0)) >= since_ms
                if (
                    seen.status == "healthy" and seen.state == "running" and fresh
                    and not (name in old_pids and seen.pid == old_pids[name])
                ):  # fmt: skip
                    back[name] = time.monotonic() - began
            return len(back) == len(SERVICES)

        try:
            wait_until(ready, within, "every service running")
        except AssertionError:
            missing = [n for n in SERVICES if n not in back]
            raise AssertionError(f"not running within {within} s: {missing}") from None
        return back

    def not_running(self) -> str:
        return ", ".join(
            f"{n}: {j.status}/{j.state} {j.reason}" for n, j in self.beats().items()
            if not (j.status == "healthy" and j.state == "running")
        )  # fmt: skip

    # -- faults ----------------------------------------------------------------------------

    def heads(self) -> dict[str, StreamId]:
        assert self.client is not None
        out = {}
        for symbol in SYMBOLS:
            info: Any = self.client.xinfo_stream(keys.tick_stream(symbol))
            out[symbol] = parse_id(info["last-generated-id"])
        return out

    def fault(self, name: str, apply: Callable[[], dict[str, int]], settle_s: float = 3.0) -> None:
        """Apply a fault (it returns the pids that must change), then time the recovery."""
        time.sleep(settle_s)  # steady traffic before the fault
        before = self.heads()
        must_change = apply()
        ended = now_ms()
        try:
            back = self.wait_running(must_change, 60, since_ms=ended)
        except AssertionError as exc:
            recovery, note = None, f"{exc}; {self.not_running()}"
        else:
            recovery = max(back.values())
            note = ""
        slowest = max(back, key=lambda n: back[n]) if recovery is not None else ""
        time.sleep(2.0)
        after = wait_until(self._heads_or_none, 30, "Redis to answer")
        self.faults.append(FaultResult(name, recovery, before, after, last_back=slowest, note=note))

    def _heads_or_none(self) -> dict[str, StreamId] | None:
        try:
            return self.heads()
        except (redis.RedisError, OSError):
            return None

    def kill(self, service: str) -> dict[str, int]:
        pids = self.pids()
        os.kill(pids[service], signal.SIGKILL)
        return {service: pids[service]}

    def redis_pid(self) -> int:
        assert self.client is not None
        return int(self.client.info("server")["process_id"])

    def redis_restart(self) -> dict[str, int]:
        """SHUTDOWN (Redis fsyncs its AOF and exits); ``up`` restarts it on its files."""
        assert self.client is not None
        old = self.redis_pid()
        with contextlib.suppress(redis.ConnectionError):
            self.client.shutdown()
        wait_until(lambda: self._redis_pid_or_none() not in (None, old), 30, "Redis back")
        return {}

    def _redis_pid_or_none(self) -> int | None:
        try:
            return self.redis_pid()
        except (redis.RedisError, OSError):
            return None

    def client_kill(self) -> dict[str, int]:
        assert self.client is not None
        self.client.client_kill_filter(_type="normal", skipme=True)
        self.client.client_kill_filter(_type="pubsub", skipme=True)
        return {}

    def pause_redis(self, seconds: float) -> dict[str, int]:
        pid = self.redis_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)
        return {}

    def fill_disk(self, seconds: float) -> dict[str, int]:
        """Fill the archive's filesystem (a small tmpfs) for ``seconds``, then free it."""
        filler = self.data_dir / "archive" / "filler"
        with filler.open("wb") as handle, contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * (1 << 20))
                handle.flush()
        try:
            time.sleep(seconds)
        finally:
            filler.unlink()
        return {}

    def flush_functions(self) -> dict[str, int]:
        assert self.client is not None
        self.client.function_flush()
        return {}

    def delete_series(self, symbol: str) -> dict[str, int]:
        assert self.client is not None
        self.client.delete(keys.price_series(symbol))
        return {}


# -- invariants (with the stack stopped, on its Redis restarted from its files) -------------


@contextlib.contextmanager
def stored_redis(stack: Stack) -> Iterator[redis.Redis]:
    with EmbeddedRedis(stack.data_dir, stack.redis_port) as server:
        client = redis.Redis.from_url(server.url, socket_timeout=30)
        try:
            yield client
        finally:
            client.close()


def stream_ids(client: redis.Redis, key: str) -> list[str]:
    ids: list[str] = []
    start = "-"
    while True:
        chunk: Any = client.xrange(key, start, "+", count=20_000)
        if not chunk:
            return ids
        ids += [entry_id.decode() for entry_id, _ in chunk]
        start = "(" + ids[-1]


def archived_ticks(data_dir: Path) -> pd.DataFrame:
    columns = ["symbol", "venue", "ts", "trade_id", "price", "qty", "stream_id"]
    frame = pd.read_parquet(data_dir / "archive" / "ticks", columns=columns)
    frame["symbol"] = frame["symbol"].astype(str)
    return frame[frame["venue"] != "ghost"]


def tick_report(
    client: redis.Redis, ticks: pd.DataFrame, faults: list[FaultResult]
) -> dict[str, Any]:
    """Stream entries vs archived rows per symbol; lost and duplicated ticks per fault (the
    entries added from the fault's start to 2 s after its recovery)."""
    missing: list[str] = []
    extra: list[str] = []
    duplicate_rows = 0
    duplicate_trades: list[str] = []
    added_total = 0
    trimmed = 0
    for symbol in SYMBOLS:
        key = keys.tick_stream(symbol)
        ids = stream_ids(client, key)
        info: Any = client.xinfo_stream(key)
        added_total += int(info["entries-added"])
        trimmed += int(info["entries-added"]) - len(ids)
        rows = ticks[ticks["symbol"] == symbol]
        archived = rows["stream_id"].tolist()
        duplicate_rows += len(archived) - len(set(archived))
        missing_here = sorted(set(ids) - set(archived))
        missing += missing_here
        extra += sorted(set(archived) - set(ids))
        repeated_here = rows[rows.duplicated("trade_id", keep="first")]["stream_id"].tolist()
        duplicate_trades += repeated_here
        for fault in faults:
            fault.lost += sum(1 for i in missing_here if fault.holds(symbol, i))
            fault.duplicated += sum(1 for i in repeated_here if fault.holds(symbol, i))
    return {
        "entries_added": added_total,
        "trimmed": trimmed,
        "archived": len(ticks),
        "missing": len(missing),
        "extra": len(extra),
        "duplicate_rows": duplicate_rows,
        "duplicate_trade_ids": len(duplicate_trades),
    }


def candle_mismatches(data_dir: Path, ticks: pd.DataFrame) -> list[str]:
    """Archived 1m candles against candles computed from the archived ticks (every closed
    minute both hold, except the first: the run may have started inside it)."""
    candles = pd.read_parquet(data_dir / "archive" / "candles")
    candles["symbol"] = candles["symbol"].astype(str)
    problems: list[str] = []
    for symbol in SYMBOLS:
        real = ticks[ticks["symbol"] == symbol].sort_values(["ts", "trade_id"]).set_index("ts")
        expected = minute_bars(real[["price", "qty"]])
        got = candles[candles["symbol"] == symbol].drop_duplicates("ts", keep="last")
        got = got.set_index("ts").sort_index()
        common = got.index.intersection(expected.index)[1:]
        if len(common) == 0:
            problems.append(f"{symbol}: no closed minute to compare")
        for minute in common:
            for column in ("open", "high", "low", "close", "volume"):
                want, have = float(expected.at[minute, column]), float(got.at[minute, column])
                if abs(want - have) > 1e-9 * max(1.0, abs(want)):  # float sums: 1e-9 relative
                    problems.append(f"{symbol} {minute} {column}: archive {have} ticks {want}")
    return problems


def engine_mismatches(client: redis.Redis) -> list[str]:
    """The engine's processed + bad count per stream equals the entries up to its cursor."""
    raw: Any = client.hgetall(keys.engine_cursor())
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    counts = orjson.loads(fields.pop("#counts", "{}"))
    problems = []
    for stream, cursor in fields.items():
        processed, bad = counts.get(stream, (0, 0))
        upto: Any = client.xrange(stream, "-", cursor, count=10_000_000)
        if processed + bad != len(upto):
            problems.append(f"{stream}: counts {processed}+{bad}, entries up to cursor {len(upto)}")
    return problems


def duplicate_alerts(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    seen: set[tuple[str, str, int]] = set()
    twice = []
    for event in events:
        key = (event["rule_id"], event["pair"], int(event["time_ms"]))
        if key in seen:
            twice.append(key)
        seen.add(key)
    return twice


def log_report(in_stream: set[str], data_dir: Path) -> dict[str, int]:
    """Every entry of stream:logs (as it was when the logger had caught up) in the log
    files exactly once."""
    written: list[str] = []
    for path in sorted((data_dir / "logs").glob("spreadbus.jsonl*")):
        for line in path.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                record = orjson.loads(line)
                if isinstance(record, dict) and "stream_id" in record:
                    written.append(record["stream_id"])
    return {
        "events": len(in_stream),
        "lost": len(in_stream - set(written)),
        "duplicated": len(written) - len(set(written)),
    }


def drain_logs(stack: Stack, client: redis.Redis, url: str) -> set[str]:
    """Run the logger once more until it has acknowledged everything in stream:logs (the
    services' last events came after ``up`` stopped the logger); the ids it had then (its
    own "stopped" event comes after)."""
    env = {**stack.env(), "SPREADBUS_REDIS_URL": url}
    logger = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", "logger"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def drained() -> bool:
            groups: Any = client.xinfo_groups(keys.LOG_STREAM)
            group = next(g for g in groups if g["name"] == keys.LOG_GROUP.encode())
            return group["lag"] == 0 and group["pending"] == 0

        wait_until(drained, 60, "the logger to catch up")
        return set(stream_ids(client, keys.LOG_STREAM))
    finally:
        terminate(logger, 30)


def cold_start_s(stack: Stack, client: redis.Redis, url: str, service: str) -> float:
    """Same-run reference: seconds from starting ``spreadbus <service>`` afresh (its own data
    dir and port, the stack's Redis) to its first heartbeat with status running. What a
    restart costs on this machine at this load, before any recovery logic of ours."""
    scratch = stack.data_dir.parent / f"cold-{service}"
    scratch.mkdir(exist_ok=True)
    env = {
        **stack.env(), "SPREADBUS_REDIS_URL": url, "SPREADBUS_DATA_DIR": str(scratch),
        "SPREADBUS_WEB_PORT": str(free_port()),
    }  # fmt: skip
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", service], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:

        def running() -> bool:
            beat: Any = client.hgetall(keys.health(service))
            seen = judge(beat, time.time())
            return seen.pid == process.pid and seen.state == "running"

        wait_until(running, 120, f"a fresh {service}")
        return time.monotonic() - began
    finally:
        terminate(process, 30)


def table(faults: list[FaultResult]) -> str:
    head = f"{'fault':<28} {'recovery_s':>10} {'last back':>10} {'cold_start_s':>12}"
    lines = [f"{head} {'ticks_lost':>10} {'ticks_dup':>10}  note"]
    for f in faults:
        recovery = f"{f.recovery_s:.2f}" if f.recovery_s is not None else "never"
        lines.append(
            f"{f.name:<28} {recovery:>10} {f.last_back:>10} {f.cold_start_s:>12.2f} "
            f"{f.lost:>10} {f.duplicated:>10}  {f.note}"
        )
    return "\n".join(lines)


class AlertTap:
    """Every alert published on channel:alerts while the stack runs (a thread of its own,
    resubscribing after faults)."""

    def __init__(self, url_of: Callable[[], str]) -> None:
        import threading

        self.events: list[dict[str, Any]] = []
        self._url_of = url_of
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client = redis.Redis.from_url(self._url_of(), socket_timeout=2)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(keys.CHANNEL_ALERTS)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None:
                        self.events.append(orjson.loads(message["data"]))
            except (redis.RedisError, OSError, AssertionError):
                time.sleep(0.2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
