"""Request counters for the web service's heartbeat: how much it serves, how much fails."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(slots=True)
class RequestStats:
    requests: int = 0
    client_errors: int = 0  # 4xx
    server_errors: int = 0  # 5xx (503: Redis unavailable)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class RequestStatsMiddleware:
    """Counts every HTTP response by status class (pure ASGI: bodies stream through)."""

    def __init__(self, app: ASGIApp, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stats = self.stats

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                stats.requests += 1
                status = int(message["status"])
                if 400 <= status < 500:
                    stats.client_errors += 1
                elif status >= 500:
                    stats.server_errors += 1
            await send(message)

        await self.app(scope, receive, counting_send)
