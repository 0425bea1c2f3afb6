"""The live dashboard: Dash 4 on the web process's own FastAPI app, one port for everything.

Why this integration: Dash 4 ships a FastAPI backend, so the dashboard is a second FastAPI
app mounted at ``/`` under the API's app (the API's routes match first). There is no WSGI
bridge (Starlette's deprecated ``WSGIMiddleware``) and no second server or thread: callbacks
are ``async`` functions awaited on uvicorn's event loop, reading Redis through the API's own
client and read layer (:mod:`spreadbus.web.read`). The API's middleware (Basic auth when
exposed, the Host/Origin guard, request counters) wraps the mount, so every page, asset and
callback is behind the same checks as the JSON API.

Live updates are polled: each page owns a 1 s ``dcc.Interval`` and its callback sends only
what changed (``extendData`` with a point cap for charts, ``no_update`` for unchanged text,
compact rows that a clientside function renders for the overview table). Polling survives a
web restart with no reconnect logic (the next tick simply succeeds) and costs one small
request per second per page.
"""

from spreadbus.web.dashboard.app import mount

__all__ = ["mount"]
