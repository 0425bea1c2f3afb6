"""``/pair/{Y-X}``: one pair's KPIs and charts, live.

Two callbacks: ``build`` draws every figure whole when a control changes (or, for 1 m and
5 m bars, when a new bar opens); ``live`` runs each second, rewrites the KPI texts that
changed and, for 1 s bars, appends the new bars to the charts with ``extendData`` capped at
the window's length, so a tab left open for hours holds a bounded number of points.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Final

import dash_bootstrap_components as dbc
import numpy as np
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from spreadbus.analytics.glossary import GLOSSARY
from spreadbus.config import parse_pair
from spreadbus.web import read
from spreadbus.web.dashboard import figures, fmt
from spreadbus.web.dashboard.context import Context, live_callback
from spreadbus.web.dashboard.pages import Page
from spreadbus.web.dashboard.pairdata import BAR_MS, MAX_MINUTES, PairFrame, load, z_window
from spreadbus.web.routes import pairs as pair_routes

PAIR_KPIS: Final = (
    ("zscore", "z-score"), ("spread", "Spread"), ("beta", "β OLS"), ("alpha", "α OLS"),
    ("kalman_beta", "β Kalman"), ("corr", "Correlation"), ("adf_stat", "ADF stat"),
    ("adf_pvalue", "ADF p"), ("eg_pvalue", "Engle-Granger p"), ("half_life", "Half-life"),
    ("hurst", "Hurst"), ("spread_vol", "Spread vol"), ("var_95", "VaR 95% (1 s)"),
    ("cvar_95", "CVaR 95% (1 s)"),
)  # fmt: skip
LEG_KPIS: Final = (
    ("last_price", "Price"), ("tick_rate", "Ticks"), ("latency_ingest_p99_ms", "Ingest p99"),
    ("ghost_basis_bps", "Ghost basis"),
)  # fmt: skip
WINDOWS: Final = ((5, "5 min"), (15, "15 min"), (60, "1 h"), (240, "4 h"), (1440, "24 h"))
LIVE_TAIL_MINUTES: Final = 2  # what a 1 s live update re-reads (plus the z window)
# live traces: figure id -> (frame column per trace)
LIVE_TRACES: Final = {
    "pair-prices": ("y", "x"),
    "pair-spread": ("spread", "mean", "+1", "-1", "+2", "-2"),  # as figures.spread orders them
    "pair-z": ("z",),
    "pair-corr": ("corr",),
    "pair-beta": ("beta", "kalman_beta"),
}


def _pair_of(path: str) -> str | None:
    try:
        return "/".join(parse_pair(path.rsplit("/", 1)[-1].replace("-", "/")))
    except ValueError:
        return None


def _kpi(field: str, label: str, pair: str, symbol: str | None = None) -> Any:
    attrs: dict[str, Any] = {"data-kpi": field, "data-pair": pair}
    if symbol is not None:
        attrs["data-symbol"] = symbol
    kpi_id = {"type": "leg-kpi", "field": field, "symbol": symbol} if symbol else {
        "type": "kpi", "field": field}  # fmt: skip
    return html.Div(
        [
            html.Div(label, className="kpi-label", title=GLOSSARY.get(field, field)),
            html.Span(fmt.MISSING, id=kpi_id, className="kpi-value", **attrs),
            html.Span(fmt.unit(field), className="kpi-unit"),
        ],
        className="kpi",
    )


def _graph(graph_id: str, width: int = 6) -> Any:
    return dbc.Col(
        html.Div(dcc.Graph(id=graph_id, config={"displaylogo": False, "displayModeBar": "hover"},
                           figure=figures.empty("", "loading…")),
                 className="chart-card"),
        lg=width,
    )  # fmt: skip


def _controls(pair: str) -> Any:
    def labelled(label: str, control: Any, width: int = 2) -> Any:
        return dbc.Col([dbc.Label(label), control], md=width)

    return dbc.Row(
        [
            labelled("Pair", dbc.Select(id="pair-select", value=pair, size="sm",
                                        options=[{"label": pair, "value": pair}]), 3),
            labelled("Bar", dbc.RadioItems(id="pair-bar", value="1s", inline=True,
                                           options=["1s", "1m", "5m"])),
            labelled("Window", dbc.Select(id="pair-window", value="60", size="sm",
                                          options=[{"label": t, "value": str(m)}
                                                   for m, t in WINDOWS])),
            labelled("Hedge", dbc.RadioItems(id="pair-hedge", value="ols", inline=True,
                                             options=[{"label": "OLS", "value": "ols"},
                                                      {"label": "Kalman", "value": "kalman"}])),
            labelled("Entry / exit z", dbc.InputGroup([
                dbc.Input(id="pair-entry", type="number", value=2.0, step=0.1, min=0.1),
                dbc.Input(id="pair-exit", type="number", value=0.5, step=0.1, min=0.0),
            ], size="sm")),
            labelled("Prices", dbc.Switch(id="pair-normalise", label="normalised",
                                          value=False), 1),
        ],
        className="controls g-2 my-2",
    )  # fmt: skip


def layout(path: str) -> Any:
    pair = _pair_of(path)
    if pair is None:
        return dbc.Container(
            [html.H5("Pick a pair"), html.P("Open a pair from the overview, e.g. "
                                            "/pair/ETHUSDT-BTCUSDT."),
             dcc.Dropdown(id="pair-pick", placeholder="pair…")],
            className="pt-3",
        )  # fmt: skip
    y, x = pair.split("/")
    return dbc.Container(
        [
            html.Div(
                [
                    html.H5(pair, className="mb-0 me-3"),
                    html.Span(id="pair-warmup", className="warmup small me-3"),
                    dbc.Button(
                        "Watch",
                        id="pair-watch",
                        size="sm",
                        color="primary",
                        outline=True,
                        className="py-0",
                        style={"display": "none"},
                    ),
                    html.Span(id="pair-watch-out", className="small ms-2"),
                ],
                className="d-flex align-items-baseline mt-2",
            ),
            _controls(pair),
            html.Div([_kpi(f, label, pair) for f, label in PAIR_KPIS], className="kpi-grid"),
            html.Div(
                [_kpi(f, f"{leg} {label}", pair, leg) for leg in (y, x) for f, label in LEG_KPIS],
                className="kpi-grid mt-2",
            ),
            dbc.Row([_graph("pair-prices"), _graph("pair-scatter")], className="mt-2 g-2"),
            dbc.Row([_graph("pair-candles-y"), _graph("pair-candles-x")], className="g-2"),
            dbc.Row([_graph("pair-spread"), _graph("pair-z")], className="g-2"),
            dbc.Row([_graph("pair-corr"), _graph("pair-beta")], className="g-2"),
            dcc.Store(id="pair-cursor", data={}),
            dcc.Store(id="pair-kpis"),
            dcc.Store(id="pair-epoch", data=0),
            dcc.Interval(id="pair-tick", interval=1000),
        ],
        fluid=True,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _figures(
    frame: PairFrame,
    pair: str,
    bar: str,
    hedge: str,
    entry: float,
    exit_: float,
    normalised: bool,
    window: int,
    snap: dict[str, Any],
    candles: tuple[Any, Any],
) -> list[Any]:
    y, x = pair.split("/")
    revision = f"{pair}|{bar}|{hedge}"
    ts = frame.ts
    cols = frame.columns
    hedge_name = "Kalman" if hedge == "kalman" else "OLS"
    if not len(frame):
        message = "no bars yet: waiting for trades of both legs"
        return [figures.empty(t, message, revision) for t in (
            "Prices", f"{y} against {x}", f"{y} candles", f"{x} candles", "Spread", "z-score",
            "Rolling correlation", "Hedge ratio")]  # fmt: skip
    both = [
        i for i in range(len(ts)) if math.isfinite(cols["y"][i]) and math.isfinite(cols["x"][i])
    ]
    pts = [ts[i] for i in both]
    ys, xs = [float(cols["y"][i]) for i in both], [float(cols["x"][i]) for i in both]
    beta, alpha = fmt.number(snap.get("beta")), fmt.number(snap.get("alpha"))
    spread_values = frame.spread(hedge)  # type: ignore[arg-type]
    z_values = frame.z(hedge)  # type: ignore[arg-type]
    out = [
        figures.prices(pts, ys, xs, (y, x), normalised, revision),
        figures.scatter(ys, xs, beta, alpha, (y, x), revision),
        figures.candles(y, candles[0] or [], revision),
        figures.candles(x, candles[1] or [], revision),
        figures.spread(ts, spread_values, window, revision, f"Spread ({hedge_name} hedge, {bar})"),
        figures.zscore(ts, list(z_values), entry, exit_, revision, f"z-score ({hedge_name})"),
        figures.correlation(ts, list(cols["corr"]), revision),
        figures.betas(ts, list(cols["beta"]), list(cols["kalman_beta"]), revision),
    ]
    if not snap:  # two symbols with data, but not a pair the engine analyses
        note = "no analytics for this pair yet: Watch adds it to the engine's pairs"
        for index, title in ((4, "Spread"), (5, "z-score"), (6, "Rolling correlation"),
                             (7, "Hedge ratio")):  # fmt: skip
            out[index] = figures.empty(title, note, revision)
    elif not any(math.isfinite(v) for v in z_values):
        bars, win = snap.get("bars", snap.get("n")), snap.get("window_bars", snap.get("window"))
        note = f"warming up: {bars} of {win} bars" if bars is not None else "warming up"
        out[5] = figures.empty(f"z-score ({hedge_name})", note, revision)
    return out


def _scale(frame: PairFrame) -> tuple[float, float]:
    """The first prices at which both legs traded: what normalised prices are divided by."""
    both = np.isfinite(frame.columns["y"]) & np.isfinite(frame.columns["x"])
    if not both.any():
        return (1.0, 1.0)
    first = int(np.argmax(both))
    return (float(frame.columns["y"][first]), float(frame.columns["x"][first]))


def _has_values(frame: PairFrame, hedge: str) -> bool:
    """Do the new bars carry a z-score (the engine has warmed up on the pair)?"""
    return bool(np.isfinite(frame.z(hedge)).any())  # type: ignore[arg-type]


def _extend(frame: PairFrame, hedge: str, cap: int, window: int,
            scale: tuple[float, float]) -> dict[str, Any]:  # fmt: skip
    """``extendData`` per live figure: the new bars of ``frame`` (a tail holding at least a
    ``window`` of bars before them, so the bands are the full chart's), each figure capped at
    ``cap`` points; prices divided by ``scale`` (the first prices when normalised)."""
    spread_values = frame.spread(hedge)  # type: ignore[arg-type]
    mean, std = figures.rolling_bands(spread_values, window)
    columns = {
        "y": frame.columns["y"] / scale[0], "x": frame.columns["x"] / scale[1],
        "spread": spread_values, "mean": mean, "+1": mean + std, "-1": mean - std,
        "+2": mean + 2 * std, "-2": mean - 2 * std,
        "z": frame.z(hedge),  # type: ignore[arg-type]
        "corr": frame.columns["corr"], "beta": frame.columns["beta"],
        "kalman_beta": frame.columns["kalman_beta"],
    }  # fmt: skip
    new = np.asarray(frame.ts) > frame.after_ms
    ts = [t for t, keep in zip(frame.ts, new, strict=True) if keep]
    out: dict[str, Any] = {}
    for graph_id, names in LIVE_TRACES.items():
        ys = [[_finite(float(v)) for v in columns[name][new]] for name in names]
        out[graph_id] = [{"x": [ts] * len(names), "y": ys}, list(range(len(names))), cap]
    return out


def register(app: Dash, ctx: Context) -> None:
    figure_ids = ("pair-prices", "pair-scatter", "pair-candles-y", "pair-candles-x",
                  "pair-spread", "pair-z", "pair-corr", "pair-beta")  # fmt: skip
    controls = (
        State("pair-select", "value"), State("pair-bar", "value"), State("pair-window", "value"),
        State("pair-hedge", "value"),
    )  # fmt: skip

    app.clientside_callback(  # type: ignore[no-untyped-call]
        ClientsideFunction("spreadbus", "pairKpis"),
        Output({"type": "kpi", "field": ALL}, "children"),
        Output({"type": "leg-kpi", "field": ALL, "symbol": ALL}, "children"),
        Input("pair-kpis", "data"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("pair-select", "options"),
        Output("pair-watch", "style"),
        Input("pair-select", "value"),
        Input("pair-watch-out", "children"),
    )
    @live_callback
    async def choices(pair: str, _watched: Any) -> tuple[list[dict[str, str]], dict[str, str]]:
        """Configured pairs, plus the one shown (any two symbols with data can be opened, and
        watched: added to the engine's pairs)."""
        pairs, _ = await read.configured_pairs(ctx.client(), ctx.settings.pairs)
        options = [{"label": p, "value": p} for p in sorted({*pairs, pair})]
        return options, {} if pair not in pairs else {"display": "none"}

    @app.callback(
        Output("pair-watch-out", "children"),
        Input("pair-watch", "n_clicks"),
        State("pair-select", "value"),
        prevent_initial_call=True,
    )
    @live_callback
    async def watch(clicks: int | None, pair: str) -> str:
        """Add the pair to ``config:pairs`` through the API's own ``PUT /api/pairs``."""
        if not clicks:
            raise PreventUpdate
        client = ctx.client()
        pairs, _ = await read.configured_pairs(client, ctx.settings.pairs)
        await pair_routes.put_pairs(client, [*pairs, pair])
        return f"watching {pair}: the engine starts on it now"

    @app.callback(
        Output("url", "pathname", allow_duplicate=True),
        Input("pair-select", "value"),
        State("url", "pathname"),
        prevent_initial_call=True,
    )
    async def switch(pair: str, pathname: str) -> str:
        target = "/pair/" + pair.replace("/", "-")
        if pathname == target:
            raise PreventUpdate
        return target

    @app.callback(
        *(Output(i, "figure") for i in figure_ids),
        Output("pair-cursor", "data"),
        Input("pair-select", "value"), Input("pair-bar", "value"), Input("pair-window", "value"),
        Input("pair-hedge", "value"), Input("pair-entry", "value"), Input("pair-exit", "value"),
        Input("pair-normalise", "value"), Input("pair-epoch", "data"),
    )  # fmt: skip
    @live_callback
    async def build(
        pair: str,
        bar: str,
        minutes: int,
        hedge: str,
        entry: float | None,
        exit_: float | None,
        normalised: bool,
        _epoch: int,
    ) -> tuple[Any, ...]:
        client = ctx.client()
        y, x = pair.split("/")
        window = z_window(bar, ctx.settings.window)  # type: ignore[arg-type]
        span = min(int(minutes), MAX_MINUTES[bar])
        frame, snaps, candles_y, candles_x = await asyncio.gather(
            load(client, pair, bar, span, ctx.settings.window),  # type: ignore[arg-type]
            read.snapshots(client, [pair]),
            read.candles(client, y, span if bar != "1s" else max(span, 60)),
            read.candles(client, x, span if bar != "1s" else max(span, 60)),
        )
        figs = _figures(
            frame, pair, bar, hedge, abs(entry or 2.0), abs(exit_ or 0.0), bool(normalised),
            window, snaps[pair], (candles_y, candles_x),
        )  # fmt: skip
        # the live figures that were drawn with their traces (not a "warming up" note): only
        # those can be extended
        drawn = [
            i for i, fig in zip(figure_ids, figs, strict=True) if i in LIVE_TRACES and fig["data"]
        ]
        cursor = {
            "ts": frame.ts[-1] if frame.ts else 0, "points": len(frame), "drawn": drawn,
            "scale": _scale(frame) if normalised else (1.0, 1.0),
        }  # fmt: skip
        return (*figs, cursor)

    @app.callback(
        Output("pair-kpis", "data"),
        Output("pair-warmup", "children"),
        *(Output(i, "extendData") for i in LIVE_TRACES),
        Output("pair-cursor", "data", allow_duplicate=True),
        Output("pair-epoch", "data"),
        Input("pair-tick", "n_intervals"),
        *controls,
        State("pair-cursor", "data"),
        prevent_initial_call="initial_duplicate",  # the KPIs at once, not a second later
    )
    @live_callback
    async def live(
        _n: int,
        pair: str,
        bar: str,
        minutes: int,
        hedge: str,
        cursor: dict[str, Any],
    ) -> tuple[Any, ...]:
        client = ctx.client()
        y, x = pair.split("/")
        snaps, feeds = await asyncio.gather(
            read.snapshots(client, [pair]), read.feeds(client, [y, x])
        )
        snap = snaps[pair]
        # {field: text} and {"SYMBOL field": text}: assets/dashboard.js puts each text in its
        # data-kpi element, so a second costs these few hundred bytes, not a component tree
        kpis = {f: fmt.text(f, snap.get(f)) for f, _ in PAIR_KPIS}
        kpis.update({f"{s} {f}": fmt.text(f, feeds[s].get(f)) for s in (y, x) for f, _ in LEG_KPIS})
        bars = fmt.number(snap.get("bars", snap.get("n")))
        win = fmt.number(snap.get("window_bars", snap.get("window")))
        warm = f"warming up: {bars:.0f} of {win:.0f} bars" if (
            bars is not None and win is not None and bars < win) else ""  # fmt: skip
        extends: list[Any] = [no_update] * len(LIVE_TRACES)
        epoch: Any = no_update
        last = int((cursor or {}).get("ts") or 0)
        if bar == "1s" and last:
            window = z_window("1s", ctx.settings.window)
            tail = LIVE_TAIL_MINUTES + math.ceil(window / 60)
            frame = (await load(client, pair, "1s", tail, ctx.settings.window)).after(last)
            drawn = cursor.get("drawn", [])
            fresh = frame.ts and frame.ts[-1] > last
            if fresh and len(drawn) < len(LIVE_TRACES) and _has_values(frame, hedge):
                epoch = frame.ts[-1]  # warmed up since the last drawing: draw it all again
                cursor = no_update  # type: ignore[assignment]
            elif fresh:
                cap = max(int((cursor or {}).get("points") or 0), min(int(minutes), 60) * 60)
                scale = tuple(cursor.get("scale") or (1.0, 1.0))
                updates = _extend(frame, hedge, cap, window, scale)
                extends = [updates[i] if i in drawn else no_update for i in LIVE_TRACES]
                cursor = {**cursor, "ts": frame.ts[-1]}
            else:
                cursor = no_update  # type: ignore[assignment]
        else:
            cursor = no_update  # type: ignore[assignment]
            if bar != "1s":
                newest = await read.price_bars(client, y, BAR_MS[bar] // 60_000, BAR_MS[bar])
                if newest and newest[-1][0] > last:
                    epoch = newest[-1][0]  # a new bar opened: redraw
        return (kpis, warm, *extends, cursor, epoch)


PAGE = Page("/pair/", "Pair", layout, register, in_nav=False)  # opened from the overview
