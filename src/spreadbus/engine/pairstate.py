"""One pair's analytics on its 1-second bars: pure state around :mod:`spreadbus.analytics`.

No Redis, no clock: bar seconds and tick times come in as arguments. Per bar, in O(1):

- OLS hedge ``y = alpha + beta x`` over the last ``window`` bars (:class:`RollingOLS`,
  incremental; a full refit runs on a schedule, see :data:`SCHEDULE`);
- the spread of the bar ``y - alpha - beta x`` and its z-score against the window's
  residuals. OLS residuals with an intercept have mean zero, so the z-score is the spread over
  the residuals' sample standard deviation (ddof=1), which is ``HedgeFit.resid_std`` (ddof=2)
  rescaled: the same number as ``analytics.zscore(analytics.spread(y_w, x_w, beta, alpha),
  n).last`` without building the window's spread each second;
- Kalman hedge (:class:`KalmanHedge`) on each leg's return since the pair's first bar, times
  :data:`KALMAN_SCALE`: the filter starts from a zero state with zero covariance and gives
  intercept and slope the same drift, so on raw prices (or prices divided by their first
  value, all near 1) the level and the slope cannot be told apart (on raw prices its beta is
  exactly ``y / x`` whatever the settings). On scaled returns the regressor moves by O(1) per
  bar, the settings mean the same for a leg at 98,000 as for one at 2, and the slope
  converges to the hedge within a few hundred bars (the warm start provides them). The
  coefficients are mapped back to price units;
- correlation of the legs' one-second returns over the window (:class:`RollingCorr`).

Warm-up: every statistic follows one rule. Until the window holds :data:`MIN_BARS` bars all
statistic fields are NaN; from then on each is computed over the bars there are (at most the
window), so beta, z, correlation and the tests all appear together and are all "over ``bars``
bars". ``bars`` and ``window_bars`` are in the snapshot so a reader can say "warming up: 40 of
300 bars".

Per tick (:meth:`PairState.on_prices`): the live spread and z-score, from the latest prices
with the latest bar's hedge and residual deviation, so the z-score moves with every trade.

On a schedule in bar time, staggered per pair so that 25 pairs never all fall on one second,
heavier tests become :class:`Job` objects that capture the window (arrays) at their bar and
run later, within a time budget, outside the tick path: ADF, AR(1) half-life, Hurst and risk
every 5 s, the OU (AR(1)-plus-noise) half-life with its interval every 15 s (a maximum
likelihood fit, ~15 ms on 300 bars, so the service runs it in a worker process),
Engle-Granger every 30 s, the OLS refit every 60 s. Each
result records the bar it describes (``stats_ms``, ``ou_ms``, ``eg_ms``), so it can be checked
against the library offline.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import numpy as np

from spreadbus.analytics import (
    CARRY_FIELDS,
    AnalyticsInputError,
    FloatArray,
    KalmanHedge,
    LegFunding,
    RollingCorr,
    RollingOLS,
    adf,
    carry,
    engle_granger,
    half_life_ar1,
    hurst,
    ou_fit,
    risk,
    spread,
)
from spreadbus.config import parse_pair
from spreadbus.engine.grid import PairClock

NAN: Final = math.nan
MIN_BARS: Final = 20  # below this a window's statistics are noise: fields stay NaN
KALMAN_SCALE: Final = 1000.0  # the filter sees returns since the first bar in per mille
KALMAN_DELTA: Final = 3e-5  # drift of the state per bar, in those units
KALMAN_OBS_VAR: Final = 1e-2  # observation noise: (0.1 per mille = 1 bp)^2
ADF_MAXLAG: Final = 1  # one fixed lag: one regression instead of an AIC search (~30x faster)
EG_MAXLAG: Final = 1
SECONDS_PER_YEAR: Final = 365 * 24 * 3600  # crypto trades around the clock

# seconds of bar time between runs of each job kind
SCHEDULE: Final[dict[str, int]] = {"stats": 5, "ou": 15, "eg": 30, "refit": 60}
# kinds computed in a worker process when there is one (pure calls on copies of the window):
# the OU maximum-likelihood fit (~15 ms on 300 bars, far more on a busy box), and the ADF,
# Hurst and Engle-Granger statistics, 3-10 ms each on this 2-core box, which at 10k ticks/s
# took 25-30 ms of the loop each second in bursts of 3 ms turns (the engine's p99 at 1k/s:
# 13.7-15.8 ms with them in the loop, 6.9 ms without; ``bench engine``). The refit works on
# the pair's own state and stays.
OFFLOADED_KINDS: Final = frozenset({"ou", "stats", "eg"})

BAR_FIELDS: Final = (
    "beta", "alpha", "r2", "kalman_beta", "kalman_alpha", "corr",
    "spread_bar", "zscore_bar", "spread_std",
)  # fmt: skip
STATS_FIELDS: Final = (
    "adf_stat", "adf_pvalue", "half_life_ar1", "hurst", "spread_vol", "var_95", "cvar_95",
    "max_drawdown", "sharpe_ann", "sortino_ann",
)  # fmt: skip
OU_FIELDS: Final = ("half_life", "half_life_lo", "half_life_hi", "spread_noise_sd")
OU_LEVEL: Final = 0.90  # confidence of the half-life interval
EG_FIELDS: Final = ("eg_stat", "eg_pvalue")
LIVE_FIELDS: Final = ("spread", "zscore", "last_price_y", "last_price_x")
# every number of the snapshot that is a statistic of the pair (what alert rules may watch)
STATISTIC_FIELDS: Final = (
    *BAR_FIELDS, *STATS_FIELDS, *OU_FIELDS, *EG_FIELDS, *LIVE_FIELDS, *CARRY_FIELDS,
)  # fmt: skip
# what ts:analytics:{PAIR}:{metric} records per bar, and from which field
SERIES_FIELDS: Final[dict[str, str]] = {
    "beta": "beta",
    "alpha": "alpha",
    "kalman_beta": "kalman_beta",  # the dashboard's beta chart: OLS against Kalman
    "kalman_alpha": "kalman_alpha",  # with kalman_beta, the Kalman spread from the price bars
    "spread": "spread_bar",
    "zscore": "zscore_bar",
    "corr": "corr",
    "adf_pvalue": "adf_pvalue",
}

Number = float | int


def schedule_offset(pair: str, period: int) -> int:
    """Per-pair phase of a schedule (stable across restarts: not Python's salted hash)."""
    return zlib.crc32(pair.encode()) % period


def window_stats(ys: FloatArray, xs: FloatArray, alpha: float, beta: float) -> dict[str, float]:
    """ADF, AR(1) half-life (bars = seconds), Hurst and risk of the spread of one window.

    Risk is that of holding the spread (long 1 y, short beta x): per-bar returns are the
    spread's change over the gross notional ``y + |beta| x`` of the bar before; ``spread_vol``
    is their annualised volatility, ``var_95``/``cvar_95`` the one-second historical VaR and
    expected shortfall as fractions of gross notional, ``max_drawdown`` the largest fall of
    the compounded equity over the window as a fraction of its peak, ``sharpe_ann`` and
    ``sortino_ann`` the annualised ratios of those returns. A test the window cannot support
    (too short, flat) leaves its fields NaN.
    """
    out = dict.fromkeys(STATS_FIELDS, NAN)
    series = spread(ys, xs, beta, alpha)
    try:
        result = adf(series, maxlag=ADF_MAXLAG, autolag=None)
        out["adf_stat"], out["adf_pvalue"] = result.stat, result.pvalue
    except AnalyticsInputError:
        pass
    with contextlib.suppress(AnalyticsInputError):
        out["half_life_ar1"] = half_life_ar1(series)
    with contextlib.suppress(AnalyticsInputError):
        out["hurst"] = hurst(series)
    gross = ys + abs(beta) * xs
    try:
        report = risk(np.diff(series) / gross[:-1], SECONDS_PER_YEAR)
        out["spread_vol"], out["var_95"], out["cvar_95"] = (
            report.vol_ann,
            report.var_95,
            report.cvar_95,
        )
        out["max_drawdown"] = report.max_drawdown
        out["sharpe_ann"], out["sortino_ann"] = report.sharpe, report.sortino
    except AnalyticsInputError:
        pass
    return out


def ou_stats(ys: FloatArray, xs: FloatArray, alpha: float, beta: float) -> dict[str, float]:
    """OU half-life of one window's spread (bars = seconds) with its 90% interval, robust to
    the last-trade noise of the grid (:func:`spreadbus.analytics.ou_fit`), and that noise's
    standard deviation in y's price units. NaN where the window cannot support the fit."""
    try:
        fit = ou_fit(spread(ys, xs, beta, alpha), level=OU_LEVEL)
    except AnalyticsInputError:
        return dict.fromkeys(OU_FIELDS, NAN)
    return {
        "half_life": fit.half_life,
        "half_life_lo": fit.half_life_lo,
        "half_life_hi": fit.half_life_hi,
        "spread_noise_sd": fit.noise_sd,
    }


def cointegration_stats(ys: FloatArray, xs: FloatArray) -> dict[str, float]:
    """Engle-Granger statistic and p-value of one window (NaN if it cannot be tested)."""
    try:
        result = engle_granger(ys, xs, maxlag=EG_MAXLAG, autolag=None)
    except AnalyticsInputError:
        return dict.fromkeys(EG_FIELDS, NAN)
    return {"eg_stat": result.stat, "eg_pvalue": result.pvalue}


@dataclass(frozen=True, slots=True)
class Job:
    """Deferred work for one pair: ``compute`` the result, then ``apply`` it to the pair state.

    For the kinds in :data:`OFFLOADED_KINDS` ``compute`` is a pure, picklable call (a
    module-level function on copies of the window's arrays), so it can run in a worker
    process (:mod:`spreadbus.engine.offload`) while ``apply`` stays on the engine's loop.
    """

    pair: str
    kind: str
    bar_ms: int
    compute: Callable[[], Any]
    apply: Callable[[Any], None]

    @property
    def offloadable(self) -> bool:
        return self.kind in OFFLOADED_KINDS

    def run(self) -> None:
        """Compute and apply here and now."""
        self.apply(self.compute())


def _ignore(_result: object) -> None:
    """The refit's ``apply``: it works on the state itself."""


class PairState:
    """Everything the engine knows about one pair ``Y/X``."""

    def __init__(self, pair: str, window: int, stale_s: int, history_s: int) -> None:
        self.y, self.x = parse_pair(pair)
        self.pair = f"{self.y}/{self.x}"
        self.window = window
        self.clock = PairClock(stale_s=stale_s, max_bars=history_s)
        self.ols = RollingOLS(window)
        self.corr = RollingCorr(window)
        self.kalman = KalmanHedge(KALMAN_DELTA, KALMAN_OBS_VAR)
        self._scale: tuple[float, float] | None = None  # first bar's prices (Kalman origin)
        self._offsets = {kind: schedule_offset(self.pair, p) for kind, p in SCHEDULE.items()}
        self._resid_std = NAN  # ddof=1 deviation of the window's residuals, for live z
        self.values: dict[str, Number] = dict.fromkeys(STATISTIC_FIELDS, NAN)
        self.values.update(
            window_bars=window,
            bars=0,
            bar_ms=0,
            stats_ms=0,
            ou_ms=0,
            eg_ms=0,
            tick_ms=0,
            funding_ms=0,
        )
        self.series: list[tuple[str, int, float]] = []  # (metric, bar ms, value) to write
        self._dirty: set[str] = set()
        self.refits = 0

    # ---- bars ---------------------------------------------------------------------------
    def on_bars(self, bars: Iterable[tuple[int, float, float]], live: bool = True) -> list[Job]:
        """Apply final bars in order; returns the jobs that fell due.

        ``live=False`` (building from history): no series samples, and instead of the
        schedule every job kind runs once for the last bar.
        """
        jobs: list[Job] = []
        last = None
        for sec, y, x in bars:
            self._on_bar(sec, y, x)
            last = sec
            if live:
                for metric, field in SERIES_FIELDS.items():
                    value = self.values[field]
                    if math.isfinite(value):
                        self.series.append((metric, sec * 1000, float(value)))
                jobs.extend(self._due_jobs(sec, due_all=False))
        if last is not None and not live:
            jobs.extend(self._due_jobs(last, due_all=True))
        return jobs

    def _on_bar(self, sec: int, y: float, x: float) -> None:
        if self._scale is None:
            self._scale = (y, x)
        y0, x0 = self._scale
        self.ols.update(y, x)
        self.corr.update(y, x)
        scale = KALMAN_SCALE
        kalman = self.kalman.update(scale * (y / y0 - 1.0), scale * (x / x0 - 1.0))
        values = self.values
        values["bar_ms"] = sec * 1000
        values["bars"] = n = self.ols.count
        for field in BAR_FIELDS:
            values[field] = NAN
        self._resid_std = NAN
        self._dirty.add("bar")
        if n < MIN_BARS:
            return
        # y = y0 (1 + (a + b X) / S) with X = S (x / x0 - 1): back to y = alpha + beta x
        kalman_beta = kalman.beta * y0 / x0
        values["kalman_beta"] = kalman_beta
        values["kalman_alpha"] = y0 * (1.0 + kalman.alpha / KALMAN_SCALE) - kalman_beta * x0
        try:
            fit = self.ols.fit
        except AnalyticsInputError:  # a flat leg over the whole window: no hedge exists
            return
        values["beta"], values["alpha"], values["r2"] = fit.beta, fit.alpha, fit.r2
        resid_std = fit.resid_std * math.sqrt((n - 2) / (n - 1))
        bar_spread = y - fit.alpha - fit.beta * x
        values["spread_bar"] = bar_spread
        values["spread_std"] = resid_std
        if resid_std > 0:
            self._resid_std = resid_std
            values["zscore_bar"] = bar_spread / resid_std
        with contextlib.suppress(AnalyticsInputError):
            values["corr"] = self.corr.corr_so_far()

    # ---- live ---------------------------------------------------------------------------
    def on_prices(self, y: float, x: float, tick_ms: int) -> None:
        """The legs' latest trade prices: live spread and z-score with the latest hedge."""
        values = self.values
        values["last_price_y"], values["last_price_x"] = y, x
        values["tick_ms"] = max(int(values["tick_ms"]), tick_ms)
        beta, alpha = values["beta"], values["alpha"]
        live_spread = y - alpha - beta * x  # NaN while there is no hedge
        values["spread"] = live_spread
        values["zscore"] = live_spread / self._resid_std  # NaN without a deviation
        self._dirty.add("live")

    def on_funding(self, y: LegFunding, x: LegFunding, now_ms: int) -> None:
        """The legs' latest funding (from the gateway's feed): carry and mark-to-index basis
        with the latest hedge and OU half-life (:func:`spreadbus.analytics.carry`)."""
        beta, half_life_s = float(self.values["beta"]), float(self.values["half_life"])
        self.values.update(carry(y, x, beta, half_life_s, now_ms))
        self.values["funding_ms"] = now_ms
        self._dirty.add("carry")

    # ---- jobs ---------------------------------------------------------------------------
    def _due_jobs(self, sec: int, due_all: bool) -> list[Job]:
        jobs: list[Job] = []
        ready = int(self.values["bars"]) >= MIN_BARS and math.isfinite(self.values["beta"])
        for kind, period in SCHEDULE.items():
            if not due_all and (sec + self._offsets[kind]) % period:
                continue
            if kind == "refit":
                jobs.append(Job(self.pair, kind, sec * 1000, self._refit, _ignore))
            elif ready:
                jobs.append(self._capture(kind, sec * 1000))
        return jobs

    def _capture(self, kind: str, bar_ms: int) -> Job:
        """A job computing ``kind`` on the window as it is now (a copy of its arrays)."""
        ys, xs = self.ols.window_arrays()
        alpha, beta = float(self.values["alpha"]), float(self.values["beta"])
        compute: Callable[[], dict[str, float]]
        if kind == "stats":
            compute, stamp = partial(window_stats, ys, xs, alpha, beta), "stats_ms"
        elif kind == "ou":
            compute, stamp = partial(ou_stats, ys, xs, alpha, beta), "ou_ms"
        else:
            compute, stamp = partial(cointegration_stats, ys, xs), "eg_ms"
        return Job(self.pair, kind, bar_ms, compute, partial(self._apply, kind, stamp, bar_ms))

    def _apply(self, group: str, stamp: str, bar_ms: int, result: dict[str, float]) -> None:
        if bar_ms < int(self.values[stamp]):
            return  # a newer result is already in
        self.values.update(result)
        self.values[stamp] = bar_ms
        self._dirty.add(group)

    def _refit(self) -> None:
        """Rebuild the exact window sums (keeps their integers small; changes no number)."""
        if self.ols.count >= 3:
            with contextlib.suppress(AnalyticsInputError):
                self.ols.refit()
        self.corr.refit()
        self.refits += 1

    # ---- output -------------------------------------------------------------------------
    def take_changes(self) -> dict[str, Number]:
        """The fields that changed since the last call (whole groups), for one HSET."""
        if not self._dirty:
            return {}
        fields = ["tick_ms"]
        if "live" in self._dirty:
            fields += LIVE_FIELDS
        if "bar" in self._dirty:
            fields += [*BAR_FIELDS, "bars", "window_bars", "bar_ms"]
        if "stats" in self._dirty:
            fields += [*STATS_FIELDS, "stats_ms"]
        if "ou" in self._dirty:
            fields += [*OU_FIELDS, "ou_ms"]
        if "carry" in self._dirty:
            fields += [*CARRY_FIELDS, "funding_ms"]
        if "eg" in self._dirty:
            fields += [*EG_FIELDS, "eg_ms"]
        self._dirty.clear()
        return {f: self.values[f] for f in fields}

    def take_series(self) -> list[tuple[str, int, float]]:
        series, self.series = self.series, []
        return series
