"""Exposure: open on loopback; beyond it HTTP Basic on everything, and no start without a
password."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.responses import PlainTextResponse

from spreadbus.config import Settings, SettingsError
from spreadbus.web.api import create_app
from spreadbus.web.auth import BasicAuthMiddleware, FailedLogins, is_loopback, password_matches
from spreadbus.web.service import main

from .conftest import BASE


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
        ("localhost", True), ("0.0.0.0", False), ("::", False), ("192.168.1.10", False),
        ("example.com", False), ("", False),
    ],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_password_matches_only_basic_with_the_password() -> None:
    assert password_matches(_basic("anyone", "s3cret:x")["Authorization"], "s3cret:x")
    assert not password_matches(_basic("anyone", "wrong")["Authorization"], "s3cret")
    assert not password_matches("Bearer s3cret", "s3cret")
    assert not password_matches("Basic !!notbase64", "s3cret")
    assert not password_matches(f"Basic {base64.b64encode(b'nocolon').decode()}", "nocolon")
    assert not password_matches(None, "s3cret")


async def test_exposed_app_requires_basic_auth_everywhere(
    redis_url: str, data_dir: Path, aredis: aioredis.Redis
) -> None:
    settings = Settings(
        redis_url=redis_url, data_dir=data_dir, web_host="0.0.0.0", web_password="s3cret"
    )
    assert "s3cret" not in repr(settings)
    app = create_app(settings, aredis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as api:
        for path in ("/api/health", "/api/openapi.json", "/api/docs", "/", "/api/archive"):
            response = await api.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"].startswith('Basic realm="spreadbus"')
            wrong = await api.get(path, headers=_basic("admin", "guess"))
            assert wrong.status_code == 401, path
            right = await api.get(path, headers=_basic("admin", "s3cret"))
            assert right.status_code == 200, path
        put = await api.put("/api/pairs", json=["ETHUSDT/BTCUSDT"])
        assert put.status_code == 401
    assert app.state.stats.client_errors == 11
    assert app.state.stats.requests == 16


async def test_loopback_app_is_open(api: httpx.AsyncClient) -> None:
    assert (await api.get("/api/health")).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "myhost.example"])
def test_exposed_without_password_is_refused(redis_url: str, host: str) -> None:
    settings = Settings(redis_url=redis_url, web_host=host)
    with pytest.raises(SettingsError, match="web_password") as error:
        create_app(settings)
    assert "\n" not in str(error.value)
    with pytest.raises(SettingsError, match="not a loopback address"):
        main(settings)  # before binding or connecting anything


def test_exposed_with_password_builds(redis_url: str) -> None:
    create_app(Settings(redis_url=redis_url, web_host="0.0.0.0", web_password="x"))


async def test_failed_logins_are_throttled_per_address() -> None:
    """Ten wrong passwords from one address within the window: that address is refused (429,
    even with the right password) until the window has passed; other addresses are not."""
    now = [1000.0]
    failures = FailedLogins(limit=10, window_s=60.0, clock=lambda: now[0])

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("ok")(scope, receive, send)

    app = BasicAuthMiddleware(ok, password="s3cret", failures=failures)

    def client(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 1234))
        return httpx.AsyncClient(transport=transport, base_url=BASE)

    async with client("10.0.0.7") as guesser, client("10.0.0.8") as other:
        assert (await guesser.get("/")).status_code == 401  # no header yet: not a failure
        for _ in range(10):
            assert (await guesser.get("/", headers=_basic("x", "guess"))).status_code == 401
        blocked = await guesser.get("/", headers=_basic("x", "s3cret"))
        assert blocked.status_code == 429
        assert blocked.headers["retry-after"] == "60"
        assert (await other.get("/", headers=_basic("x", "s3cret"))).status_code == 200
        now[0] += 61.0
        assert (await guesser.get("/", headers=_basic("x", "s3cret"))).status_code == 200
