"""``/``: every pair in one sortable table, with a z-score sparkline each; a click opens it.

The server sends compact rows each second (one array per pair, numbers already rounded to
what the table shows) and a clientside function (``assets/dashboard.js``) renders, sorts and
draws the sparklines: a 25-pair table costs ~2 KB a second instead of a re-sent component
tree. Sparklines start from the last five minutes of ``ts:analytics:{PAIR}:zscore`` and
grow by the snapshot's newest bar; the browser keeps at most :data:`SPARK_POINTS` per pair.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import dash_bootstrap_components as dbc
from dash import ALL, ClientsideFunction, Dash, Input, Output, State, dcc, html

from spreadbus.analytics.glossary import GLOSSARY
from spreadbus.bus.codec import Alert
from spreadbus.web import read
from spreadbus.web.dashboard import fmt
from spreadbus.web.dashboard.context import Context, live_callback
from spreadbus.web.dashboard.pages import Page

SPARK_MINUTES: Final = 5
SPARK_POINTS: Final = 300
ALERTS_SCANNED: Final = 200
# the row layout the browser's renderer reads (assets/dashboard.js, COLUMNS)
ROW_FIELDS: Final = (
    "pair", "zscore", "beta", "kalman_beta", "half_life", "adf_pvalue", "corr", "spread_vol",
    "basis_bps", "last_alert", "age_s", "bars", "window", "bar_ms", "zscore_bar",
)  # fmt: skip


def layout(_path: str) -> Any:
    return dbc.Container(
        [
            html.Div(
                [
                    html.H5("Pairs", className="mb-0 me-3"),
                    html.Small(
                        "z-score of the live spread; click a row for its charts. "
                        "Sort by clicking a column.",
                        className="text-muted",
                    ),
                ],
                className="d-flex align-items-baseline mt-2 mb-2",
            ),
            html.Div(id="ov-table", className="table-responsive"),
            dcc.Store(id="ov-data"),
            dcc.Store(id="ov-sort", data={"col": "zscore", "desc": True, "abs": True}),
            dcc.Interval(id="ov-tick", interval=1000),
        ],
        fluid=True,
    )


def _rounded(field: str, value: Any) -> float | None:
    number = fmt.number(value)
    if number is None:
        return None
    text = fmt.text(field, number)
    try:
        return float(text)
    except ValueError:
        return number


def _last_alerts(alerts: list[Alert]) -> dict[str, Alert]:
    newest: dict[str, Alert] = {}
    for alert in alerts:  # newest first
        newest.setdefault(alert.pair, alert)
    return newest


def rows(
    pairs: list[str],
    snaps: dict[str, dict[str, Any]],
    symbols: dict[str, dict[str, Any]],
    alerts: list[Alert],
    now_s: float,
) -> list[list[Any]]:
    """One array per pair in :data:`ROW_FIELDS` order, numbers rounded for display."""
    last = _last_alerts(alerts)
    out: list[list[Any]] = []
    for pair in pairs:
        snap = snaps.get(pair, {})
        y_leg = symbols.get(pair.split("/")[0], {})
        tick_ms = fmt.number(snap.get("tick_ms")) or 0
        alert = last.get(pair)
        out.append([
            pair,
            _rounded("zscore", snap.get("zscore")),
            _rounded("beta", snap.get("beta")),
            _rounded("kalman_beta", snap.get("kalman_beta")),
            _rounded("half_life", snap.get("half_life")),
            _rounded("adf_pvalue", snap.get("adf_pvalue")),
            _rounded("corr", snap.get("corr")),
            _rounded("spread_vol", snap.get("spread_vol")),
            _rounded("basis_bps", y_leg.get("basis_bps")),
            [alert.message or f"{alert.metric} {alert.op} {alert.threshold:g}", alert.time_ms]
            if alert else None,
            round(now_s - tick_ms / 1000, 1) if tick_ms else None,
            fmt.number(snap.get("bars", snap.get("n"))),
            fmt.number(snap.get("window_bars", snap.get("window"))),
            fmt.number(snap.get("bar_ms")),
            _rounded("zscore", snap.get("zscore_bar")),
        ])  # fmt: skip
    return out


def register(app: Dash, ctx: Context) -> None:
    @app.callback(
        Output("ov-data", "data"),
        Input("ov-tick", "n_intervals"),
    )
    @live_callback
    async def refresh(n_intervals: int | None) -> dict[str, Any]:
        client = ctx.client()
        pairs, _ = await read.configured_pairs(client, ctx.settings.pairs)
        symbols = sorted({s for pair in pairs for s in pair.split("/")})
        snaps, legs, alerts = await asyncio.gather(
            read.snapshots(client, pairs),
            read.snapshots(client, symbols),
            read.recent_alerts(client, ALERTS_SCANNED),
        )
        data: dict[str, Any] = {"rows": rows(pairs, snaps, legs, alerts, time.time())}
        if n_intervals == 1:
            # a fresh page's second answer: the sparklines' history and the tooltips, once (the
            # first answer carries the rows alone, so the table shows without waiting for them)
            data["titles"] = {f: GLOSSARY[f] for f in ROW_FIELDS if f in GLOSSARY}
            histories = await asyncio.gather(*(
                read.history(client, pair, ["zscore"], SPARK_MINUTES, "1s") for pair in pairs
            ))  # fmt: skip
            data["spark"] = {
                pair: [[ts, fmt.number(float(v))] for ts, v in (h["zscore"] or [])][-SPARK_POINTS:]
                for pair, h in zip(pairs, histories, strict=True)
            }
        return data

    app.clientside_callback(  # type: ignore[no-untyped-call]
        ClientsideFunction("spreadbus", "overviewTable"),
        Output("ov-table", "children"),
        Input("ov-data", "data"),
        Input("ov-sort", "data"),
    )
    app.clientside_callback(  # type: ignore[no-untyped-call]
        ClientsideFunction("spreadbus", "overviewSort"),
        Output("ov-sort", "data"),
        Input({"type": "ov-sort", "col": ALL}, "n_clicks"),
        State("ov-sort", "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(  # type: ignore[no-untyped-call]
        ClientsideFunction("spreadbus", "overviewOpen"),
        Output("url", "pathname", allow_duplicate=True),
        Input({"type": "ov-row", "pair": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )


PAGE = Page("/", "Overview", layout, register)
