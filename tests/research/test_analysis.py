"""Offline pair analytics: the engine's snapshot field names, numbers against statsmodels /
numpy computed here on the same bars."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.tsa.stattools import adfuller, coint
from statsmodels.tsa.vector_ar.vecm import coint_johansen

from spreadbus.analytics import AnalyticsInputError
from spreadbus.analytics.carry import CARRY_FIELDS
from spreadbus.engine.pairstate import STATISTIC_FIELDS
from spreadbus.research.analysis import pair_analytics


def _bars(n: int = 800, seed: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = 3000.0 * np.exp(np.cumsum(rng.normal(0, 4e-3, n)))
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = 0.9 * s[t - 1] + rng.normal(0, 1.0)
    return 1_795_000_000_000 + 60_000 * np.arange(n), 5.0 + 0.04 * x + s, x


@pytest.mark.parametrize("hedge", ["ols", "huber", "theil_sen", "kalman"])
def test_fields_are_the_engines_and_match_references(hedge: str) -> None:
    ts, y, x = _bars()
    out = pair_analytics(ts, y, x, "1m", hedge)  # type: ignore[arg-type]
    fields = out["fields"]
    assert isinstance(fields, dict)
    assert set(STATISTIC_FIELDS) - set(CARRY_FIELDS) <= set(fields)  # funding: live only
    ols = sm.OLS(y, sm.add_constant(x)).fit()
    if hedge == "ols":
        assert fields["beta"] == pytest.approx(ols.params[1], rel=1e-9)
        assert fields["r2"] == pytest.approx(ols.rsquared, rel=1e-9)
    elif hedge == "huber":
        rlm = sm.RLM(y, sm.add_constant(x - x.mean()), M=sm.robust.norms.HuberT()).fit()
        assert fields["beta"] == pytest.approx(rlm.params[1], rel=1e-6)
    else:  # theil_sen and kalman: near the true 0.04
        assert fields["beta"] == pytest.approx(0.04, abs=0.004)
    spread = y - fields["alpha"] - fields["beta"] * x
    if hedge != "kalman":
        assert fields["spread_bar"] == pytest.approx(spread[-1], rel=1e-9, abs=1e-9)
        assert fields["spread_std"] == pytest.approx(np.std(spread, ddof=1), rel=1e-9)
        adf = adfuller(spread, maxlag=1, autolag=None, result_object=False)
        assert fields["adf_pvalue"] == pytest.approx(adf[1], abs=1e-9)
    assert fields["eg_pvalue"] == pytest.approx(coint(y, x, maxlag=1, autolag=None)[1], abs=1e-9)
    ry, rx = y[1:] / y[:-1] - 1, x[1:] / x[:-1] - 1
    assert fields["corr"] == pytest.approx(np.corrcoef(ry, rx)[0, 1], abs=1e-12)
    assert fields["kalman_beta"] == pytest.approx(0.04, abs=0.004)
    assert (fields["last_price_y"], fields["last_price_x"], fields["n"]) == (y[-1], x[-1], 800)
    ref = coint_johansen(np.column_stack([y, x]), 0, 1)
    panel = out["johansen"]
    assert isinstance(panel, dict)
    np.testing.assert_allclose(panel["trace_stat"], ref.lr1, rtol=1e-9)
    np.testing.assert_allclose(panel["max_eig_stat"], ref.lr2, rtol=1e-9)
    np.testing.assert_allclose(np.array(panel["eigenvectors"]).T, ref.evec, rtol=1e-9)
    series = out["series"]
    assert isinstance(series, dict)
    assert series["ts_ms"][-1] == ts[-1] and len(series["zscore"]) == 800


def test_too_few_bars_and_bad_hedge() -> None:
    ts, y, x = _bars(10)
    with pytest.raises(AnalyticsInputError, match="too few bars"):
        pair_analytics(ts, y, x, "1m", "ols")
    ts, y, x = _bars(100)
    with pytest.raises(AnalyticsInputError, match="hedge"):
        pair_analytics(ts, y, x, "1m", "magic")  # type: ignore[arg-type]
