"""``spreadbus up``: an embedded Redis and every built service, each in its own OS process.

Children run in their own session, so a Ctrl-C in the terminal reaches only the supervisor,
which then stops them in order (producers first, the logger last, Redis after everything).
Each child also asks the kernel for SIGTERM if the supervisor dies (PR_SET_PDEATHSIG), so even
``kill -9`` of ``up`` leaves no orphans. A crashed child is restarted with capped exponential
backoff; a child that ran for a while gets its backoff reset.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis
from rich.console import Console

from spreadbus.bus import keys
from spreadbus.bus.connect import connect_sync, describe
from spreadbus.bus.embedded import EmbeddedRedis
from spreadbus.config import Settings
from spreadbus.proc import die_with_parent, terminate
from spreadbus.services import SERVICES, STOP_ORDER

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0
STABLE_AFTER = 30.0  # seconds of uptime after which a crash counts as a fresh first crash
STOP_TIMEOUT = 20.0
STATUS_EVERY = 2.0  # s between looks at the heartbeats


@dataclass
class Child:
    name: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None
    history: list[int] = field(default_factory=list)  # exit codes, newest last

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
                self.redis = EmbeddedRedis(self.settings.data_dir, self.settings.redis_port)
                url = self.redis.start()
                self.say(f"redis    embedded Redis 7.4 + timeseries at {describe(url)}")
            else:
                self.say(f"redis    using {describe(url)}")
            env = dict(os.environ)
            env.update(self.settings.child_environment())
            env["SPREADBUS_REDIS_URL"] = url
            env.setdefault("SPREADBUS_CONSOLE_LEVEL", "WARNING")
            for spec in SERVICES.values():
                if not spec.built:
                    self.say(f"{spec.name:<8} not built yet, skipped")
                    continue
                child = Child(
                    spec.name,
                    [sys.executable, "-m", "spreadbus", spec.name],
                    logs / f"{spec.name}.console.log",
                )
                self.children[spec.name] = child
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

    def _start(self, child: Child, env: dict[str, str]) -> None:
        out = child.log_path.open("ab")
        try:
            child.process = subprocess.Popen(
                child.argv,
                env=env,
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
            for child in self.children.values():
                self._tend(child, env, now)
            time.sleep(0.1)

    def _tend(self, child: Child, env: dict[str, str], now: float) -> None:
        if child.process is not None:
            code = child.process.poll()
            if code is None:
                return
            child.history.append(code)
            child.process = None
            if now - child.started_at > STABLE_AFTER:
                child.backoff = BACKOFF_FIRST
            child.restart_at = now + child.backoff
            self.say(
                f"[yellow]{child.name:<8} exited with code {code}; restarting in "
                f"{child.backoff:.0f} s (restart {child.restarts + 1}, see {child.log_path})[/]"
            )
            child.backoff = min(child.backoff * 2, BACKOFF_CAP)
        elif child.restart_at is not None and now >= child.restart_at:
            child.restarts += 1
            self._start(child, env)

    def _state(self, child: Child) -> str:
        if child.process is None:
            return "restarting"
        try:
            assert self._status_client is not None
            beat = self._status_client.hgetall(keys.health(child.name))
        except (redis.RedisError, OSError):
            return "unknown (redis unreachable)"
        if not beat:
            return "starting"
        source = beat.get(b"source")
        if isinstance(source, bytes):
            return f"healthy ({source.decode()})"
        return "healthy"

    def _show_status(self) -> None:
        """One line with every service's state, printed when it changes."""
        line = " · ".join(f"{c.name} {self._state(c)}" for c in self.children.values())
        if line != self._last_status:
            self._last_status = line
            self.say(f"status   {line}")

    def _stop_all(self) -> None:
        order = [n for n in STOP_ORDER if n in self.children]
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


def run_up(settings: Settings, duration: float | None) -> int:
    return Supervisor(settings, duration, Console(stderr=False, soft_wrap=True)).run()
