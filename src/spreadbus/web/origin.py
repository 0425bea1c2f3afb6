"""Who may reach the web process from a browser: allowed Host names, same-origin writes.

Listening on loopback does not keep other web sites out. A page on ``evil.example`` can point
its own name at 127.0.0.1 (DNS rebinding) and then read and write our API as if it were us;
a page on any site can also send a cross-site POST to http://127.0.0.1:8050 blindly. So:

- the ``Host`` header must name this server: loopback names and ``web_host`` by default, or
  the ``web_allowed_hosts`` setting (a rebinding attack arrives with its own name);
- a request that can change something (any method but GET, HEAD, OPTIONS: config writes and
  every dashboard callback) must not come from another origin: a browser's ``Origin`` must
  match the ``Host`` it was sent to, and ``Sec-Fetch-Site: cross-site`` is refused. Scripts
  (curl, httpx) send neither header and pass.

Exposed beyond loopback (behind a password), any Host is accepted unless the setting lists
some: the password is what keeps strangers out there, and a proxy may forward any name.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from spreadbus.config import Settings
from spreadbus.web.auth import is_loopback

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})


def allowed_hosts(settings: Settings) -> frozenset[str] | None:
    """Host names to answer to; None for any."""
    if settings.web_allowed_hosts:
        return frozenset(settings.web_allowed_hosts)
    if not is_loopback(settings.web_host):
        return None
    return LOOPBACK_HOSTS | {settings.web_host.strip("[]").lower()}


def host_name(host: str) -> str:
    """``127.0.0.1:8050`` -> ``127.0.0.1``, ``[::1]:8050`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def refusal(method: str, headers: Headers, hosts: frozenset[str] | None) -> str | None:
    """Why this request is refused, or None."""
    host = headers.get("host", "")
    if hosts is not None and host_name(host) not in hosts:
        return f"host {host_name(host) or '(none)'!r} is not allowed (setting web_allowed_hosts)"
    if method in SAFE_METHODS:
        return None
    if headers.get("sec-fetch-site") == "cross-site":
        return "cross-site request refused"
    origin = headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower()):
        return f"cross-origin request from {origin} refused"
    return None


class OriginGuard:
    """Pure ASGI middleware applying :func:`refusal` (bodies stream through untouched)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            method = scope.get("method", "GET") if scope["type"] == "http" else "POST"
            reason = refusal(method, Headers(scope=scope), self.hosts)
            if reason is not None:
                status = 400 if reason.startswith("host") else 403
                await JSONResponse({"detail": reason}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
