"""Plotly figures of one pair: pure builders, arrays in, figure dicts out.

Every figure shares one dark layout and a ``uirevision`` tied to what the user chose (pair,
bar, hedge), so zoom and pan survive the live updates that extend the traces each second.
Figures are plain dicts (``go.Figure(...).to_plotly_json()`` would cost a validation pass per
second for nothing); traces are listed in a fixed order because live updates address them by
index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from spreadbus.analytics import FloatArray

Figure = dict[str, Any]

COLORS: Final = {
    "y": "#5dade2",
    "x": "#f5b041",
    "spread": "#af7ac5",
    "z": "#48c9b0",
    "hot": "#ec7063",
    "band1": "rgba(175,122,197,0.45)",
    "band2": "rgba(175,122,197,0.25)",
    "mean": "#aab7b8",
    "ols": "#5dade2",
    "kalman": "#f4d03f",
    "up": "#26a69a",
    "down": "#ef5350",
    "grid": "rgba(255,255,255,0.07)",
}
HEIGHT: Final = 260


def layout(title: str, revision: str, **extra: Any) -> dict[str, Any]:
    """The shared dark layout: tight margins, a hover line across traces, legend on top."""
    base: dict[str, Any] = {
        "title": {"text": title, "x": 0.01, "y": 0.97, "font": {"size": 13, "color": "#e5e8e8"}},
        "template": "plotly_dark",
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "height": HEIGHT,
        "margin": {"l": 55, "r": 20, "t": 32, "b": 28},
        "hovermode": "x unified",
        "uirevision": revision,
        "legend": {"orientation": "h", "y": 1.12, "x": 0.35, "font": {"size": 11}},
        "xaxis": {"type": "date", "gridcolor": COLORS["grid"], "tickformat": "%H:%M:%S"},
        "yaxis": {"gridcolor": COLORS["grid"], "zeroline": False},
        "font": {"size": 11, "color": "#c8ced3"},
    }
    base.update(extra)
    return base


def _times(ts_ms: Sequence[int] | FloatArray) -> list[int]:
    # epoch ms on a date axis: plotly reads numbers on a "date" axis as ms since the epoch
    return [int(t) for t in ts_ms]


def _values(values: Sequence[float | None] | FloatArray) -> list[float | None]:
    return [None if v is None or not np.isfinite(v) else float(v) for v in values]


def line(name: str, ts: Sequence[int], values: Sequence[float | None] | FloatArray, color: str,
         **extra: Any) -> dict[str, Any]:  # fmt: skip
    trace: dict[str, Any] = {
        "type": "scattergl" if len(ts) > 2000 else "scatter",
        "mode": "lines",
        "name": name,
        "x": _times(ts),
        "y": _values(values),
        "line": {"color": color, "width": 1.4},
    }
    trace.update(extra)
    return trace


def empty(title: str, message: str, revision: str = "") -> Figure:
    """A figure that says why it has no data (warming up, no trades yet) instead of a blank."""
    return {
        "data": [],
        "layout": layout(
            title, revision,
            xaxis={"visible": False}, yaxis={"visible": False},
            annotations=[{
                "text": message, "showarrow": False, "xref": "paper", "yref": "paper",
                "x": 0.5, "y": 0.5, "font": {"size": 14, "color": "#aab7b8"},
            }],
        ),
    }  # fmt: skip


def prices(ts: Sequence[int], y: Sequence[float], x: Sequence[float], names: tuple[str, str],
           normalised: bool, revision: str) -> Figure:  # fmt: skip
    """Both legs: on two y axes, or each divided by its first price (growth of 1)."""
    if normalised and len(y) and len(x):
        y0, x0 = y[0], x[0]
        data = [
            line(names[0], ts, [v / y0 for v in y], COLORS["y"]),
            line(names[1], ts, [v / x0 for v in x], COLORS["x"]),
        ]
        return {"data": data, "layout": layout("Prices (normalised to 1)", revision)}
    data = [
        line(names[0], ts, y, COLORS["y"]),
        line(names[1], ts, x, COLORS["x"], yaxis="y2"),
    ]
    extra = {
        "yaxis": {"title": {"text": names[0]}, "gridcolor": COLORS["grid"]},
        "yaxis2": {"title": {"text": names[1]}, "overlaying": "y", "side": "right",
                   "showgrid": False},
        "margin": {"l": 60, "r": 60, "t": 32, "b": 28},
    }  # fmt: skip
    return {"data": data, "layout": layout("Prices", revision, **extra)}


def candles(symbol: str, rows: Sequence[Sequence[float | None]], revision: str) -> Figure:
    """A leg's candles with volume bars below them; ``rows`` are (ts, o, h, l, c, v)."""
    if not rows:
        return empty(f"{symbol} 1m candles", "no candles yet", revision)
    ts = [int(r[0] or 0) for r in rows]
    data = [
        {
            "type": "candlestick", "name": symbol, "x": ts,
            "open": [r[1] for r in rows], "high": [r[2] for r in rows],
            "low": [r[3] for r in rows], "close": [r[4] for r in rows],
            "increasing": {"line": {"color": COLORS["up"]}},
            "decreasing": {"line": {"color": COLORS["down"]}},
        },
        {
            "type": "bar", "name": "volume", "x": ts, "y": [r[5] for r in rows],
            "yaxis": "y2", "marker": {"color": "rgba(170,183,184,0.35)"},
        },
    ]  # fmt: skip
    extra = {
        "yaxis": {"domain": [0.3, 1.0], "gridcolor": COLORS["grid"]},
        "yaxis2": {"domain": [0.0, 0.22], "showgrid": False},
        "xaxis": {
            "type": "date",
            "rangeslider": {"visible": False},
            "gridcolor": COLORS["grid"],
            "tickformat": "%H:%M:%S",
        },
        "showlegend": False,
        "hovermode": "x",
    }
    return {"data": data, "layout": layout(f"{symbol} candles", revision, **extra)}


def rolling_bands(values: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Trailing mean and sample deviation over ``window`` points (fewer at the start), as the
    bands around the spread: the same window the z-score uses."""
    n = values.size
    mean = np.full(n, np.nan)
    std = np.full(n, np.nan)
    if n == 0:
        return mean, std
    finite = np.where(np.isfinite(values), values, 0.0)
    count = np.cumsum(np.isfinite(values).astype(float))
    s1 = np.cumsum(finite)
    s2 = np.cumsum(finite * finite)
    lag = np.arange(n) - window
    c = count - np.where(lag >= 0, count[np.maximum(lag, 0)], 0.0)
    a = s1 - np.where(lag >= 0, s1[np.maximum(lag, 0)], 0.0)
    b = s2 - np.where(lag >= 0, s2[np.maximum(lag, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(c > 0, a / c, np.nan)
        var = np.where(c > 1, (b - c * mean * mean) / (c - 1), np.nan)
    std = np.sqrt(np.maximum(var, 0.0))
    return mean, std


def spread(ts: Sequence[int], values: FloatArray, window: int, revision: str,
           title: str) -> Figure:  # fmt: skip
    """The spread with its rolling mean and ±1σ/±2σ bands (trace order: spread, mean, +1, -1,
    +2, -2)."""
    mean, std = rolling_bands(values, window)
    band1 = {"color": COLORS["band1"], "width": 1}
    band2 = {"color": COLORS["band2"], "width": 1}
    data = [
        line("spread", ts, values, COLORS["spread"]),
        line("mean", ts, mean, COLORS["mean"], line={"color": COLORS["mean"], "dash": "dot"}),
        line("+1σ", ts, mean + std, COLORS["band1"], line=band1),
        line("−1σ", ts, mean - std, COLORS["band1"], line=band1),
        line("+2σ", ts, mean + 2 * std, COLORS["band2"], line=band2),
        line("−2σ", ts, mean - 2 * std, COLORS["band2"], line=band2),
    ]  # fmt: skip
    return {"data": data, "layout": layout(title, revision)}


def zscore(
    ts: Sequence[int],
    values: Sequence[float | None],
    entry: float,
    exit_: float,
    revision: str,
    title: str,
) -> Figure:
    """The z-score, its points beyond ±entry in red, and the entry/exit lines (trace order:
    z, beyond)."""
    beyond = [v if v is not None and abs(v) >= entry else None for v in _values(values)]
    shapes = [
        {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": level, "y1": level,
         "line": {"color": color, "width": 1, "dash": dash}}
        for level, color, dash in (
            (entry, COLORS["hot"], "dash"), (-entry, COLORS["hot"], "dash"),
            (exit_, COLORS["mean"], "dot"), (-exit_, COLORS["mean"], "dot"),
        )
    ]  # fmt: skip
    data = [
        line("z", ts, values, COLORS["z"]),
        line(f"|z| ≥ {entry:g}", ts, beyond, COLORS["hot"], mode="markers",
             marker={"color": COLORS["hot"], "size": 4}),
    ]  # fmt: skip
    return {"data": data, "layout": layout(title, revision, shapes=shapes)}


def correlation(ts: Sequence[int], values: Sequence[float | None], revision: str) -> Figure:
    fig_layout = layout("Rolling correlation of returns", revision)
    fig_layout["yaxis"] = {"range": [-1.05, 1.05], "gridcolor": COLORS["grid"]}
    return {"data": [line("corr", ts, values, COLORS["z"])], "layout": fig_layout}


def betas(ts: Sequence[int], ols: Sequence[float | None], kalman: Sequence[float | None],
          revision: str) -> Figure:  # fmt: skip
    """The hedge ratio over time (trace order: OLS, Kalman)."""
    data = [line("OLS β", ts, ols, COLORS["ols"]), line("Kalman β", ts, kalman, COLORS["kalman"])]
    return {"data": data, "layout": layout("Hedge ratio β: OLS against Kalman", revision)}


def scatter(y: Sequence[float], x: Sequence[float], beta: float | None, alpha: float | None,
            names: tuple[str, str], revision: str, newest: int = 30) -> Figure:  # fmt: skip
    """Y against X, the fitted line, and the ``newest`` points highlighted."""
    old, new = max(len(x) - newest, 0), len(x)
    data: list[dict[str, Any]] = [
        {"type": "scattergl", "mode": "markers", "name": "bars", "x": list(x[:old]),
         "y": list(y[:old]), "marker": {"size": 3, "color": "rgba(93,173,226,0.35)"}},
        {"type": "scatter", "mode": "markers", "name": f"newest {new - old}",
         "x": list(x[old:]), "y": list(y[old:]),
         "marker": {"size": 6, "color": COLORS["hot"]}},
    ]  # fmt: skip
    if beta is not None and alpha is not None and len(x):
        lo, hi = float(np.min(x)), float(np.max(x))
        data.append({
            "type": "scatter", "mode": "lines", "name": f"fit β={beta:.4f}",
            "x": [lo, hi], "y": [alpha + beta * lo, alpha + beta * hi],
            "line": {"color": COLORS["kalman"], "width": 1.5},
        })  # fmt: skip
    extra = {
        "xaxis": {"title": {"text": names[1]}, "gridcolor": COLORS["grid"]},
        "yaxis": {"title": {"text": names[0]}, "gridcolor": COLORS["grid"]},
        "hovermode": "closest",
    }
    return {"data": data, "layout": layout(f"{names[0]} against {names[1]}", revision, **extra)}
