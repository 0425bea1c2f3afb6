"""The FastAPI app: ``create_app(settings, client)``.

OpenAPI document at ``/api/openapi.json``, interactive docs at ``/api/docs``. The app owns
no background work: every request reads Redis (or the archive folder) and answers. Given no
client it makes one on first use, so it starts, and answers 503, while Redis is away.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from spreadbus import __version__
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.web import errors
from spreadbus.web.auth import BasicAuthMiddleware, required_password
from spreadbus.web.deps import RedisHandle
from spreadbus.web.routes import ROUTERS
from spreadbus.web.stats import RequestStats, RequestStatsMiddleware

OPENAPI_URL: Final = "/api/openapi.json"
DOCS_URL: Final = "/api/docs"

INDEX_HTML: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>spreadbus</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>spreadbus</h1>
<p>The live dashboard is coming here soon. Meanwhile the HTTP API is up:</p>
<ul>
<li><a href="/api/docs">API documentation</a> (<a href="/api/openapi.json">OpenAPI</a>)</li>
<li><a href="/api/health">/api/health</a>: services and data source</li>
<li><a href="/api/pairs">/api/pairs</a>: pairs under analysis</li>
<li><a href="/api/alerts">/api/alerts</a>: recent alerts</li>
<li><a href="/api/archive">/api/archive</a>: Parquet history</li>
</ul>
</body></html>
"""


async def _index() -> HTMLResponse:
    return HTMLResponse(INDEX_HTML)


def create_app(settings: Settings, client: AsyncRedis | None = None) -> FastAPI:
    """The web app over ``client`` (not closed by the app), or over a client of its own made
    from ``settings`` on first use and closed at shutdown. :class:`SettingsError` when the
    bind address is not loopback and no ``web_password`` is set."""
    password = required_password(settings)
    handle = RedisHandle(settings, client)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await handle.close()

    app = FastAPI(
        title="spreadbus",
        version=__version__,
        summary="Real-time pairs-trading analytics for crypto futures, on a Redis bus.",
        openapi_url=OPENAPI_URL,
        docs_url=DOCS_URL,
        swagger_ui_oauth2_redirect_url=f"{DOCS_URL}/oauth2-redirect",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.redis = handle
    app.state.stats = RequestStats()
    errors.install(app, EventLog("web"))
    for router in ROUTERS:
        app.include_router(router, prefix="/api")
    app.add_api_route("/", _index, include_in_schema=False, response_class=HTMLResponse)
    if password is not None:
        app.add_middleware(BasicAuthMiddleware, password=password)
    app.add_middleware(RequestStatsMiddleware, stats=app.state.stats)  # outermost: counts 401s
    return app
