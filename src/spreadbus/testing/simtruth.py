"""The engine's statistics against the simulated market's ground truth, run by run.

One run: a seeded :class:`~spreadbus.gateway.sim.SimMarket` over the default pairs for an hour,
turned into the engine's 1 s grid (each symbol's last trade price per second, carried
forward), then every statistic over the whole hour next to what :meth:`SimMarket.truth` says
it should be. Used by the slow test ``tests/analytics/test_truth.py`` (which asserts) and
``bench/bench_truth.py`` (which prints the table); no Redis, no clock.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from spreadbus import analytics as an
from spreadbus.config import DEFAULT_PAIRS, parse_pair
from spreadbus.engine.pairstate import PairState
from spreadbus.gateway.sim import PairTruth, SimMarket

START_MS = 1_795_305_600_000  # a whole hour, so seeds differ only by their draws
HOUR_S = 3600


@dataclass(frozen=True, slots=True)
class PairRun:
    """One pair's whole-run estimates next to the truth (half-lives in bars = seconds)."""

    pair: str
    seed: int
    truth: PairTruth
    beta_ols: float
    kalman_beta: float  # the engine's filter after the run's last bar
    half_life_ar1: float
    ou: an.OUFit
    resid_sd: float  # sd of the whole run's OLS residual
    window_sd: float  # the engine's spread_std (the z-score's sigma) on its last window
    adf_pvalue: float
    eg_pvalue: float
    hurst: float
    hurst_model: float  # the variogram slope an exact OU with the true parameters gives
    window_ou: tuple[float, float, float]  # the engine's half-life, lo, hi on its last window
    corr_engine: float  # the engine's rolling correlation after the last bar
    corr_pandas: float  # pandas on the same window: the reference implementation


def sim_bars(seed: int, seconds: int = HOUR_S, pairs: Sequence[str] = DEFAULT_PAIRS) -> tuple[
    dict[str, PairTruth], pd.DataFrame
]:  # fmt: skip
    """Truth and 1 s last-trade bars (rows: second, columns: symbol) of one seeded run."""
    market = SimMarket(pairs, seed=seed, start_ms=START_MS)
    index = np.arange(START_MS // 1000, START_MS // 1000 + seconds)
    columns: dict[str, pd.Series] = {}
    for symbol, (times, prices) in market.trade_arrays(START_MS + seconds * 1000 - 1).items():
        second = times // 1000
        last = np.r_[second[1:] != second[:-1], True]
        columns[symbol] = pd.Series(prices[last], index=second[last]).reindex(index).ffill()
    return market.truth(), pd.DataFrame(columns).dropna()


def hurst_of_ou(half_life: float, sigma: float, n: int) -> float:
    """What :func:`analytics.hurst` converges to on an exact OU sampled per bar.

    The variogram of an OU is ``2 sigma^2 (1 - phi^tau)``: it is not a power law, so the
    fitted slope depends on the lag range the estimator uses (the same as :func:`hurst`'s
    defaults for ``n`` points) against the half-life.
    """
    top = min(100, n // 4)
    lags = np.unique(np.geomspace(2, top, num=min(20, top - 1)).round().astype(np.int64))
    phi = 0.5 ** (1.0 / half_life)
    sd = np.sqrt(2.0 * sigma**2 * (1.0 - phi ** lags.astype(np.float64)))
    return float(np.polyfit(np.log(lags.astype(np.float64)), np.log(sd), 1)[0])


def pair_run(pair: str, seed: int, truth: PairTruth, bars: pd.DataFrame, window: int) -> PairRun:
    y_name, x_name = parse_pair(pair)
    ys, xs = bars[y_name].to_numpy(), bars[x_name].to_numpy()
    fit = an.ols_hedge(ys, xs)
    resid = an.spread(ys, xs, fit.beta, fit.alpha)
    state = PairState(pair, window=window, stale_s=60, history_s=window)
    bar_rows = ((int(s), y, x) for s, y, x in zip(bars.index, ys, xs, strict=True))
    for job in state.on_bars(bar_rows, live=False):  # the engine's own jobs, on its last window
        job.run()
    returns = bars[[y_name, x_name]].iloc[-window - 1 :].pct_change()
    half_life = truth.half_life_s if truth.half_life_s is not None else math.nan
    return PairRun(
        pair=pair,
        seed=seed,
        truth=truth,
        beta_ols=fit.beta,
        kalman_beta=float(state.values["kalman_beta"]),
        half_life_ar1=an.half_life_ar1(resid),
        ou=an.ou_fit(resid),
        resid_sd=float(np.std(resid, ddof=1)),
        window_sd=float(state.values["spread_std"]),
        adf_pvalue=an.adf(resid, maxlag=1, autolag=None).pvalue,
        eg_pvalue=an.engle_granger(ys, xs, maxlag=1, autolag=None).pvalue,
        hurst=an.hurst(resid),
        hurst_model=hurst_of_ou(half_life, truth.spread_sigma, resid.size),
        window_ou=(
            float(state.values["half_life"]),
            float(state.values["half_life_lo"]),
            float(state.values["half_life_hi"]),
        ),
        corr_engine=float(state.values["corr"]),
        corr_pandas=float(returns[y_name].corr(returns[x_name])),
    )


def truth_runs(seeds: Iterable[int], window: int = 300) -> list[PairRun]:
    runs: list[PairRun] = []
    for seed in seeds:
        truth, bars = sim_bars(seed)
        runs.extend(pair_run(p, seed, t, bars, window) for p, t in truth.items() if t.exact)
    return runs


@dataclass(frozen=True, slots=True)
class PairSummary:
    """Means over runs of estimate / truth, and the interval's coverage."""

    pair: str
    runs: int
    half_life_ou: float
    half_life_ar1: float
    coverage: float  # share of runs whose interval holds the true half-life
    window_half_life: float  # median of the engine's 300-bar half-life / truth
    window_coverage: float  # share of runs whose 300-bar interval holds the truth
    window_open: float  # share of runs whose 300-bar interval reaches inf
    beta_ols: float
    beta_ols_worst: float  # the largest |estimate / truth - 1| of one run
    kalman_beta: float
    spread_sd_ou: float  # latent spread sd of the OU fit
    resid_sd: float  # observed residual sd (latent + noise)
    window_sd: float  # the engine's z-score sigma on a 300-bar window
    hurst: float
    hurst_model: float
    adf_rejects: float  # share of runs with ADF p < 0.05 (the truth is stationary)
    eg_rejects: float
    corr_gap: float  # largest |engine - pandas| correlation


def summarise(runs: Sequence[PairRun]) -> list[PairSummary]:
    out: list[PairSummary] = []
    for pair in dict.fromkeys(r.pair for r in runs):
        rs = [r for r in runs if r.pair == pair]

        def mean_ratio(values: Iterable[tuple[float, float]]) -> float:
            return statistics.fmean(v / t for v, t in values)

        hl = [(r.ou, r.truth.half_life_s or math.nan) for r in rs]
        out.append(
            PairSummary(
                pair=pair,
                runs=len(rs),
                half_life_ou=mean_ratio((o.half_life, t) for o, t in hl),
                half_life_ar1=mean_ratio(
                    (r.half_life_ar1, t) for r, (_, t) in zip(rs, hl, strict=True)
                ),
                coverage=statistics.fmean(o.half_life_lo <= t <= o.half_life_hi for o, t in hl),
                window_half_life=statistics.median(
                    r.window_ou[0] / t for r, (_, t) in zip(rs, hl, strict=True)
                ),
                window_coverage=statistics.fmean(
                    r.window_ou[1] <= t <= r.window_ou[2] for r, (_, t) in zip(rs, hl, strict=True)
                ),
                window_open=statistics.fmean(math.isinf(r.window_ou[2]) for r in rs),
                beta_ols=mean_ratio((r.beta_ols, r.truth.beta) for r in rs),
                beta_ols_worst=max(abs(r.beta_ols / r.truth.beta - 1.0) for r in rs),
                kalman_beta=mean_ratio((r.kalman_beta, r.truth.beta) for r in rs),
                spread_sd_ou=mean_ratio((r.ou.spread_sd, r.truth.spread_sigma) for r in rs),
                resid_sd=mean_ratio((r.resid_sd, r.truth.spread_sigma) for r in rs),
                window_sd=mean_ratio((r.window_sd, r.truth.spread_sigma) for r in rs),
                hurst=statistics.fmean(r.hurst for r in rs),
                hurst_model=statistics.fmean(r.hurst_model for r in rs),
                adf_rejects=statistics.fmean(r.adf_pvalue < 0.05 for r in rs),
                eg_rejects=statistics.fmean(r.eg_pvalue < 0.05 for r in rs),
                corr_gap=max(abs(r.corr_engine - r.corr_pandas) for r in rs),
            )
        )
    return out


def table(summaries: Sequence[PairSummary]) -> str:
    """Plain-text tables: estimate / truth per pair and method, over the hour and over the
    engine's 300-bar window."""
    head = (
        f"{'pair':<17}{'runs':>5}{'HL ou':>8}{'HL ar1':>8}{'cover90':>8}{'beta':>8}"
        f"{'worst':>7}{'kalman':>8}{'sd ou':>7}{'resid':>7}{'win sd':>7}{'hurst':>7}{'model':>7}"
        f"{'adf<5%':>7}{'eg<5%':>7}"
    )
    lines = [head]
    for s in summaries:
        lines.append(
            f"{s.pair:<17}{s.runs:>5}{s.half_life_ou:>8.3f}{s.half_life_ar1:>8.3f}"
            f"{s.coverage:>8.2f}{s.beta_ols:>8.4f}{s.beta_ols_worst:>7.3f}{s.kalman_beta:>8.3f}"
            f"{s.spread_sd_ou:>7.3f}{s.resid_sd:>7.3f}{s.window_sd:>7.3f}{s.hurst:>7.3f}"
            f"{s.hurst_model:>7.3f}"
            f"{s.adf_rejects:>7.2f}{s.eg_rejects:>7.2f}"
        )
    lines.append(
        "HL, beta, kalman, sd: mean of estimate / truth (sd ou: the OU fit's latent sd, resid: "
        "the hour's residual sd, win sd: the engine's z-score sigma on its 300-bar window); "
        "worst: largest |beta / truth - 1|; "
        "hurst: mean estimate vs an exact OU's; adf/eg: share of runs rejecting at 5%"
    )
    lines.append(f"{'engine, last 300 bars':<22}{'HL/truth median':>16}{'cover90':>9}{'hi=inf':>8}")
    for s in summaries:
        lines.append(
            f"{s.pair:<22}{s.window_half_life:>16.3f}{s.window_coverage:>9.2f}{s.window_open:>8.2f}"
        )
    return "\n".join(lines)
