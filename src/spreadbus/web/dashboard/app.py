"""Build the Dash app and mount it on the web process's FastAPI app (see the package doc)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from dash import Dash
from dash.backends._fastapi import reset_current_request, set_current_request
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from spreadbus.config import Settings
from spreadbus.web.dashboard import shell
from spreadbus.web.dashboard.context import Context
from spreadbus.web.dashboard.pages import pages
from spreadbus.web.deps import RedisHandle

ASSETS: Final = Path(__file__).with_name("assets")


def _index_route(dash_app: Dash) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def index(request: Request) -> HTMLResponse:
        # Dash renders its index inside a request context (its own middleware sets one only
        # for "/" and the callback routes); set it for the page paths too.
        token = set_current_request(request)  # type: ignore[no-untyped-call]
        try:
            dash_app._setup_server()  # type: ignore[no-untyped-call]  # once: libraries, assets
            return HTMLResponse(dash_app.index())  # type: ignore[no-untyped-call]
        finally:
            reset_current_request(token)  # type: ignore[no-untyped-call]

    return index


async def _api_not_found(request: Request) -> JSONResponse:
    # Dash adds a catch-all GET route (for its client-side pages) when the app starts; an
    # unknown /api/ path must stay a JSON 404 rather than the dashboard's page.
    return JSONResponse({"detail": "Not Found"}, status_code=404)


def mount(api: FastAPI, settings: Settings, handle: RedisHandle) -> Dash:
    """Add the dashboard to ``api`` (its routes after every API route) and return it.

    Dash's FastAPI backend adds its routes and its middleware to ``api`` itself, so the API's
    own middleware (added after this) wraps the dashboard too."""
    dash_app = Dash(
        __name__,
        server=api,  # type: ignore[arg-type]  # Dash 4 types only its Flask server
        title="spreadbus",
        update_title=None,  # type: ignore[arg-type]  # no "Updating..." flicker in the tab title every second
        assets_folder=str(ASSETS),
        suppress_callback_exceptions=True,  # pages come and go: their ids are not always there
        serve_locally=True,  # no CDN: the machine may have no internet
    )
    # Callbacks are polled over HTTP (package doc): no websocket, so the browser must not try
    # one (uvicorn runs with ws="none" and would log every attempt).
    dash_app.backend.websocket_capability = False
    dash_app.layout = shell.layout()
    ctx = Context(settings, handle)
    shell.register(dash_app, ctx)
    index = _index_route(dash_app)
    api.add_api_route("/api/{rest:path}", _api_not_found, methods=["GET"], include_in_schema=False)
    for page in pages():
        page.register(dash_app, ctx)
        if page.path != "/":  # "/" is Dash's own index route
            route = f"{page.path}{{rest:path}}" if page.path.endswith("/") else page.path
            api.add_api_route(route, index, methods=["GET"], include_in_schema=False)
    return dash_app
