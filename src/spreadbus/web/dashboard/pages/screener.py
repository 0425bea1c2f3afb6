"""``/screener``: rank every pair of a universe by Engle-Granger p-value; open a pair or watch
it live.

The ranking is ``POST /api/screener``'s own handler. "analyze" opens the live pair view (live
universe) or the data page on the dataset's pair; "watch" adds the pair to ``config:pairs``
through the handler of ``PUT /api/pairs`` (validated and announced on ``channel:config``), so
the engine picks it up and it appears on the overview.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import urlencode

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from spreadbus.web import read
from spreadbus.web.dashboard.context import Context
from spreadbus.web.dashboard.pages import Page

SHOWN: Final = 100


def layout(_path: str) -> Any:
    return dbc.Container(
        [
            html.H5("Screener", className="mt-2"),
            dbc.Row([
                dbc.Col([dbc.Label("Universe"), dbc.RadioItems(
                    id="sc-source", value="live", inline=True,
                    options=[{"label": "live symbols", "value": "live"},
                             {"label": "dataset", "value": "dataset"}])], md=2),
                dbc.Col([dbc.Label("Symbols (blank: every symbol with candles)"),
                         dbc.Input(id="sc-symbols", size="sm", placeholder="BTCUSDT, ETHUSDT, …")],
                        md=3),
                dbc.Col([dbc.Label("Hours"), dbc.Input(id="sc-hours", type="number", value=24,
                                                       min=1, size="sm")], md=1),
                dbc.Col([dbc.Label("Dataset"), dcc.Dropdown(id="sc-dataset")], md=3),
                dbc.Col([dbc.Label("Bar"), dbc.RadioItems(id="sc-bar", value="1m", inline=True,
                                                          options=["1s", "1m", "5m", "1h"])], md=2),
                dbc.Col(dbc.Button("Screen", id="sc-run", color="primary", size="sm",
                                   className="mt-4"), md=1),
            ], className="controls g-2"),
            html.Div(id="sc-message", className="mt-2"),
            dcc.Loading(html.Div(id="sc-table", className="mt-2")),
            dcc.Store(id="sc-rows"),
        ],
        fluid=True,
    )  # fmt: skip


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _table(result: dict[str, Any], dataset: str | None) -> Any:
    rows = []
    for row in result["rows"][:SHOWN]:
        pair = row["pair"]
        y, x = pair.split("/")
        if dataset:
            href = "/data?" + urlencode({"dataset": dataset, "y": y, "x": x})
        else:
            href = "/pair/" + pair.replace("/", "-")
        rows.append(html.Tr([
            html.Td(pair), html.Td(_fmt(row["eg_pvalue"], ".4f"), className="num"),
            html.Td(_fmt(row["eg_pvalue_reverse"], ".4f"), className="num"),
            html.Td(_fmt(row["half_life"], ".1f"), className="num"),
            html.Td(_fmt(row["corr"], ".3f"), className="num"),
            html.Td(_fmt(row["beta"], ".5g"), className="num"), html.Td(row["n"], className="num"),
            html.Td([
                dcc.Link("analyze", href=href, className="btn btn-sm btn-secondary me-1",
                         id={"type": "sc-analyze", "pair": pair}),
                dbc.Button("watch", id={"type": "sc-watch", "pair": pair}, size="sm",
                           color="primary", outline=True),
            ]),
        ], **{"data-pair": pair}))  # fmt: skip
    titles = ("Pair Y/X", "EG p", "EG p (X/Y)", "Half-life (bars)", "Corr", "β", "Bars", "")
    head = html.Thead(html.Tr([html.Th(t) for t in titles]))
    caption = html.P(
        f"{len(result['rows'])} pairs of {len(result['symbols'])} symbols over "
        f"{result['bars']} bars, best first.",
        className="small text-muted mb-1",
    )
    return html.Div([caption, dbc.Table([head, html.Tbody(rows)], size="sm", hover=True,
                                        className="overview", id="sc-results")])  # fmt: skip


def register(app: Dash, ctx: Context) -> None:
    from spreadbus.research import datasets  # noqa: PLC0415

    root = datasets.datasets_root(ctx.settings.data_dir)

    @app.callback(Output("sc-dataset", "options"), Output("sc-dataset", "value"),
                  Input("sc-source", "value"), State("sc-dataset", "value"))  # fmt: skip
    async def choices(_source: str, current: str | None) -> tuple[Any, Any]:
        import asyncio  # noqa: PLC0415

        found = await asyncio.to_thread(datasets.list_datasets, root)
        ids = [d.id for d in found]
        options = [{"label": f"{d.name} ({d.id})", "value": d.id} for d in found]
        return options, current if current in ids else (ids[0] if ids else None)

    @app.callback(
        Output("sc-table", "children"), Output("sc-message", "children"),
        Input("sc-run", "n_clicks"),
        State("sc-source", "value"), State("sc-symbols", "value"), State("sc-hours", "value"),
        State("sc-dataset", "value"), State("sc-bar", "value"),
        prevent_initial_call=True,
    )  # fmt: skip
    async def screen(_clicks: int, source: str, symbols: str | None, hours: Any,
                     dataset: str | None, bar: str) -> tuple[Any, Any]:  # fmt: skip
        from fastapi import HTTPException  # noqa: PLC0415
        from pydantic import ValidationError  # noqa: PLC0415

        from spreadbus.web.routes.screener import ScreenerRequest, run_screener  # noqa: PLC0415

        names = [s.strip() for s in (symbols or "").split(",") if s.strip()] or None
        if names is not None and len(names) < 2:
            return no_update, dbc.Alert(
                "A screen needs at least 2 symbols (or leave the list empty for every symbol "
                "with data).", color="warning", className="py-2", id="sc-problem",
            )  # fmt: skip
        try:
            if source == "dataset":
                body = ScreenerRequest(dataset=dataset, symbols=names, bar=bar)
            else:
                body = ScreenerRequest(symbols=names, hours=hours or 24, bar=bar)
            result = await run_screener(body, ctx.client(), ctx.settings)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors()
            )
            return no_update, dbc.Alert(problems, color="warning", className="py-2",
                                        id="sc-problem")  # fmt: skip
        except HTTPException as exc:
            return no_update, dbc.Alert(str(exc.detail), color="warning", className="py-2",
                                        id="sc-problem")  # fmt: skip
        chosen = dataset if source == "dataset" else None
        return _table(result.model_dump(), chosen), None

    @app.callback(
        Output("sc-message", "children", allow_duplicate=True),
        Input({"type": "sc-watch", "pair": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    async def watch(clicks: list[int | None]) -> Any:
        from fastapi import HTTPException  # noqa: PLC0415

        from spreadbus.web.routes.pairs import put_pairs  # noqa: PLC0415

        trigger = dash_ctx.triggered_id
        if not isinstance(trigger, dict) or not any(clicks):
            raise PreventUpdate
        pair = trigger["pair"]
        client = ctx.client()
        current, _ = await read.configured_pairs(client, ctx.settings.pairs)
        if pair in current:
            return dbc.Alert(f"{pair} is already watched.", color="info", className="py-2")
        try:
            await put_pairs(client, [*current, pair])
        except HTTPException as exc:
            return dbc.Alert(str(exc.detail), color="warning", className="py-2")
        return dbc.Alert([f"Watching {pair}: ", dcc.Link("open the overview", href="/")],
                         color="success", className="py-2", id="sc-watched")  # fmt: skip


PAGE = Page("/screener", "Screener", layout, register)
