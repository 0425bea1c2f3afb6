"""Fixtures for the CentralLogger tests."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from spreadbus.proc import free_port

from .helpers import LoggedEvent, WebhookServer, make_handler


@pytest.fixture
def logger_events() -> Iterator[list[LoggedEvent]]:
    """What the logger service logs about itself (console/channel side), in order."""
    events: list[LoggedEvent] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            fields = dict(getattr(record, "fields", {}) or {})
            events.append(LoggedEvent(record.levelname, record.getMessage(), fields))

    target = logging.getLogger("spreadbus.logger")
    handler = Collect(logging.DEBUG)
    old_level = target.level
    target.setLevel(logging.DEBUG)
    target.addHandler(handler)
    yield events
    target.removeHandler(handler)
    target.setLevel(old_level)


@pytest.fixture
def webhook_server() -> Iterator[Callable[..., WebhookServer]]:
    started: list[tuple[WebhookServer, ThreadingHTTPServer, threading.Thread]] = []

    def start(**options: Any) -> WebhookServer:
        webhook = WebhookServer(**options)
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(webhook))
        httpd.daemon_threads = True
        webhook.port = httpd.server_address[1]
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        started.append((webhook, httpd, thread))
        return webhook

    yield start
    for webhook, httpd, thread in started:
        webhook.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}/hook"
