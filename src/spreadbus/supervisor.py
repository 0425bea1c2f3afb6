"""``spreadbus up``: an embedded Redis and every built service, each in its own OS process.

Children run in their own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops them in order (producers first, the logger last, Redis after everything).
Each child also asks the kernel for SIGTERM if the supervisor dies (PR_SET_PDEATHSIG), so even
``kill -9`` of ``up`` leaves no orphans. A crashed child is restarted at once the first time,
then with capped exponential backoff (1 s, 2 s, ...); a child that ran for a while counts its
next crash as a first one again. A child that exits with 2 (a bad setting: restarting cannot
help) is stopped for good, with its reason. The embedded Redis is
watched too: if it dies it is restarted on its own files (same port, password and AOF), and the
services reconnect by themselves. An external Redis is checked for the TimeSeries module first.
The status line shows each service's state from its heartbeat (:mod:`spreadbus.bus.health`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis
from rich.console import Console

from spreadbus.bus import keys
from spreadbus.bus.configstore import replace_pairs_from_flag
from spreadbus.bus.connect import any_node, connect, connect_sync, describe
from spreadbus.bus.embedded import EmbeddedRedis, EmbeddedRedisError, stale_url, url_file
from spreadbus.bus.health import judge
from spreadbus.config import Settings
from spreadbus.proc import die_with_parent, terminate
from spreadbus.services import SERVICES, STOP_ORDER

FIRST_RESTART_S = 0.0  # a crash after a good run: back at once (a kill -9 costs no wait)
BACKOFF_FIRST = 1.0  # the wait before the second restart of a crash loop; doubling from here
BACKOFF_CAP = 30.0
STABLE_AFTER = 30.0  # seconds of uptime after which a crash counts as a fresh first crash
STOP_TIMEOUT = 20.0
STATUS_EVERY = 2.0  # s between looks at the heartbeats
EXIT_BAD_SETTING = 2  # the CLI's exit status for a setting it cannot use: never restarted
REDIS_RESTART_CAP = 10.0  # s between attempts to bring a dead embedded Redis back, at most


class RedisModuleMissingError(RuntimeError):
    """The external Redis cannot run spreadbus (no TimeSeries): one line for the user."""


def check_timeseries(url: str, settings: Settings) -> None:
    """Fail with one clear line if the Redis at ``url`` lacks the TimeSeries commands."""
    client = connect_sync(settings, url)
    try:
        # reads no key: an empty answer with the module, "unknown command" without it
        client.execute_command(  # type: ignore[no-untyped-call]
            "TS.QUERYINDEX", "spreadbus_probe=1", **any_node(client)
        )
    except redis.ResponseError as exc:
        if "unknown command" in str(exc).lower():
            raise RedisModuleMissingError(
                f"Redis at {describe(url)} has no TimeSeries module (TS.QUERYINDEX unknown): use "
                "Redis 8, Redis Stack, or load redistimeseries.so; or drop --redis-url for the "
                "embedded one"
            ) from None
    except (redis.RedisError, OSError) as exc:
        raise RedisModuleMissingError(f"cannot reach Redis at {describe(url)}: {exc}") from None
    finally:
        client.close()


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = FIRST_RESTART_S
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)  # exit codes, newest last
    given_up: str | None = None  # why it is not restarted any more
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the instance of engine-2

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None


class Supervisor:
    def __init__(self, settings: Settings, duration: float | None, console: Console) -> None:
        self.settings = settings
        self.duration = duration
        self.console = console
        self.stopping = False
        self.redis: EmbeddedRedis | None = None
        self.children: dict[str, Child] = {}
        self._status_client: redis.Redis | redis.RedisCluster | None = None
        self._last_status = ""
        self._redis_backoff = BACKOFF_FIRST
        self._redis_retry_at = 0.0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            self.console.print(f"[bold]{signal.Signals(signum).name}[/]: stopping everything")
        self.stopping = True

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {text}", highlight=False)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        logs = self.settings.data_dir / "logs"
        try:
            logs.mkdir(parents=True, exist_ok=True)
            url = self.settings.redis_url
            if url is None:
                if stale_url(self.settings.data_dir):  # left by an `up` killed with -9
                    stale = url_file(self.settings.data_dir)
                    self.say(f"redis    removing the stale {stale} of an earlier run")
                    stale.unlink(missing_ok=True)
                self.redis = EmbeddedRedis(self.settings.data_dir, self.settings.redis_port)
                url = self.redis.start()
                self.say(f"redis    embedded Redis 7.4 + timeseries at {describe(url)}")
            else:
                try:
                    check_timeseries(url, self.settings)
                except RedisModuleMissingError as exc:
                    self.say(f"[bold red]redis    {exc}[/]")
                    return 1
                self.say(f"redis    using {describe(url)}")
            if self.settings.pairs_override:
                self._replace_pairs(url)
            env = dict(os.environ)
            env.update(self.settings.child_environment())
            env["SPREADBUS_REDIS_URL"] = url
            env.setdefault("SPREADBUS_CONSOLE_LEVEL", "WARNING")
            for spec in SERVICES.values():
                if not spec.built:
                    self.say(f"{spec.name:<8} not built yet, skipped")
                    continue
                for name, extra in instances(spec.name, self.settings):
                    child = Child(
                        name,
                        [sys.executable, "-m", "spreadbus", spec.name],
                        logs / f"{name}.console.log",
                        extra_env=extra,
                    )
                    self.children[name] = child
                    self._start(child, env)
            if "web" in self.children:
                host, port = self.settings.web_host, self.settings.web_port
                self.say(f"[bold green]web      http://{host}:{port}  (API: /api/docs)[/]")
            self.say(f"data     {self.settings.data_dir.resolve()}  (Ctrl-C stops)")
            self._status_client = connect_sync(self.settings, url)
            self._watch(env)
            return 0
        finally:
            self._stop_all()

    def _replace_pairs(self, url: str) -> None:
        """A typed ``--pairs`` wins over the stored set, once, before any service starts."""

        async def replace() -> str | None:
            client = connect(self.settings, url)
            try:
                return await replace_pairs_from_flag(client, self.settings.pairs)
            finally:
                await client.aclose()

        message = asyncio.run(replace())
        if message:
            self.say(f"[bold]pairs    {message}[/]")

    def _start(self, child: Child, env: dict[str, str]) -> None:
        out = child.log_path.open("ab")
        try:
            child.process = subprocess.Popen(
                child.argv,
                env={**env, **child.extra_env},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,  # noqa: PLW1509 (only a prctl call)
            )
        finally:
            out.close()
        child.started_at = time.monotonic()
        child.restart_at = None
        self.say(f"{child.name:<8} started, pid {child.pid}")

    def _watch(self, env: dict[str, str]) -> None:
        deadline = time.monotonic() + self.duration if self.duration else None
        next_status = time.monotonic() + STATUS_EVERY
        while not self.stopping:
            now = time.monotonic()
            if now >= next_status:
                self._show_status()
                next_status = now + STATUS_EVERY
            if deadline is not None and now >= deadline:
                self.say(f"--duration {self.duration:g} s reached")
                return
            self._tend_redis(now)
            for child in self.children.values():
                self._tend(child, env, now)
            time.sleep(0.1)

    def _tend_redis(self, now: float) -> None:
        """Bring a dead embedded Redis back on its own files; the services reconnect."""
        server = self.redis
        if server is None or now < self._redis_retry_at:
            return
        if server.process is not None:
            code = server.process.poll()
            if code is None:
                return
            self.say(f"[yellow]redis    exited with code {code}; restarting on its files[/]")
            server.process = None
        try:
            server.start()
        except EmbeddedRedisError as exc:
            self._redis_retry_at = now + self._redis_backoff
            wait_s = self._redis_backoff
            self.say(f"[red]redis    restart failed: {exc}; trying again in {wait_s:.0f} s[/]")
            self._redis_backoff = min(self._redis_backoff * 2, REDIS_RESTART_CAP)
            return
        self._redis_backoff = BACKOFF_FIRST
        self.say(f"redis    restarted at {describe(server.url)}")

    def _tend(self, child: Child, env: dict[str, str], now: float) -> None:
        if child.given_up is not None:
            return
        if child.process is not None:
            code = child.process.poll()
            if code is None:
                return
            child.history.append(code)
            child.process = None
            if code == EXIT_BAD_SETTING:
                child.given_up = _last_line(child.log_path) or "a bad setting"
                self.say(
                    f"[bold red]{child.name:<8} exited with code 2 (a setting it cannot use): "
                    f"not restarting. {child.given_up}[/]"
                )
                return
            if now - child.started_at > STABLE_AFTER:
                child.backoff = FIRST_RESTART_S
            child.restart_at = now + child.backoff
            self.say(
                f"[yellow]{child.name:<8} exited with code {code}; restarting in "
                f"{child.backoff:.0f} s (restart {child.restarts + 1}, see {child.log_path})[/]"
            )
            child.backoff = min(max(child.backoff * 2, BACKOFF_FIRST), BACKOFF_CAP)
        elif child.restart_at is not None and now >= child.restart_at:
            child.restarts += 1
            self._start(child, env)

    def _state(self, child: Child) -> str:
        if child.given_up is not None:
            return "stopped (bad setting)"
        if child.process is None:
            return "restarting"
        try:
            assert self._status_client is not None
            beat: Any = self._status_client.hgetall(keys.health(child.name))
        except (redis.RedisError, OSError):
            return "unknown (redis unreachable)"
        if not beat:
            return "starting"
        seen = judge(beat, time.time())
        if seen.status == "stale":
            return f"stale ({seen.reason})"
        state = seen.state if not seen.reason else f"{seen.state} ({seen.reason})"
        source = seen.beat.get("source")
        return f"{state}, {source}" if source else state

    def _show_status(self) -> None:
        """One line with every service's state, printed when it changes."""
        line = " · ".join(f"{c.name} {self._state(c)}" for c in self.children.values())
        if line != self._last_status:
            self._last_status = line
            self.say(f"status   {line}")

    def _stop_all(self) -> None:
        # engine-2 ... stop with the engine
        order = sorted(self.children, key=lambda n: STOP_ORDER.index(n.split("-")[0]))
        for name in order:
            child = self.children[name]
            if child.process is not None:
                code = terminate(child.process, STOP_TIMEOUT)
                self.say(f"{name:<8} stopped (code {code})")
        if self._status_client is not None:
            self._status_client.close()
        if self.redis is not None:
            self.redis.stop()
            self.say("redis    stopped")


def instances(service: str, settings: Settings) -> list[tuple[str, dict[str, str]]]:
    """The processes of one service: (name, extra environment). ``--engines M`` runs M
    engines, ``engine`` and ``engine-2`` ... ``engine-M``, which split the pairs through
    leases (:mod:`spreadbus.engine.shards`); ``--gateways N`` likewise N gateways splitting
    the symbols (:mod:`spreadbus.gateway.shares`)."""
    count = {"engine": settings.engines, "gateway": settings.gateways}.get(service, 1)
    if count == 1:
        return [(service, {})]
    more = range(2, count + 1)
    return [(service, {})] + [(f"{service}-{i}", {"SPREADBUS_INSTANCE": str(i)}) for i in more]


def _last_line(path: Path) -> str:
    """The child's last words (its one-line error), from its console log."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(handle.seek(0, os.SEEK_END) - 4096, 0))
            lines = [ln.strip() for ln in handle.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    return next((ln for ln in reversed(lines) if ln), "")


def run_up(settings: Settings, duration: float | None) -> int:
    return Supervisor(settings, duration, Console(stderr=False, soft_wrap=True)).run()
