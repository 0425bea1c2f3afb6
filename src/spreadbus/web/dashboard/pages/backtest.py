"""``/backtest``: backtest the z-score rule on a live pair or a dataset pair, and sweep entry z
x window for the Sharpe ratio in the background.

The run uses exactly what ``POST /api/backtest`` uses (:mod:`spreadbus.research`), keeps its
result under the same id (so the CSV links are the API's), and draws the equity, drawdown,
spread and z-score with the trades marked (entries ▲ long / ▼ short, exits ✕). A sweep runs
in a thread (:data:`spreadbus.research.sweep.BOOK`); the page polls its progress each half
second and can cancel it, and stays responsive meanwhile.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from spreadbus.web import read
from spreadbus.web.dashboard import figures
from spreadbus.web.dashboard.context import Context
from spreadbus.web.dashboard.pages import Page
from spreadbus.web.dashboard.pages.data import graph, kpi

# field, label, format, unit
STATS: Final = (
    ("total_return", "Total return", ".3%", ""), ("sharpe", "Sharpe", ".3f", "/yr"),
    ("sortino", "Sortino", ".3f", "/yr"), ("max_drawdown", "Max drawdown", ".3%", ""),
    ("n_trades", "Trades", ".0f", ""), ("win_rate", "Win rate", ".1%", ""),
    ("avg_holding_bars", "Avg holding", ".1f", "bars"),
    ("half_life_bars", "Half-life (OU)", ".1f", "bars"),  # noise-robust, as the engine's
    ("turnover", "Turnover", ".2f", "× capital"), ("fees_paid", "Fees paid", ",.2f", ""),
    ("final_equity", "Final equity", ",.2f", ""),
)  # fmt: skip
MARKERS: Final = {
    "long": ("triangle-up", "#58d68d"),
    "short": ("triangle-down", "#ec7063"),
    "exit": ("x", "#f4d03f"),
}


def _num(label: str, control_id: str, value: Any, width: int = 1, **extra: Any) -> Any:
    return dbc.Col([dbc.Label(label), dbc.Input(id=control_id, type="number", value=value,
                                                size="sm", **extra)], md=width)  # fmt: skip


def _controls() -> Any:
    source = dbc.Row([
        dbc.Col([dbc.Label("Source"), dbc.RadioItems(
            id="bt-source", value="dataset", inline=True,
            options=[{"label": "live pair", "value": "live"},
                     {"label": "dataset", "value": "dataset"}])], md=2),
        dbc.Col([dbc.Label("Live pair"), dcc.Dropdown(id="bt-pair")], md=2),
        dbc.Col([dbc.Label("Dataset"), dcc.Dropdown(id="bt-dataset")], md=3),
        # no clear button on Y and X: their narrow fields keep room for the symbol
        dbc.Col([dbc.Label("Y"), dcc.Dropdown(id="bt-y", clearable=False)], md=1),
        dbc.Col([dbc.Label("X"), dcc.Dropdown(id="bt-x", clearable=False)], md=1),
        dbc.Col([dbc.Label("Bar"), dbc.RadioItems(id="bt-bar", value="1m", inline=True,
                                                  options=["1s", "1m", "5m", "1h"])], md=2),
        _num("Hours (live)", "bt-hours", 24, min=1),
    ], className="controls g-2")  # fmt: skip
    strategy = dbc.Row([
        dbc.Col([dbc.Label("Hedge"), dbc.Select(id="bt-hedge", value="ols", size="sm", options=[
            {"label": "rolling OLS", "value": "ols"}, {"label": "Kalman", "value": "kalman"}])],
            md=2),
        _num("Window", "bt-window", 60, min=3),
        _num("Entry z", "bt-entry", 2.0, step=0.1),
        _num("Exit z", "bt-exit", 0.5, step=0.1),
        _num("Stop z", "bt-stop", None, step=0.1),
        _num("Max hold (bars)", "bt-hold", None, min=1),
        _num("Fee bps", "bt-fee", 1.0, step=0.1, min=0),
        _num("Slippage bps", "bt-slip", 0.5, step=0.1, min=0),
        _num("Capital", "bt-capital", 10_000, min=1),
        dbc.Col(dbc.Button("Run backtest", id="bt-run", color="primary", size="sm",
                           className="mt-4"), md=2),
    ], className="controls g-2 mt-1")  # fmt: skip
    return html.Div([source, strategy])


def _sweep_card() -> Any:
    return dbc.Card(dbc.CardBody([
        html.H6("Sweep: Sharpe by entry z × window"),
        dbc.Row([
            dbc.Col([dbc.Label("Entry z values"), dbc.Input(id="sw-entries", size="sm",
                                                            value="1, 1.5, 2, 2.5, 3")], md=3),
            dbc.Col([dbc.Label("Windows"), dbc.Input(id="sw-windows", size="sm",
                                                     value="30, 60, 120, 240")], md=3),
            dbc.Col([dbc.Button("Run sweep", id="sw-run", color="primary", size="sm",
                                className="mt-4 me-2"),
                     dbc.Button("Cancel", id="sw-cancel", color="secondary", size="sm",
                                className="mt-4")], md=3),
        ], className="controls g-2"),
        dbc.Progress(id="sw-progress", value=0, label="", className="my-2",
                     style={"height": "18px"}),
        html.Div(id="sw-status", className="small text-muted"),
        dcc.Graph(id="sw-heatmap", figure=figures.empty("Sharpe heatmap", "no sweep yet"),
                  config={"displaylogo": False}),
        dcc.Store(id="sw-id"),
        dcc.Interval(id="sw-tick", interval=500, disabled=True),
    ]), className="mb-3")  # fmt: skip


def layout(_path: str) -> Any:
    return dbc.Container(
        [
            html.H5("Backtest", className="mt-2"),
            _controls(),
            html.Div(id="bt-message", className="mt-2"),
            html.Div(id="bt-stats", className="kpi-grid mt-2"),
            html.Div(id="bt-links", className="my-2"),
            dbc.Row([graph("bt-equity", figures.empty("Equity", "run a backtest")),
                     graph("bt-drawdown", figures.empty("Drawdown", ""))], className="g-2"),
            dbc.Row([graph("bt-spread", figures.empty("Spread", "")),
                     graph("bt-z", figures.empty("z-score", ""))], className="g-2"),
            html.Div(id="bt-trades", className="mb-3"),
            _sweep_card(),
        ],
        fluid=True,
    )  # fmt: skip


def _markers(
    trades: list[dict[str, Any]], values: dict[int, float | None], label: str
) -> list[Any]:
    """Entry and exit markers at the trades' bars, on a series given as ``{ms: value}``."""
    traces = []
    for side in ("long", "short"):
        picked = [t for t in trades if t["side"] == side]
        symbol, color = MARKERS[side]
        traces.append({
            "type": "scatter", "mode": "markers", "name": f"{side} entry",
            "x": [t["entry_ms"] for t in picked], "y": [values.get(t["entry_ms"]) for t in picked],
            "marker": {"symbol": symbol, "size": 10, "color": color}, "meta": f"{label}-entries",
        })  # fmt: skip
    symbol, color = MARKERS["exit"]
    traces.append({
        "type": "scatter", "mode": "markers", "name": "exit",
        "x": [t["exit_ms"] for t in trades], "y": [values.get(t["exit_ms"]) for t in trades],
        "marker": {"symbol": symbol, "size": 9, "color": color}, "meta": f"{label}-exits",
    })  # fmt: skip
    return traces


def _trades_table(trades: list[dict[str, Any]]) -> Any:
    if not trades:
        return html.P("No trades.", className="text-muted")
    columns = ("entry_ms", "exit_ms", "side", "qty_y", "qty_x", "entry_y", "entry_x", "exit_y",
               "exit_x", "fees", "pnl", "reason")  # fmt: skip
    from spreadbus.web.dashboard.pages.data import when  # noqa: PLC0415

    def cell(column: str, value: Any) -> Any:
        if column.endswith("_ms"):
            return html.Td(when(value))
        if isinstance(value, float):
            return html.Td(f"{value:.6g}", className="num")
        return html.Td(value)

    marks: list[dict[str, Any]] = [{"data-trade": str(i)} for i in range(len(trades[-200:]))]
    rows = [html.Tr([cell(c, t[c]) for c in columns], **m)
            for m, t in zip(marks, trades[-200:], strict=True)]  # fmt: skip
    head = html.Thead(html.Tr([html.Th(c) for c in columns]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", className="small", id="bt-trade-table")


def _floats(text: str | None) -> list[float]:
    return [float(v) for v in (text or "").replace(";", ",").split(",") if v.strip()]


def _heatmap(snapshot: dict[str, Any]) -> Any:
    data = [{
        "type": "heatmap", "x": [f"{z:g}" for z in snapshot["entry_z"]],
        "y": [str(w) for w in snapshot["windows"]], "z": snapshot["sharpe"],
        "colorscale": "RdYlGn", "zmid": 0, "colorbar": {"title": {"text": "Sharpe"}},
        "hovertemplate": "entry z %{x}<br>window %{y}<br>Sharpe %{z:.2f}<extra></extra>",
    }]  # fmt: skip
    fig_layout = figures.layout("Sharpe by entry z × window", snapshot["id"],
                                xaxis={"title": {"text": "entry z"}, "type": "category"},
                                yaxis={"title": {"text": "window (bars)"}, "type": "category"},
                                hovermode="closest")  # fmt: skip
    return {"data": data, "layout": fig_layout}


def register(app: Dash, ctx: Context) -> None:
    from spreadbus.research import datasets  # noqa: PLC0415
    from spreadbus.research.sweep import BOOK  # noqa: PLC0415
    from spreadbus.web.routes.backtest import (  # noqa: PLC0415
        RESULTS,
        BacktestRequest,
        SweepRequest,
        closes_of,
        params_of,
    )

    root = datasets.datasets_root(ctx.settings.data_dir)

    @app.callback(
        Output("bt-pair", "options"),
        Output("bt-pair", "value"),
        Output("bt-dataset", "options"),
        Output("bt-dataset", "value"),
        Input("bt-source", "value"),
        State("bt-pair", "value"),
        State("bt-dataset", "value"),
    )
    async def choices(_source: str, pair: str | None, dataset: str | None) -> tuple[Any, ...]:
        found = await asyncio.to_thread(datasets.list_datasets, root)
        try:
            pairs, _ = await read.configured_pairs(ctx.client(), ctx.settings.pairs)
        except Exception:  # Redis away: datasets still work
            pairs = []
        ids = [d.id for d in found]
        return (pairs, pair or (pairs[0] if pairs else None),
                [{"label": f"{d.name} ({d.id})", "value": d.id} for d in found],
                dataset if dataset in ids else (ids[0] if ids else None))  # fmt: skip

    @app.callback(
        Output("bt-y", "options"), Output("bt-x", "options"),
        Output("bt-y", "value"), Output("bt-x", "value"),
        Input("bt-dataset", "value"),
        State("bt-y", "value"), State("bt-x", "value"),
    )  # fmt: skip
    async def legs(dataset: str | None, y: str | None, x: str | None) -> tuple[Any, ...]:
        if not dataset:
            return [], [], None, None
        try:
            symbols = (await asyncio.to_thread(datasets.get, root, dataset)).symbols
        except datasets.DatasetNotFoundError:
            return [], [], None, None
        y = y if y in symbols else (symbols[0] if symbols else None)
        x = x if x in symbols and x != y else next((s for s in symbols if s != y), None)
        return symbols, symbols, y, x

    def source_body(values: dict[str, Any]) -> dict[str, Any]:
        if values["source"] == "live":
            return {"pair": values["pair"], "hours": values["hours"] or 24, "bar": values["bar"]}
        return {"dataset": values["dataset"], "y": values["y"], "x": values["x"],
                "bar": values["bar"]}  # fmt: skip

    def strategy_body(values: dict[str, Any]) -> dict[str, Any]:
        keys = ("hedge", "window", "entry_z", "exit_z", "stop_z", "max_hold_bars", "fee_bps",
                "slippage_bps", "capital")  # fmt: skip
        return {k: values[k] for k in keys if values[k] not in (None, "")}

    form = [
        State("bt-source", "value"), State("bt-pair", "value"), State("bt-dataset", "value"),
        State("bt-y", "value"), State("bt-x", "value"), State("bt-bar", "value"),
        State("bt-hours", "value"), State("bt-hedge", "value"), State("bt-window", "value"),
        State("bt-entry", "value"), State("bt-exit", "value"), State("bt-stop", "value"),
        State("bt-hold", "value"), State("bt-fee", "value"), State("bt-slip", "value"),
        State("bt-capital", "value"),
    ]  # fmt: skip
    names = ("source", "pair", "dataset", "y", "x", "bar", "hours", "hedge", "window", "entry_z",
             "exit_z", "stop_z", "max_hold_bars", "fee_bps", "slippage_bps", "capital")  # fmt: skip

    def problem(text: str) -> Any:
        return dbc.Alert(text, color="warning", className="py-2", id="bt-problem")

    @app.callback(
        Output("bt-stats", "children"), Output("bt-links", "children"),
        Output("bt-equity", "figure"), Output("bt-drawdown", "figure"),
        Output("bt-spread", "figure"), Output("bt-z", "figure"),
        Output("bt-trades", "children"), Output("bt-message", "children"),
        Input("bt-run", "n_clicks"), *form,
        prevent_initial_call=True,
    )  # fmt: skip
    async def run(_clicks: int, *args: Any) -> tuple[Any, ...]:
        from fastapi import HTTPException  # noqa: PLC0415
        from pydantic import ValidationError  # noqa: PLC0415

        from spreadbus.analytics import AnalyticsInputError, ols_hedge, spread  # noqa: PLC0415
        from spreadbus.research.backtest import run_backtest  # noqa: PLC0415

        values = dict(zip(names, args, strict=True))
        keep = (no_update,) * 7
        try:
            body = BacktestRequest(**source_body(values), **strategy_body(values))
            ts, y, x = await closes_of(ctx.client(), ctx.settings, body)
            out: dict[str, Any] = await asyncio.to_thread(
                run_backtest, ts, y, x, params_of(body, body.bar)
            )
        except ValidationError as exc:
            return *keep, problem("; ".join(e["msg"] for e in exc.errors()))
        except HTTPException as exc:
            return *keep, problem(str(exc.detail))
        except AnalyticsInputError as exc:
            return *keep, problem(str(exc))
        pair = "/".join(body.legs)
        out["pair"] = pair
        result_id = RESULTS.add(out)
        stats = out["stats"]
        revision = result_id
        trades = out["trades"]
        times = ts.tolist()
        equity = [v for _, v in out["equity"]]
        drawdown = [v for _, v in out["drawdown"]]
        z = [v for _, v in out["zscore"]]
        fit = ols_hedge(y, x)
        spread_values = spread(y, x, fit.beta, fit.alpha).tolist()
        z_fig = figures.zscore(times, z, body.entry_z, body.exit_z, revision, "z-score and trades")
        z_fig["data"] += _markers(trades, dict(zip(times, z, strict=True)), "z")
        spread_line = figures.line("spread (OLS, whole run)", times, spread_values,
                                   figures.COLORS["z"])  # fmt: skip
        spread_marks = _markers(trades, dict(zip(times, spread_values, strict=True)), "spread")
        spread_fig = {"data": [spread_line, *spread_marks],
                      "layout": figures.layout("Spread and trades", revision)}  # fmt: skip
        equity_fig = {"data": [figures.line("equity", times, equity, figures.COLORS["ols"])],
                      "layout": figures.layout(f"Equity ({pair})", revision)}  # fmt: skip
        dd_fig = {"data": [figures.line("drawdown", times, [-d for d in drawdown],
                                        figures.COLORS["hot"], fill="tozeroy")],
                  "layout": figures.layout("Drawdown", revision)}  # fmt: skip
        links = html.Div([
            html.A("trades.csv", href=f"/api/backtest/{result_id}/trades.csv",
                   className="btn btn-sm btn-secondary me-2", id="bt-trades-csv"),
            html.A("equity.csv", href=f"/api/backtest/{result_id}/equity.csv",
                   className="btn btn-sm btn-secondary", id="bt-equity-csv"),
        ])  # fmt: skip
        kpis = [kpi(f, label, stats.get(f), pair, "bt", unit, spec)
                for f, label, spec, unit in STATS]  # fmt: skip
        return (kpis, links, equity_fig, dd_fig, spread_fig, z_fig, _trades_table(trades),
                None)  # fmt: skip

    @app.callback(
        Output("sw-id", "data"), Output("sw-tick", "disabled"), Output("sw-status", "children"),
        Input("sw-run", "n_clicks"), Input("sw-cancel", "n_clicks"),
        State("sw-entries", "value"), State("sw-windows", "value"), State("sw-id", "data"),
        *form,
        prevent_initial_call=True,
    )  # fmt: skip
    async def sweep(_run: int, _cancel: int, entries: str, windows: str, current: str | None,
                    *args: Any) -> tuple[Any, ...]:  # fmt: skip
        from fastapi import HTTPException  # noqa: PLC0415
        from pydantic import ValidationError  # noqa: PLC0415

        if dash_ctx.triggered_id == "sw-cancel":
            if current:
                BOOK.cancel(current)
            return no_update, no_update, "cancelling…"
        values = dict(zip(names, args, strict=True))
        try:
            body = SweepRequest(**source_body(values), **strategy_body(values),
                                entry_zs=_floats(entries),
                                windows=[int(w) for w in _floats(windows)])  # fmt: skip
            _, y, x = await closes_of(ctx.client(), ctx.settings, body)
            started = BOOK.start(y, x, params_of(body, body.bar), body.entry_zs, body.windows)
        except ValidationError as exc:
            return no_update, True, "; ".join(e["msg"] for e in exc.errors())
        except (HTTPException, ValueError) as exc:
            return no_update, True, str(getattr(exc, "detail", exc))
        return started.id, False, f"sweep {started.id} started"

    @app.callback(
        Output("sw-progress", "value"), Output("sw-progress", "label"),
        Output("sw-heatmap", "figure"), Output("sw-tick", "disabled", allow_duplicate=True),
        Input("sw-tick", "n_intervals"), State("sw-id", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    async def progress(_n: int, sweep_id: str | None) -> tuple[Any, ...]:
        found = BOOK.get(sweep_id) if sweep_id else None
        if found is None:
            raise PreventUpdate
        snapshot: dict[str, Any] = found.snapshot()
        percent = 100 * snapshot["done"] / max(snapshot["total"], 1)
        label = f"{snapshot['done']}/{snapshot['total']} {snapshot['status']}"
        finished = snapshot["status"] != "running"
        return percent, label, _heatmap(snapshot), finished


PAGE = Page("/backtest", "Backtest", layout, register)
