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


async def test_the_document_states_inputs_as_the_checks_read_them(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/api/openapi.json")).json()["paths"]
    pairs = paths["/api/pairs"]["put"]
    assert "400" in pairs["responses"]  # a body that is not JSON
    item = pairs["requestBody"]["content"]["application/json"]["schema"]["items"]["pattern"]
    assert re.match(item, "ETHUSDT/BTCUSDT") and not re.match(item, "")
    ticks = paths["/api/downloads/ticks"]["get"]["responses"]["200"]["content"]
    assert "text/csv" in ticks  # the file types it sends, not JSON
    rule = paths["/api/alerts/rules/{rule_id}"]["put"]["requestBody"]["content"]
    schema = rule["application/json"]["schema"]
    assert schema["required"] == ["metric", "op", "threshold"]
    scopes = [s["properties"]["metric"]["enum"] for s in schema["oneOf"]]
    assert "zscore" in scopes[0] and "zscore" not in scopes[1]
    upload = paths["/api/datasets"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["file"]
    # what the document allows is served: a rule body built from it
    body = {"metric": "zscore", "op": "abs>", "threshold": 2.5, "pair": "ETHUSDT/BTCUSDT"}
    assert (await api.put("/api/alerts/rules/doc-rule", json=body)).status_code == 200
    # bytes that are not even text: FastAPI cannot parse the body at all (400, documented)
    broken = await api.put(
        "/api/pairs", content=b"\xff\xfe{", headers={"content-type": "application/json"}
    )
    assert broken.status_code == 400
