"""Failures as short JSON answers: Redis away is a 503, a bug a 500, never a traceback.

The OpenAPI document tells the truth about them (:func:`document_errors`): every error body
is ``{"detail": ...}`` (text, or FastAPI's list of validation errors), a path naming a
resource may answer 404, and a method a path does not have is a 405 whose ``Allow`` lists
every method the path has (:func:`method_not_allowed`), whichever route Starlette tried first.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from spreadbus.bus.connect import RedisUnavailableError
from spreadbus.bus.service import EventLog

REDIS_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    RedisUnavailableError,
)


ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "string"}},
    "required": ["detail"],
}
NOT_FOUND: dict[str, Any] = {
    "description": "No such resource",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


BAD_BODY: dict[str, Any] = {
    "description": "The body is not valid JSON (or not the declared form)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _input_rules() -> dict[str, dict[str, Any]]:
    """What the API's own checks accept, by input name (the same name means the same thing
    everywhere in this API): documented so that a request the document allows is served."""
    from spreadbus.engine.alerts import RULE_ID_RE  # noqa: PLC0415 (keeps the import light)
    from spreadbus.web.names import BODY_PAIR_PATTERN, SYMBOL_PATTERN  # noqa: PLC0415
    from spreadbus.web.routes.analytics import MAX_METRICS, METRIC_PATTERN  # noqa: PLC0415

    metric = METRIC_PATTERN.strip("^$")
    return {
        "pair": {"pattern": BODY_PAIR_PATTERN},
        "symbol": {"pattern": SYMBOL_PATTERN},
        "x": {"pattern": SYMBOL_PATTERN},
        "y": {"pattern": SYMBOL_PATTERN},
        "rule_id": {"pattern": RULE_ID_RE.pattern},
        "metrics": {"pattern": f"^{metric}(,{metric}){{0,{MAX_METRICS - 1}}}$"},
    }


def _constrain(schema: dict[str, Any], rule: dict[str, Any]) -> None:
    """Add ``rule`` to a string schema (or to the string branch of an optional one)."""
    if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
        schema.update(rule)
    for branch in schema.get("anyOf", []):
        _constrain(branch, rule)


def _document_bodies(components: dict[str, Any], operation: dict[str, Any]) -> None:
    rules = _input_rules()
    for media in operation.get("requestBody", {}).get("content", {}).values():
        ref = media.get("schema", {}).get("$ref", "")
        model = components.get(ref.rsplit("/", 1)[-1]) if ref else None
        if not model:
            continue
        properties = model.get("properties", {})
        for name, rule in rules.items():
            if name in properties:
                _constrain(properties[name], rule)
        symbols = properties.get("symbols")
        if symbols is not None:  # the screener: at least two symbols to pair (or all: null)
            for branch in [symbols, *symbols.get("anyOf", [])]:
                if branch.get("type") == "array":
                    branch.setdefault("minItems", 2)
                    branch.setdefault("uniqueItems", True)
                    _constrain(branch.setdefault("items", {}), rules["symbol"])
        if "dataset" in properties:  # an uploaded dataset that is gone, or no candles
            operation["responses"].setdefault("404", NOT_FOUND)
        if {"pair", "dataset", "x", "y"} <= properties.keys():  # backtests: one source
            text, null = {"type": "string"}, {"type": "null"}
            model.setdefault(
                "oneOf",
                [
                    {"required": ["pair"], "properties": {"pair": text, "dataset": null}},
                    {
                        "required": ["dataset", "y", "x"],
                        "properties": {"pair": null, "dataset": text, "y": text, "x": text},
                    },
                ],
            )


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Make the generated document say what the API answers and accepts: a 422 ``detail`` is
    text (our own checks) or a list; a body that does not parse is a 400; operations with path
    parameters may answer 404; inputs carry the rules our checks apply."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR_SCHEMA)
    validation = components.get("HTTPValidationError")
    if validation is not None:
        detail = validation["properties"]["detail"]
        if "anyOf" not in detail:
            listed = {k: v for k, v in detail.items() if k != "title"}
            texts = {"type": "array", "items": {"type": "string"}}
            validation["properties"]["detail"] = {
                "title": "Detail",
                "anyOf": [{"type": "string"}, listed, texts],
            }
    rules = _input_rules()
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                rule = rules.get(parameter.get("name", ""))
                if rule is not None:
                    _constrain(parameter.setdefault("schema", {}), rule)
            if any(p.get("in") == "path" for p in parameters):
                responses.setdefault("404", NOT_FOUND)
            if "requestBody" in operation:
                responses.setdefault("400", BAD_BODY)
                _document_bodies(components, operation)
            unprocessable = responses.get("422", {}).get("content", {}).get("application/json")
            ref = (unprocessable or {}).get("schema", {}).get("$ref", "")
            if ref and not ref.endswith("/HTTPValidationError") and parameters:
                # a route's own 422 body, and FastAPI's for its parameters
                fastapi = {"$ref": "#/components/schemas/HTTPValidationError"}
                unprocessable["schema"] = {"anyOf": [{"$ref": ref}, fastapi]}
    return schema


HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def path_methods(app: FastAPI, path: str) -> set[str]:
    """Every method the OpenAPI document gives ``path`` (the document is what clients go by;
    routers included lazily are not listed in ``app.routes``)."""
    table: list[tuple[re.Pattern[str], set[str]]] | None = getattr(app.state, "path_methods", None)
    if table is None:
        table = []
        for template, item in app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            methods = {m.upper() for m in item if m in HTTP_METHODS}
            table.append((re.compile(f"^{pattern}$"), methods))
        app.state.path_methods = table
    found: set[str] = set()
    for regex, methods in table:
        if regex.match(path):
            found |= methods
    return found


def method_not_allowed(
    app: FastAPI,
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Middleware: a method the path does not have is a 405 listing all the path's methods
    (Starlette lists only the first matching route's, and the dashboard's catch-all routes
    would answer 404)."""

    async def check(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.url.path.startswith("/api/"):
            methods = path_methods(app, request.url.path)
            if methods and request.method not in methods:
                return JSONResponse(
                    {"detail": "Method Not Allowed"},
                    status_code=405,
                    headers={"Allow": ", ".join(sorted(methods))},
                )
        return await call_next(request)

    return check


def install(app: FastAPI, log: EventLog) -> None:
    """Register the handlers on ``app``, and the error truths in its OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.middleware("http")(method_not_allowed(app))

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("redis unavailable", path=request.url.path, error=str(exc))
        return JSONResponse(
            # Redis's own words (hosts, ports, error codes) go to the log, never to a client
            {"detail": "Redis unavailable: retry in a moment"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    async def redis_refused(request: Request, exc: Exception) -> JSONResponse:
        log.error("redis refused a command", path=request.url.path, error=str(exc))
        return JSONResponse(
            {"detail": "Redis refused the request (see the web service's log)"}, status_code=502
        )

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed", path=request.url.path, error=repr(exc), exc_info=exc)
        return JSONResponse({"detail": "internal error (see the web service's log)"}, 500)

    for kind in REDIS_DOWN:
        app.add_exception_handler(kind, redis_down)
    app.add_exception_handler(redis.exceptions.ResponseError, redis_refused)
    app.add_exception_handler(Exception, crashed)
