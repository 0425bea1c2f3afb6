"""The OpenAPI document tells the truth: schemathesis (``--checks all``) against a real
``spreadbus web`` finds 0 failures; 405s list every method of a path, error bodies and 404s
are documented, path parameters carry the rules their checks apply.

The schemathesis run uses the repository's ``schemathesis.toml``, which names, operation by
operation, the 422s that answer rules OpenAPI cannot state (y != x, end_ms >= start_ms, a
file's content). The seed is fixed so a failure reproduces; a drift of the document or of
the API fails it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .served import serving

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SEED = 20261129
MAX_EXAMPLES = 30


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_schemathesis_finds_no_failure_on_a_real_web(
    redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    with serving(redis_url, data_dir, tmp_path / "web.err") as web:
        started = time.monotonic()
        run = subprocess.run(
            [
                str(SCHEMATHESIS), "--config-file", str(ROOT / "schemathesis.toml"), "--no-color",
                "run", f"{web.url}/api/openapi.json", "--checks", "all",
                "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
            ],
            cwd=tmp_path, capture_output=True, text=True, timeout=200, check=False,
        )  # fmt: skip
        took_s = time.monotonic() - started
        assert web.process.poll() is None, "the web died under schemathesis"
    out = run.stdout + run.stderr
    print(f"schemathesis: {took_s:.1f} s, exit {run.returncode}\n{out[-600:]}")
    assert run.returncode == 0, out[-12_000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", out)
    assert counts, out[-2000:]
    generated, passed = int(counts.group(1)), int(counts.group(2))
    assert generated == passed and generated > 30 * MAX_EXAMPLES, out[-2000:]  # it ran them


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
