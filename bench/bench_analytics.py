"""Streaming analytics vs. recomputing the window with pandas/statsmodels on every refresh.

For each window size, one row per streaming form: ``value`` is the cost of one update *and*
reading the statistic (what the engine does per pair per bar), ``reference`` the cost of
what a naive dashboard does on each refresh instead: rebuild the statistic from its window,
held as pandas Series, with pandas/statsmodels. Both are measured in the same run on the same
data, in interleaved rounds (medians reported); ``ratio`` = reference / value is the speedup.

- RollingOLS (update + fit) vs ``sm.OLS(y, sm.add_constant(x)).fit()`` (params, R2, mse).
- KalmanHedge (update) vs re-running :func:`kalman_hedge` over the window (statsmodels has no
  such filter; a stateless refresh has to replay the window).
- RollingZ (update with the spread ``y - beta x``, + z) vs ``s = y - beta * x`` on the Series
  then ``(s.iloc[-1] - s.mean()) / s.std()``.
- RollingCorr (update + corr) vs ``y.pct_change().corr(x.pct_change())``.

The reference is charged nothing for keeping its window up to date, so the ratios are if
anything flattering to the naive approach. Window-level tests (ADF, half-life, Hurst) have no
streaming form; their cost on a 300-bar window (the engine's) is reported for scheduling.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd
import statsmodels.api as sm

from spreadbus import analytics as an

WINDOWS = (1_000, 10_000)
ROUNDS = 15  # interleaved streaming/reference rounds; the medians are reported
STREAM_CALLS = 2_000  # updates per round
REFERENCE_SECONDS = 0.01  # budget per reference round
UNIT = "µs/update"


def _market(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """ETH-like y on BTC-like x near 98,000, cointegrated with noise."""
    rng = np.random.default_rng(seed)
    x = 98_000.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-4, n)))
    y = 150.0 + 0.035 * x + rng.normal(0.0, 2.0, n)
    return y, x


def _timed(run: Callable[[], None], calls: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / calls * 1e6


def _compare(
    make: Callable[[], object],
    step: Callable[[object, float, float], None],
    recompute: Callable[[pd.Series, pd.Series], object],
    window: int,
) -> tuple[float, float]:
    """(streaming, reference) microseconds per update, medians of interleaved rounds.

    Interleaving matters on a shared machine: a burst of load then hits both sides of the
    ratio instead of whichever happened to be running.
    """
    y, x = _market(window + 1 + ROUNDS * STREAM_CALLS)
    ys, xs = y.tolist(), x.tolist()
    state = make()
    for i in range(window):
        step(state, ys[i], xs[i])
    # the naive dashboard keeps its window as pandas Series (one more point than the window,
    # for the returns that correlation needs)
    y_window, x_window = pd.Series(y[: window + 1]), pd.Series(x[: window + 1])
    started = time.perf_counter()
    recompute(y_window, x_window)
    reference_calls = max(3, int(REFERENCE_SECONDS / max(time.perf_counter() - started, 1e-6)))
    cursor = window

    def stream() -> None:
        for i in range(cursor, cursor + STREAM_CALLS):
            step(state, ys[i], xs[i])

    def reference() -> None:
        for _ in range(reference_calls):
            recompute(y_window, x_window)

    streaming, naive = [], []
    for _ in range(ROUNDS):
        streaming.append(_timed(stream, STREAM_CALLS))
        cursor += STREAM_CALLS
        naive.append(_timed(reference, reference_calls))
    return statistics.median(streaming), statistics.median(naive)


def _ols_step(state: object, y: float, x: float) -> None:
    assert isinstance(state, an.RollingOLS)
    state.update(y, x)
    if state.count >= 3:
        _ = state.fit


def _kalman_step(state: object, y: float, x: float) -> None:
    assert isinstance(state, an.KalmanHedge)
    state.update(y, x)


def _z_step(state: object, y: float, x: float) -> None:
    assert isinstance(state, an.RollingZ)
    state.update(y - 0.035 * x)
    if state.ready:
        _ = state.z


def _corr_step(state: object, y: float, x: float) -> None:
    assert isinstance(state, an.RollingCorr)
    state.update(y, x)
    if state.ready:
        _ = state.corr


def _ols_reference(y: pd.Series, x: pd.Series) -> object:
    fit = sm.OLS(y.iloc[1:], sm.add_constant(x.iloc[1:])).fit()
    return fit.params, fit.rsquared, fit.mse_resid


def _z_reference(y: pd.Series, x: pd.Series) -> float:
    spread = y.iloc[1:] - 0.035 * x.iloc[1:]
    return float((spread.iloc[-1] - spread.mean()) / spread.std())


def _corr_reference(y: pd.Series, x: pd.Series) -> float:
    return float(y.pct_change().corr(x.pct_change()))


def _kalman_reference(y: pd.Series, x: pd.Series) -> object:
    return an.kalman_hedge(y.iloc[1:], x.iloc[1:], delta=1e-10, obs_var=4.0)


def run() -> list[dict[str, object]]:
    cases: list[tuple[str, Callable[[int], object], Callable[..., None], Callable[..., object]]] = [
        ("RollingOLS update+fit", an.RollingOLS, _ols_step, _ols_reference),
        (
            "KalmanHedge update",
            lambda _w: an.KalmanHedge(delta=1e-10, obs_var=4.0),
            _kalman_step,
            _kalman_reference,
        ),
        ("RollingZ update+z", an.RollingZ, _z_step, _z_reference),
        ("RollingCorr update+corr", an.RollingCorr, _corr_step, _corr_reference),
    ]
    rows: list[dict[str, object]] = []
    for window in WINDOWS:
        for metric, factory, step, reference in cases:
            value, naive = _compare(partial(factory, window), step, reference, window)
            rows.append(
                {
                    "case": f"w={window}",
                    "metric": metric,
                    "value": value,
                    "unit": UNIT,
                    "reference": naive,
                    "ratio": naive / value,
                }
            )
    rows.extend(_window_tests())
    return rows


def _window_tests() -> list[dict[str, object]]:
    y, x = _market(300, seed=1)
    spread = an.spread(y, x, an.ols_hedge(y, x).beta)
    tests: list[tuple[str, Callable[[], object]]] = [
        ("adf (autolag AIC)", lambda: an.adf(spread)),
        ("adf (maxlag=1, no autolag)", lambda: an.adf(spread, maxlag=1, autolag=None)),
        ("engle_granger", lambda: an.engle_granger(y, x)),
        ("half_life", lambda: an.half_life(spread)),
        ("hurst", lambda: an.hurst(spread)),
    ]
    rows: list[dict[str, object]] = []
    calls = 20
    for metric, call in tests:

        def run(call: Callable[[], object] = call) -> None:
            for _ in range(calls):
                call()

        samples = [_timed(run, calls) for _ in range(3)]
        rows.append(
            {
                "case": "w=300",
                "metric": metric,
                "value": statistics.median(samples),
                "unit": "µs/call",
            }
        )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
