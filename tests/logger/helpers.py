"""Helpers for the CentralLogger tests: a running in-process logger, publishing, reading the
files back, and a real local webhook server."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.bus.codec import Level, LogEvent, log_event_to_json
from spreadbus.bus.connect import connect
from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.logger.service import CentralLogger
from spreadbus.logger.sink import log_dir, log_files
from spreadbus.logger.webhook import WebhookForwarder


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``predicate()`` holds; fail after ``within`` seconds otherwise."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within} s")
        await asyncio.sleep(0.02)


async def publish(
    client: aioredis.Redis, service: str, event: str, level: Level = "INFO", **fields: Any
) -> None:
    """What a service's LogPublisher does: the event into ``stream:logs``."""
    payload = log_event_to_json(LogEvent(level, service, event, fields))
    await client.xadd(keys.LOG_STREAM, {keys.LOG_STREAM_FIELD: payload})


def read_records(data_dir: Path) -> list[dict[str, Any]]:
    """Every record on disk, oldest first (only what has been flushed)."""
    records = []
    for path in log_files(log_dir(data_dir)):
        records += [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
    return records


@contextlib.asynccontextmanager
async def running_logger(
    settings: Settings, forwarder: WebhookForwarder | None = None
) -> AsyncIterator[CentralLogger]:
    """The CentralLogger as ``run_service`` runs it, in this event loop, already reading."""
    client = connect(settings)
    service = CentralLogger(settings, client, EventLog("logger"), forwarder=forwarder)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        await eventually(lambda: service.subscribed or task.done())
        if task.done():
            task.result()  # raise what killed it
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        await service.close()
        await client.aclose()


@dataclass
class LoggedEvent:
    level: str
    event: str
    fields: dict[str, Any]


@dataclass
class WebhookServer:
    """A real HTTP endpoint on 127.0.0.1: answers ``statuses`` in turn (then 200), or holds
    every request until the test ends when ``hang`` is set."""

    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() of each request
    requests: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, body: bytes) -> int:
        self.requests += 1
        self.arrivals.append(time.monotonic())
        if self.hang:
            self.release.wait(30)
            return 200
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.bodies.append(orjson.loads(body))
        return status


def make_handler(server: WebhookServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = server.answer(body)
            with contextlib.suppress(OSError):  # the client may have timed out and left
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
