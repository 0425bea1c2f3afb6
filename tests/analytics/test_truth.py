"""The statistics against the sim's ground truth over 20 seeded one-hour runs (issue 13).

Whole-hour estimates on the engine's 1 s last-trade grid of the default pairs. Tolerances are
the issue's: the mean OU half-life within 10% of the truth, its 90% interval covering the
truth in at least 80% of runs, the OLS beta within 2%. The plain AR(1) half-life is checked to
be biased (below 90% of the truth on average), so the test shows the noise it corrects for is
really there. The printed table is the one in the issue note (``pytest -s`` shows it).
"""

from __future__ import annotations

import pytest

from spreadbus.testing.simtruth import summarise, table, truth_runs

SEEDS = range(1, 21)


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~1 min on an idle machine (20 hours of sim, 60 ML fits)
def test_statistics_against_sim_truth() -> None:
    summaries = summarise(truth_runs(SEEDS))
    print("\n" + table(summaries))
    assert [s.pair for s in summaries] == ["ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT", "BNBUSDT/BTCUSDT"]
    for s in summaries:
        assert s.runs == len(SEEDS)
        assert s.half_life_ou == pytest.approx(1.0, abs=0.10), s
        assert s.coverage >= 0.80, s
        assert s.half_life_ar1 < 0.90, s  # the bias ou_fit removes
        assert s.beta_ols == pytest.approx(1.0, abs=0.02), s
        # the latent spread's sd: the noise is a small share of the observed residual's
        assert s.spread_sd_ou == pytest.approx(1.0, abs=0.10), s
        assert s.resid_sd == pytest.approx(1.0, abs=0.15), s
        # a 300-bar window is only ~15 half-lives: its sample sd reads low (z-scores high)
        assert s.window_sd < s.resid_sd, s
        # the truth is stationary and cointegrated: every hour's tests must see it
        assert s.adf_rejects == 1.0 and s.eg_rejects == 1.0, s
        # the variogram slope of an exact OU over the same lags; noise flattens it a little
        assert s.hurst == pytest.approx(s.hurst_model, abs=0.06), s
        assert s.hurst < 0.45, s  # reads as mean-reverting
        assert s.corr_gap < 1e-9, s  # the engine's rolling corr is pandas' on the same bars
        # the engine's own 300-bar figure: short in the median (small-sample bias of phi),
        # which its interval owns up to (measured: 0.73-0.83 and 80-85% coverage)
        assert 0.5 < s.window_half_life < 1.0, s
        assert s.window_coverage >= 0.70, s
