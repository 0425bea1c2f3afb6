"""Responses a route documents beyond FastAPI's own: a 422 for input the schema allows but a
rule between fields refuses (OpenAPI cannot say ``y != x`` or ``end_ms >= start_ms``), stated
in words so the document is true about it."""

from __future__ import annotations

from typing import Any

VALIDATION_BODY = {
    "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
}


def unprocessable(why: str) -> dict[int | str, dict[str, Any]]:
    """A ``responses=`` entry: 422 with FastAPI's validation body (``detail`` text or list),
    described by ``why`` (the rules the schema cannot state)."""
    return {422: {"description": f"Validation Error, or {why}", "content": VALIDATION_BODY}}
