"""Failures as short JSON answers: Redis away is a 503, a bug a 500, never a traceback."""

from __future__ import annotations

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spreadbus.bus.connect import RedisUnavailableError
from spreadbus.bus.service import EventLog

REDIS_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    RedisUnavailableError,
)


def install(app: FastAPI, log: EventLog) -> None:
    """Register the handlers on ``app``."""

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable", path=request.url.path, error=str(exc))
        return JSONResponse(
            {"detail": f"Redis unavailable: {exc}"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    async def redis_refused(request: Request, exc: Exception) -> JSONResponse:
        log.error("redis refused a command", path=request.url.path, error=str(exc))
        return JSONResponse({"detail": f"Redis refused the request: {exc}"}, status_code=502)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", path=request.url.path, error=repr(exc), exc_info=exc)
        return JSONResponse({"detail": "internal error (see the web service's log)"}, 500)

    for kind in REDIS_DOWN:
        app.add_exception_handler(kind, redis_down)
    app.add_exception_handler(redis.exceptions.ResponseError, redis_refused)
    app.add_exception_handler(Exception, crashed)
