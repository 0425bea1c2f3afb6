"""The cointegration screener: 50 symbols x 1,440 one-minute bars (1,225 pairs, Engle-Granger
in both directions = 2,450 tests) against a loop of ``statsmodels.tsa.stattools.coint`` over
the same 2,450 ordered pairs, measured in the same run on the same data.

``value`` is the screener's wall time for the whole universe (target: at most 10 s);
``reference`` the statsmodels loop's; ``ratio`` = reference / value (target: at least 10).
Both run the same test (``trend="c"``, one fixed lag, no lag search) and the p-values are
checked equal within 1e-6 before any time is reported.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from statsmodels.tsa.stattools import coint

from spreadbus.research.screener import EG_MAXLAG, eg_stats, mackinnon_pvalues, screen

SYMBOLS = 50
BARS = 1440
ROUNDS = 3  # screener rounds; the best is reported (the reference runs once: it is slow)


def _universe(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Ten groups of five legs riding one random walk each (cointegrated within a group)."""
    rng = np.random.default_rng(seed)
    drivers = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, (BARS, SYMBOLS // 5)), axis=0))
    columns = []
    for k in range(SYMBOLS):
        driver = drivers[:, k // 5]
        noise = np.cumsum(rng.normal(0.0, 0.02, BARS)) * 0.05 + rng.normal(0.0, 0.05, BARS)
        columns.append(rng.uniform(0.5, 2.0) * driver + noise + 10.0)
    return np.column_stack(columns), [f"S{k:02d}USDT" for k in range(SYMBOLS)]


def run() -> list[dict[str, object]]:
    prices, names = _universe()
    times = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        rows = screen(prices, names)
        times.append(time.perf_counter() - started)
    value = min(times)
    started = time.perf_counter()
    reference = np.full((SYMBOLS, SYMBOLS), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(SYMBOLS):
            for j in range(SYMBOLS):
                if i != j:
                    reference[i, j] = coint(
                        prices[:, i], prices[:, j], maxlag=EG_MAXLAG, autolag=None
                    )[1]
    ref_s = time.perf_counter() - started
    ours = mackinnon_pvalues(eg_stats(prices)[0])
    off = np.nanmax(np.abs(ours - reference))
    if not off <= 1e-6:
        raise AssertionError(f"screener p-values differ from statsmodels by {off}")
    return [
        {
            "case": f"{SYMBOLS} symbols x {BARS} bars ({len(rows)} pairs, both directions)",
            "metric": "screen wall time",
            "value": value,
            "unit": "s",
            "reference": ref_s,
            "ratio": ref_s / value,
        },
        {
            "case": "max |p - statsmodels p| over 2,450 tests",
            "metric": "p-value error",
            "value": float(off),
            "unit": "",
        },
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
