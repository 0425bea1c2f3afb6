"""Who may reach the web app: Host names, same-origin writes, and the password when exposed,
for the API and the dashboard's pages, assets and callbacks alike (real app, real Redis)."""

from __future__ import annotations

import base64

import httpx
import pytest
import redis.asyncio as aioredis

from spreadbus.config import Settings
from spreadbus.web.api import create_app

CALLBACK = "/_dash-update-component"
# the overview's refresh, as the browser sends it
CALLBACK_BODY = {
    "output": "ov-data.data",
    "outputs": {"id": "ov-data", "property": "data"},
    "inputs": [{"id": "ov-tick", "property": "n_intervals", "value": 1}],
    "changedPropIds": ["ov-tick.n_intervals"],
    "state": [],
}


def _client(settings: Settings, aredis: aioredis.Redis, host: str) -> httpx.AsyncClient:
    app = create_app(settings, aredis)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{host}")


async def test_loopback_answers_only_its_own_host_names(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    async with _client(settings, aredis, "127.0.0.1:8050") as web:
        assert (await web.get("/api/health")).status_code == 200
        assert (await web.get("/", headers={"host": "localhost:8050"})).status_code == 200
        # DNS rebinding: the attacker's name resolves to 127.0.0.1, the Host header keeps it
        for path in ("/api/health", "/", "/assets/dashboard.js"):
            rebound = await web.get(path, headers={"host": "evil.example:8050"})
            assert rebound.status_code == 400, path
            assert "not allowed" in rebound.json()["detail"]


@pytest.mark.parametrize("path", ["/api/pairs", CALLBACK])
async def test_cross_origin_writes_are_refused(
    settings: Settings, aredis: aioredis.Redis, path: str
) -> None:
    async with _client(settings, aredis, "127.0.0.1:8050") as web:
        method, body = ("PUT", ["ETHUSDT/BTCUSDT"]) if path == "/api/pairs" else (
            "POST", CALLBACK_BODY)  # fmt: skip
        for headers in (
            {"origin": "http://evil.example"},
            {"origin": "null"},
            {"sec-fetch-site": "cross-site"},
            {"origin": "http://127.0.0.1:9999"},  # another port is another origin
        ):
            refused = await web.request(method, path, json=body, headers=headers)
            assert refused.status_code == 403, headers
        assert await aredis.exists("config:pairs") == 0  # nothing was written
        same = await web.request(
            method, path, json=body, headers={"origin": "http://127.0.0.1:8050"}
        )
        assert same.status_code == 200, same.text
        scripted = await web.request(method, path, json=body)  # no Origin: curl, httpx
        assert scripted.status_code == 200


async def test_exposed_needs_the_password_for_pages_assets_and_callbacks(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    exposed = settings.model_copy(update={"web_host": "0.0.0.0", "web_password": "s3cret"})
    good = "Basic " + base64.b64encode(b"trader:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"trader:guess").decode()
    async with _client(exposed, aredis, "desk.example:8050") as web:
        for method, path in (("GET", "/"), ("GET", "/pair/ETHUSDT-BTCUSDT"),
                             ("GET", "/assets/dashboard.js"), ("GET", "/api/health"),
                             ("POST", CALLBACK)):  # fmt: skip
            body = CALLBACK_BODY if method == "POST" else None
            assert (await web.request(method, path, json=body)).status_code == 401, path
            denied = await web.request(method, path, json=body, headers={"authorization": bad})
            assert denied.status_code == 401, path
            allowed = await web.request(method, path, json=body, headers={"authorization": good})
            assert allowed.status_code == 200, path
