"""Datasets for the research pages' browser tests: cointegrated legs at 1-minute steps."""

from __future__ import annotations

import httpx
import numpy as np

T0 = 1_795_000_020_000 // 60_000 * 60_000


def legs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 200.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.85 * s[t - 1] + rng.normal(0, 0.2)
    return np.round(10.0 + 0.5 * x + s, 2), np.round(x, 2)


def csv_of(columns: dict[str, np.ndarray]) -> bytes:
    lines = ["timestamp,symbol,price"]
    n = len(next(iter(columns.values())))
    for i in range(n):
        lines += [f"{T0 + i * 60_000 + k},{name},{v[i]:.2f}" for k, (name, v) in
                  enumerate(columns.items())]  # fmt: skip
    return ("\n".join(lines) + "\n").encode()


def upload(url: str, name: str, data: bytes) -> dict[str, object]:
    answer = httpx.post(f"{url}/api/datasets", files={"file": (name, data)}, timeout=60)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body
