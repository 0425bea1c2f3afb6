"""Datasets for the research pages' browser tests, uploaded through the API."""

from __future__ import annotations

import httpx

from spreadbus.testing.datafiles import cointegrated_cents as legs
from spreadbus.testing.datafiles import generic_minutes as csv_of

__all__ = ["csv_of", "legs", "upload"]


def upload(url: str, name: str, data: bytes) -> dict[str, object]:
    answer = httpx.post(f"{url}/api/datasets", files={"file": (name, data)}, timeout=60)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body
