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


class BasicAuthMiddleware:
    """Answers 401 to every HTTP request without the password (pure ASGI: streams pass)."""

    def __init__(self, app: ASGIApp, password: str) -> None:
        self.app = app
        self.password = password

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            header = Headers(scope=scope).get("authorization")
            if not password_matches(header, self.password):
                response = JSONResponse(
                    {"detail": "authentication required"},
                    status_code=401,
                    headers={"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
