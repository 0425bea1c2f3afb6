"""One-line meaning of every pair-snapshot field, with its known bias: the README's analytics
section and the dashboard's tooltips both come from here.

``python -m spreadbus.analytics.glossary`` prints the README table; a test keeps the README
equal to it and every field of the engine's pair snapshot covered. Figures quoted (e.g. "within
5%") are from ``tests/analytics/test_truth.py``: 20 seeded one-hour sim runs of the default
pairs on 1 s last-trade bars, against the sim's ground truth.
"""

from __future__ import annotations

from typing import Final

GLOSSARY: Final[dict[str, str]] = {
    # hedge, spread and z-score, per bar, over the window
    "beta": "OLS hedge ratio of y on x over the window: units of x per unit of y. Unbiased; "
    "over one hour of 1 s bars within 0.1% of the sim's truth on average (one run off by "
    "up to 5% when x barely moved that hour).",
    "alpha": "OLS intercept over the window, in y's price units: spread = y - alpha - beta x.",
    "r2": "Share of y's variance over the window explained by the hedge.",
    "kalman_beta": "Dynamic hedge ratio: Kalman filter on both legs' returns since the first "
    "bar, mapped to price units. Follows a drifting hedge; on a fixed one it wanders a few "
    "% (mean error 1-8% per pair over an hour of sim).",
    "kalman_alpha": "Intercept of the Kalman hedge, in y's price units.",
    "spread_bar": "y - alpha - beta x at the latest closed 1 s bar, in y's price units.",
    "zscore_bar": "spread_bar over spread_std.",
    "spread_std": "Sample sd of the window's spread (the z-score's sigma), in y's price units, "
    "last-trade noise included. A 300-bar window is only ~15 half-lives: in the sim it reads "
    "7-13% below the true sd, so z-scores read that much high.",
    "corr": "Correlation of the legs' 1 s returns over the window (pandas' on the same bars). "
    "Last trades of two legs are not simultaneous, which pulls 1 s correlations toward 0.",
    "spread": "Live spread from the legs' latest trades and the latest bar's hedge.",
    "zscore": "Live spread over spread_std: what entry and exit rules read.",
    "last_price_y": "Latest trade price of y seen by the engine.",
    "last_price_x": "Latest trade price of x seen by the engine.",
    # window tests, every few seconds
    "adf_stat": "Augmented Dickey-Fuller statistic of the window's spread (1 lag).",
    "adf_pvalue": "ADF p-value (MacKinnon): low means stationary. Optimistic on a fitted "
    "spread (the hedge was chosen to make it look stationary) and on noisy last-trade bars: "
    "prefer eg_pvalue for the pair.",
    "eg_stat": "Engle-Granger cointegration statistic of y on x over the window.",
    "eg_pvalue": "Engle-Granger p-value: low means cointegrated. Accounts for the fitted hedge; "
    "rejected in 20 of 20 sim hours for every default pair.",
    "half_life": "Time for a spread deviation to halve, in seconds: OU fit with observation "
    "noise (ARMA(1,1) maximum likelihood). Within 5% of the sim's truth over an hour; on a "
    "300-bar window short (median 73-83% of the truth): read it with its interval.",
    "half_life_lo": "Lower end of the half-life's 90% interval, seconds.",
    "half_life_hi": "Upper end of the half-life's 90% interval, seconds; inf when the window "
    "cannot rule out no mean reversion. Covers the truth in 80-90% of sim runs (hour or "
    "300-bar window).",
    "half_life_ar1": "Half-life from a plain AR(1) fit, seconds, kept for comparison: reads "
    "noise as reversion, 24-52% short on the sim's 1 s bars.",
    "spread_noise_sd": "Sd of the spread's bar-to-bar observation noise (stale last trades, "
    "tick rounding) that the OU fit separates out, in y's price units.",
    "hurst": "Hurst exponent of the spread from its variogram over lags 2-100: < 0.5 mean "
    "reverting. Depends on the lag range against the half-life; noise lowers it slightly.",
    "spread_vol": "Annualised volatility of the spread's 1 s returns on gross notional "
    "(y + |beta| x).",
    "var_95": "1 s historical 95% value at risk of the spread position, fraction of gross "
    "notional (positive = loss).",
    "cvar_95": "Mean loss beyond var_95 (expected shortfall), fraction of gross notional.",
    "max_drawdown": "Largest peak-to-trough fall of the spread position's equity over the "
    "window, fraction of the peak.",
    "sharpe_ann": "Annualised mean over sd of the spread position's 1 s returns; over a "
    "5-minute window mostly noise.",
    "sortino_ann": "Annualised mean over downside deviation of those returns; inf with no "
    "losing second.",
    # funding carry, from the gateway's markPrice feed
    "funding_diff_bps": "Funding rate of y minus that of x for their next events, bps per "
    "funding interval (positive: longs of y pay more).",
    "funding_diff_ann_pct": "The same difference annualised with each leg's own funding "
    "interval, % a year.",
    "carry_next_long_bps": "Funding received by long 1 y / short beta x through each leg's "
    "next funding event, bps of gross notional (negative = paid).",
    "carry_next_short_bps": "The same for the short spread.",
    "carry_half_life_long_bps": "Funding the long spread collects over one half-life from now "
    "(only events that close count), bps of gross notional.",
    "carry_half_life_short_bps": "The same for the short spread.",
    "mark_index_y_bps": "y's mark price over its index price, bps.",
    "mark_index_x_bps": "x's mark price over its index price, bps.",
    # bookkeeping
    "bars": "1 s bars the window statistics are based on; every statistic is NaN below 20.",
    "window_bars": "Bars a full window holds (warming up while bars < window_bars).",
    "bar_ms": "Time of the latest closed bar, epoch ms.",
    "stats_ms": "Bar the ADF, AR(1) half-life, Hurst and risk figures describe, epoch ms.",
    "ou_ms": "Bar the OU half-life and its interval describe, epoch ms.",
    "eg_ms": "Bar the Engle-Granger figures describe, epoch ms.",
    "funding_ms": "When the carry figures were computed from the feed, epoch ms.",
    "tick_ms": "Trade time of the latest tick behind the live spread, epoch ms.",
    "updated_ms": "When the engine wrote this snapshot, epoch ms.",
}


def markdown() -> str:
    """The README table: one row per field."""
    rows = ["| field | meaning |", "| --- | --- |"]
    rows += [f"| `{field}` | {text} |" for field, text in GLOSSARY.items()]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown())
