"""Who may talk to the web process: anyone on loopback, else HTTP Basic with a password.

Bound to a loopback address (the default, 127.0.0.1) the API is open, as every other
spreadbus port is. Bound to anything else (``--host 0.0.0.0``) every request, the OpenAPI
document and the docs page included, needs HTTP Basic auth with ``SPREADBUS_WEB_PASSWORD``
(any user name); without a password the web process refuses to start.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from spreadbus.config import Settings, SettingsError

REALM: Final = "spreadbus"
_LOOPBACK_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Is ``host`` reachable from this machine only? Names other than localhost are not."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def required_password(settings: Settings) -> str | None:
    """The password requests must carry, None when open; :class:`SettingsError` when the API
    would be exposed beyond loopback without one."""
    if is_loopback(settings.web_host):
        return None
    if not settings.web_password:
        raise SettingsError(
            f"invalid setting web_password (SPREADBUS_WEB_PASSWORD): required when web_host "
            f"{settings.web_host} is not a loopback address"
        )
    return settings.web_password


def password_matches(header: str | None, password: str) -> bool:
    """Does an ``Authorization: Basic ...`` header carry ``password`` (any user name)?"""
    if not header:
        return False
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _, sep, given = decoded.partition(b":")
    return bool(sep) and secrets.compare_digest(given, password.encode())


class FailedLogins:
    """Failed password attempts per client address, to slow a password guesser down: after
    ``limit`` failures within ``window_s`` seconds the address is refused (429) until the
    oldest of them is that old. Bounded: at most ``max_clients`` addresses are remembered."""

    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.max_clients, self.clock = (
            limit,
            window_s,
            max_clients,
            clock,
        )
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque())
        horizon = self.clock() - self.window_s
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures

    def retry_after_s(self, client: str) -> float:
        """Seconds until ``client`` may try again; 0 when it may now."""
        failures = self._recent(client)
        if len(failures) < self.limit:
            return 0.0
        return max(failures[0] + self.window_s - self.clock(), 0.0)

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= self.max_clients:
            self._failures.pop(next(iter(self._failures)))  # forget the oldest address
        failures = self._recent(client)
        failures.append(self.clock())
        self._failures[client] = failures


class BasicAuthMiddleware:
    """Answers 401 to every HTTP request without the password, and 429 to an address that
    failed too often lately (pure ASGI: streams pass). Passwords are compared in constant
    time (:func:`password_matches`)."""

    def __init__(self, app: ASGIApp, password: str, failures: FailedLogins | None = None) -> None:
        self.app = app
        self.password = password
        self.failures = failures or FailedLogins()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = (scope.get("client") or ("?", 0))[0]
            wait_s = self.failures.retry_after_s(client)
            if wait_s > 0:
                response = JSONResponse(
                    {"detail": f"too many failed logins: retry in {wait_s:.0f} s"},
                    status_code=429,
                    headers={"Retry-After": str(max(int(wait_s), 1))},
                )
                await response(scope, receive, send)
                return
            header = Headers(scope=scope).get("authorization")
            if not password_matches(header, self.password):
                if header:  # a wrong password, not a first request that has none yet
                    self.failures.failed(client)
                response = JSONResponse(
                    {"detail": "authentication required"},
                    status_code=401,
                    headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
