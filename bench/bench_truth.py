"""Accuracy, not speed: the engine's statistics against the sim's ground truth (issue 13).

Twenty seeded one-hour sim runs of the default pairs on the 1 s last-trade grid; per pair the
mean of estimate / truth for the OU (AR(1)-plus-noise) half-life and the plain AR(1) one, the
90% interval's coverage, the OLS and Kalman betas and the spread's sd. ``reference`` is the
plain AR(1) figure of the same runs where one exists: the bias the OU fit removes.

One speed row for the engine's schedule: ``ou_fit`` on a 300-bar window against the ADF test
(one lag) on the same window, medians of interleaved rounds in the same run.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from spreadbus import analytics as an
from spreadbus.testing.simtruth import sim_bars, summarise, table, truth_runs

SEEDS = range(1, 21)


def run() -> list[dict[str, object]]:
    summaries = summarise(truth_runs(SEEDS))
    print(table(summaries))
    rows: list[dict[str, object]] = []
    for s in summaries:
        rows.append({"case": s.pair, "metric": "half-life / truth", "value": s.half_life_ou,
                     "unit": "ratio", "reference": s.half_life_ar1})  # fmt: skip
        rows.append({"case": s.pair, "metric": "90% interval coverage", "value": s.coverage,
                     "unit": "share"})  # fmt: skip
        rows.append({"case": s.pair, "metric": "beta OLS / truth", "value": s.beta_ols,
                     "unit": "ratio", "reference": s.kalman_beta})  # fmt: skip
    rows.append(_ou_cost())
    return rows


def _ou_cost(rounds: int = 15) -> dict[str, object]:
    _, bars = sim_bars(seed=1, seconds=300)
    ys, xs = bars["ETHUSDT"].to_numpy(), bars["BTCUSDT"].to_numpy()
    fit = an.ols_hedge(ys, xs)
    window = an.spread(ys, xs, fit.beta, fit.alpha)
    ou_ms: list[float] = []
    adf_ms: list[float] = []
    for _ in range(rounds):
        started = time.perf_counter()
        an.ou_fit(window)
        ou_ms.append((time.perf_counter() - started) * 1000.0)
        started = time.perf_counter()
        an.adf(window, maxlag=1, autolag=None)
        adf_ms.append((time.perf_counter() - started) * 1000.0)
    value, reference = statistics.median(ou_ms), statistics.median(adf_ms)
    assert np.isfinite(value)
    return {"case": "300-bar window", "metric": "ou_fit", "value": value, "unit": "ms",
            "reference": reference, "ratio": value / reference}  # fmt: skip
