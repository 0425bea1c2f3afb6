"""The FastAPI app: ``create_app(settings, client)``: the JSON API under ``/api`` and the
Dash dashboard (:mod:`spreadbus.web.dashboard`) on every other path.

OpenAPI document at ``/api/openapi.json``, interactive docs at ``/api/docs``. The app owns
no background work: every request reads Redis (or the archive folder) and answers. Given no
client it makes one on first use, so it starts, and answers 503, while Redis is away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import FastAPI

from spreadbus import __version__
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.web import dashboard, errors
from spreadbus.web.auth import BasicAuthMiddleware, required_password
from spreadbus.web.deps import RedisHandle
from spreadbus.web.origin import OriginGuard, allowed_hosts
from spreadbus.web.routes import ROUTERS
from spreadbus.web.stats import RequestStats, RequestStatsMiddleware
from spreadbus.web.upload import claim_upload_space

OPENAPI_URL: Final = "/api/openapi.json"
DOCS_URL: Final = "/api/docs"


def create_app(settings: Settings, client: AsyncRedis | None = None) -> FastAPI:
    """The web app over ``client`` (not closed by the app), or over a client of its own made
    from ``settings`` on first use and closed at shutdown. :class:`SettingsError` when the
    bind address is not loopback and no ``web_password`` is set."""
    password = required_password(settings)
    handle = RedisHandle(settings, client)

    log = EventLog("web")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # what a killed web left mid-upload goes before the first request (web.upload)
        from spreadbus.research.datasets import datasets_root  # noqa: PLC0415 (heavy import)

        space = None
        try:
            space = await asyncio.to_thread(claim_upload_space, datasets_root(settings.data_dir))
        except OSError as exc:  # a read-only data dir: the rest of the API still serves
            log.warning("datasets folder unusable", reason=exc.strerror or str(exc))
        if space is not None and space.stale:
            log.warning("removed stale upload folders", count=len(space.stale),
                        folders=",".join(space.stale))  # fmt: skip
        try:
            yield
        finally:
            if space is not None:
                space.release()
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
    errors.install(app, log)
    for router in ROUTERS:
        app.include_router(router, prefix="/api")
    dashboard.mount(app, settings, handle)
    # Middleware added last runs first: counters, then auth, then the Host/Origin guard.
    app.add_middleware(OriginGuard, hosts=allowed_hosts(settings))
    if password is not None:
        app.add_middleware(BasicAuthMiddleware, password=password)
    app.add_middleware(RequestStatsMiddleware, stats=app.state.stats)  # outermost: counts 401s
    return app
