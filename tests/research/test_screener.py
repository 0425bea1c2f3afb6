"""The vectorised screener against statsmodels ``coint`` pair by pair, on generated
cointegrated and independent series."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from statsmodels.regression.linear_model import OLS
from statsmodels.tools import add_constant
from statsmodels.tsa.stattools import coint

from spreadbus.analytics import AnalyticsInputError, half_life, spread
from spreadbus.research.screener import eg_stats, mackinnon_pvalues, screen


def universe(n_bars: int, seed: int) -> tuple[np.ndarray, list[str], set[frozenset[str]]]:
    """Three random-walk drivers; A1/A2 and B1 ride driver A and B with OU spreads
    (cointegrated), the rest are independent walks. Returns prices, names and the truly
    cointegrated pairs."""
    rng = np.random.default_rng(seed)
    walks = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n_bars, 6)), axis=0))

    def ou(half: float) -> np.ndarray:
        out = np.zeros(n_bars)
        phi = 0.5 ** (1 / half)
        for t in range(1, n_bars):
            out[t] = phi * out[t - 1] + rng.normal(0, 0.05)
        return out

    columns = {
        "AAAUSDT": walks[:, 0],
        "AA1USDT": 3.0 + 0.8 * walks[:, 0] + ou(8),
        "AA2USDT": 50.0 + 1.3 * walks[:, 0] + ou(20),
        "BBBUSDT": walks[:, 1] * 20,
        "BB1USDT": 100.0 + 0.5 * walks[:, 1] * 20 + ou(5),
    }
    for k in range(2, 6):
        columns[f"R{k}XUSDT"] = walks[:, k] * (k + 1)
    names = list(columns)
    truth = {
        frozenset(p)
        for p in [
            ("AAAUSDT", "AA1USDT"), ("AAAUSDT", "AA2USDT"), ("AA1USDT", "AA2USDT"),
            ("BBBUSDT", "BB1USDT"),
        ]
    }  # fmt: skip
    return np.column_stack([columns[n] for n in names]), names, truth


@pytest.mark.parametrize("maxlag", [0, 1, 3])
def test_statistics_and_pvalues_equal_statsmodels_coint(maxlag: int) -> None:
    """Every ordered pair: p-value within 1e-6 absolute, statistic within 1e-8 relative."""
    prices, names, _ = universe(600, seed=5)
    stats, beta = eg_stats(prices, maxlag)
    pvalues = mackinnon_pvalues(stats)
    for i in range(len(names)):
        for j in range(len(names)):
            if i == j:
                continue
            ref_stat, ref_p, _ = coint(
                prices[:, i], prices[:, j], trend="c", maxlag=maxlag, autolag=None
            )
            assert pvalues[i, j] == pytest.approx(ref_p, abs=1e-6), (names[i], names[j])
            assert stats[i, j] == pytest.approx(ref_stat, rel=1e-8)
            ols = OLS(prices[:, i], add_constant(prices[:, j])).fit()
            assert beta[i, j] == pytest.approx(ols.params[1], rel=1e-9)


def test_pvalue_tails_match_mackinnonp() -> None:
    """Beyond MacKinnon's table edges (p = 0 and 1) and on both polynomial branches."""
    from statsmodels.tsa.adfvalues import mackinnonp

    stats = np.array([-30.0, -19.0, -5.0, -3.2, -1.0, 0.5, 3.0, 40.0])
    expected = [mackinnonp(s, regression="c", N=2) for s in stats]
    np.testing.assert_allclose(mackinnon_pvalues(stats), expected, rtol=0, atol=1e-12)


def test_ranked_rows_find_the_cointegrated_pairs() -> None:
    """The four cointegrated pairs rank first with p < 0.01; the 1,440-bar independent
    walks mostly do not (p > 0.05 for at least 80% of them); half-life, corr and beta equal
    their library / numpy references."""
    prices, names, truth = universe(1440, seed=9)
    rows = screen(prices, names)
    assert len(rows) == len(names) * (len(names) - 1) // 2
    top = {frozenset(r.pair.split("/")) for r in rows[: len(truth)]}
    assert top == truth
    assert all(r.eg_pvalue < 0.01 for r in rows[: len(truth)])
    rest = rows[len(truth) :]
    assert sum(r.eg_pvalue > 0.05 for r in rest) >= 0.8 * len(rest)
    assert [r.eg_pvalue for r in rows] == sorted(r.eg_pvalue for r in rows)
    column = {n: k for k, n in enumerate(names)}
    returns = prices[1:] / prices[:-1] - 1
    for row in rows:
        y_name, x_name = row.pair.split("/")
        y, x = prices[:, column[y_name]], prices[:, column[x_name]]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref_p = coint(y, x, maxlag=1, autolag=None)[1]
            rev_p = coint(x, y, maxlag=1, autolag=None)[1]
        assert row.eg_pvalue == pytest.approx(ref_p, abs=1e-6)
        assert row.eg_pvalue_reverse == pytest.approx(rev_p, abs=1e-6)
        assert row.eg_pvalue <= row.eg_pvalue_reverse
        fit = OLS(y, add_constant(x)).fit()
        assert row.beta == pytest.approx(fit.params[1], rel=1e-9)
        ref_life = half_life(spread(y, x, fit.params[1], fit.params[0]))
        assert row.half_life == pytest.approx(ref_life, rel=1e-7)
        ref_corr = np.corrcoef(returns[:, column[y_name]], returns[:, column[x_name]])[0, 1]
        assert row.corr == pytest.approx(ref_corr, abs=1e-12)
        assert row.n == 1440


def test_collinear_legs_get_statsmodels_answer() -> None:
    """y an exact multiple of x: statsmodels warns and reports -inf, p = 0; so do we."""
    prices, _, _ = universe(200, seed=2)
    panel = np.column_stack([prices[:, 0], prices[:, 0] * 2.5, prices[:, 3]])
    stats, _ = eg_stats(panel)
    assert stats[0, 1] == -np.inf and stats[1, 0] == -np.inf
    assert mackinnon_pvalues(stats)[0, 1] == 0.0


def test_bad_panels_are_named() -> None:
    prices, names, _ = universe(100, seed=1)
    with pytest.raises(AnalyticsInputError, match="at least 2 symbols"):
        screen(prices[:, :1], names[:1])
    with pytest.raises(AnalyticsInputError, match="too few bars"):
        screen(prices[:10], names)
    bad = prices.copy()
    bad[5, 2] = np.nan
    with pytest.raises(AnalyticsInputError, match="finite"):
        screen(bad, names)
