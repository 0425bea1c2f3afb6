"""``spreadbus web``: the HTTP API served by uvicorn inside the service lifecycle.

:func:`spreadbus.bus.service.run_service` owns the process: it connects to Redis, beats the
heartbeat into ``state:health:{web}``, and sets ``stop`` on SIGINT/SIGTERM; uvicorn's own
signal handling is switched off so there is one owner. The listening socket is bound before
anything else, so a port in use is one clear line and exit 1 rather than a half-started
service, and an exposed bind address without a password is refused (exit 2) before that.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import Generator, Mapping
from typing import Any, Final

import uvicorn

from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.service import EventLog, run_service
from spreadbus.config import Settings
from spreadbus.web.api import create_app
from spreadbus.web.auth import required_password
from spreadbus.web.stats import RequestStats

GRACEFUL_SHUTDOWN_S: Final = 5  # open requests get this long after a stop
LISTEN_BACKLOG: Final = 512


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the service lifecycle owns SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (a name, IPv4 or IPv6); OSError if it cannot be
    had. Made with ``proto=IPPROTO_TCP`` on purpose: asyncio sets TCP_NODELAY only on sockets
    that say so, and without it every keep-alive response waits ~40 ms (Nagle meets the
    client's delayed ACK: uvicorn writes headers and body separately)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP,
        flags=socket.AI_PASSIVE,
    )[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class WebService:
    """The :class:`~spreadbus.bus.service.Service` serving the API on a bound socket."""

    name = "web"

    def __init__(
        self, settings: Settings, client: AsyncRedis, log: EventLog, sock: socket.socket
    ) -> None:
        self.log = log
        self.sock = sock
        self.app = create_app(settings, client)
        self.stats: RequestStats = self.app.state.stats
        host, port = sock.getsockname()[:2]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        config = uvicorn.Config(
            self.app,
            log_config=None,  # spreadbus logging is configured by the lifecycle
            access_log=False,
            ws="none",  # no websocket routes; avoids loading a websockets implementation
            lifespan="on",
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self.server = _Server(config)

    async def run(self, stop: asyncio.Event) -> None:
        # The socket already listens: connections wait in its backlog until uvicorn accepts.
        self.log.info("listening", url=self.url, docs=f"{self.url}/api/docs")
        serving = asyncio.create_task(self.server.serve(sockets=[self.sock]), name="uvicorn")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self.server.should_exit = True
        stopping.cancel()
        await serving

    def health(self) -> Mapping[str, Any]:
        return {"url": self.url, "serving": self.server.started, **self.stats.as_dict()}

    async def close(self) -> None:
        self.sock.close()


def main(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop, 1 if the port cannot be had; raises
    :class:`~spreadbus.config.SettingsError` (exit 2) when exposed without a password."""
    required_password(settings)
    try:
        sock = listen(settings.web_host, settings.web_port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"spreadbus web: cannot listen on {settings.web_host}:{settings.web_port}: {reason}",
            file=sys.stderr,
        )
        return 1

    def factory(cfg: Settings, client: AsyncRedis, log: EventLog) -> WebService:
        return WebService(cfg, client, log, sock)

    try:
        return run_service(factory, "web", settings)
    finally:
        sock.close()
