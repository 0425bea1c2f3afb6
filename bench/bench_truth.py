"""Accuracy, not speed: the engine's statistics against the sim's ground truth (issue 13).

Twenty seeded one-hour sim runs of the default pairs on the 1 s last-trade grid; per pair the
mean of estimate / truth for the OU (AR(1)-plus-noise) half-life and the plain AR(1) one, the
90% interval's coverage, the OLS and Kalman betas and the spread's sd. ``reference`` is the
plain AR(1) figure of the same runs where one exists: the bias the OU fit removes.
"""

from __future__ import annotations

from spreadbus.testing.simtruth import summarise, table, truth_runs

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
    return rows
