"""The OpenAPI document tells the truth about errors: 405s list every method of a path, error
bodies and 404s are documented, path parameters carry the rules their checks apply."""

from __future__ import annotations

import re

import httpx


async def test_a_method_the_path_lacks_is_a_405_listing_every_method_it_has(
    api: httpx.AsyncClient,
) -> None:
    """Starlette alone lists only the first matching route's methods (here PUT or DELETE)."""
    for method in ("GET", "POST", "OPTIONS"):
        response = await api.request(method, "/api/alerts/rules/some-rule")
        assert response.status_code == 405
        assert response.headers["allow"] == "DELETE, PUT"
        assert response.json() == {"detail": "Method Not Allowed"}
    answer = await api.delete("/api/pairs")
    assert (answer.status_code, answer.headers["allow"]) == (405, "GET, PUT")


async def test_the_document_states_error_bodies_and_404s(api: httpx.AsyncClient) -> None:
    document = (await api.get("/api/openapi.json")).json()
    detail = document["components"]["schemas"]["HTTPValidationError"]["properties"]["detail"]
    assert {"type": "string"} in detail["anyOf"]  # our own checks answer {"detail": "text"}
    rule = document["paths"]["/api/alerts/rules/{rule_id}"]
    assert "404" in rule["delete"]["responses"] and "404" in rule["put"]["responses"]
    assert "404" not in document["paths"]["/api/pairs"]["get"]["responses"]
    pair = next(
        p for p in document["paths"]["/api/analytics/{pair}"]["get"]["parameters"]
        if p["name"] == "pair"
    )  # fmt: skip
    pattern = re.compile(pair["schema"]["pattern"])
    assert pattern.match("ETHUSDT-BTCUSDT") and pattern.match("ethusdt/btcusdt")
    assert not pattern.match("BTCUSDT-BTCUSDT") and not pattern.match("0")
