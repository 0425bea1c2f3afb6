"""Files in the upload formats, built from known prices, for tests of datasets and the API.

Every builder returns the file's bytes and the rows it holds as ``(ts_ms, symbol, price,
qty)``: the ground truth a stored dataset must equal.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import numpy as np

Rows = list[tuple[int, str, float, float]]
T0_MS = 1_795_000_000_000  # 2026-11-18


def prices(n: int, seed: int = 1, start: float = 100.0) -> list[float]:
    """A random walk of ``n`` prices rounded to 2 decimals (exact in text and binary)."""
    rng = np.random.default_rng(seed)
    walk = start * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    return [round(float(p), 2) for p in walk]


def agg_trades(
    symbol: str, n: int, *, header: bool = True, seed: int = 1, step_ms: int = 250
) -> tuple[bytes, Rows]:
    lines = [
        "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
    ]
    rows: Rows = []
    for i, price in enumerate(prices(n, seed)):
        ts = T0_MS + i * step_ms
        qty = round(0.001 * (i % 7 + 1), 3)
        lines.append(f"{1000 + i},{price:.2f},{qty:.3f},{5000 + 2 * i},{5001 + 2 * i},{ts},false")
        rows.append((ts, symbol, price, qty))
    return _text(lines if header else lines[1:]), rows


def trades(symbol: str, n: int, *, header: bool = True, seed: int = 2) -> tuple[bytes, Rows]:
    lines = ["id,price,qty,quote_qty,time,is_buyer_maker"]
    rows: Rows = []
    for i, price in enumerate(prices(n, seed, 2000.0)):
        ts = T0_MS + i * 400
        lines.append(f"{77 + i},{price:.2f},0.500,{price * 0.5:.4f},{ts},true")
        rows.append((ts, symbol, price, 0.5))
    return _text(lines if header else lines[1:]), rows


def klines_1m(symbol: str, n: int, *, header: bool = True, seed: int = 3) -> tuple[bytes, Rows]:
    lines = [
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore"
    ]
    rows: Rows = []
    for i, close in enumerate(prices(n, seed, 50.0)):
        ts = T0_MS + i * 60_000
        lines.append(
            f"{ts},{close:.2f},{close + 1:.2f},{close - 1:.2f},{close:.2f},{10 + i}.5,"
            f"{ts + 59_999},123.4,42,1.0,2.0,0"
        )
        rows.append((ts, symbol, close, 10 + i + 0.5))
    return _text(lines if header else lines[1:]), rows


def generic(
    symbols: tuple[str, ...], n: int, *, iso: bool = False, qty: bool = True, seed: int = 4
) -> tuple[bytes, Rows]:
    """``timestamp,symbol,price[,qty]``: every symbol at every step (one second apart)."""
    lines = ["timestamp,symbol,price,qty" if qty else "timestamp,symbol,price"]
    rows: Rows = []
    series = {s: prices(n, seed + k, 100.0 * (k + 1)) for k, s in enumerate(symbols)}
    for i in range(n):
        ts = T0_MS + i * 1000
        stamp = (
            datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds")
            if iso
            else str(ts)
        )
        for symbol in symbols:
            price = series[symbol][i]
            lines.append(f"{stamp},{symbol},{price:.2f}" + (",1.5" if qty else ""))
            rows.append((ts, symbol, price, 1.5 if qty else float("nan")))
    return _text(lines), rows


def zipped(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return buffer.getvalue()


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def cointegrated_cents(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)``: x a walk near 200, ``y = 10 + x / 2 + AR(1) spread`` (phi 0.85, half-life
    ~4 bars), both rounded to cents so they pass through CSV and Redis exactly."""
    rng = np.random.default_rng(seed)
    x = 200.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.85 * s[t - 1] + rng.normal(0, 0.2)
    return np.round(10.0 + 0.5 * x + s, 2), np.round(x, 2)


def generic_minutes(columns: dict[str, np.ndarray], start_ms: int = T0_MS) -> bytes:
    """``timestamp,symbol,price``: row ``i`` of every column in minute ``i`` (a few ms apart)."""
    lines = ["timestamp,symbol,price"]
    n = len(next(iter(columns.values())))
    for i in range(n):
        at = start_ms + i * 60_000
        lines += [f"{at + k},{name},{v[i]:.2f}" for k, (name, v) in enumerate(columns.items())]
    return _text(lines)
