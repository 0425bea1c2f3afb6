"""``/data``: upload a file as a dataset, analyse a pair of it offline, download history.

The upload goes from the browser straight to ``POST /api/datasets`` (a client-side callback
posts the chosen file as multipart; the server streams it to disk and checks it), so the page
shows the API's own message for a bad file. The analysis runs
:func:`spreadbus.research.analysis.pair_analytics` on the dataset's bars: the same KPI names
(``data-kpi``) and charts as the live pair view, plus a Johansen panel. Downloads are links
to ``/api/downloads/...`` and the archive's files (``/api/archive``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qs, urlencode

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate

from spreadbus.archivist.layout import archive_root
from spreadbus.archivist.reader import list_files
from spreadbus.web.dashboard import figures, fmt
from spreadbus.web.dashboard.context import Context
from spreadbus.web.dashboard.pages import Page

KPIS: Final = (
    ("beta", "β"), ("alpha", "α"), ("r2", "R²"), ("kalman_beta", "β Kalman"),
    ("corr", "Correlation"), ("zscore", "z-score"), ("spread_std", "Spread σ"),
    ("adf_pvalue", "ADF p"), ("eg_pvalue", "Engle-Granger p"), ("half_life", "Half-life (OU)"),
    ("hurst", "Hurst"), ("spread_vol", "Spread vol"), ("var_95", "VaR 95%"), ("n", "Bars"),
)  # fmt: skip
HEDGES: Final = (("OLS", "ols"), ("Kalman", "kalman"), ("Huber", "huber"),
                 ("Theil-Sen", "theil_sen"))  # fmt: skip
ARCHIVE_ROWS: Final = 200

# dcc.Upload hands the browser a data: URL; this posts it to the API as the multipart field
# ``file`` without a round trip through a Dash callback (the server streams it to disk)
UPLOAD_JS: Final = """
async function(contents, filename) {
    if (!contents) { return window.dash_clientside.no_update; }
    try {
        const blob = await (await fetch(contents)).blob();
        const form = new FormData();
        form.append('file', blob, filename || 'upload.csv');
        const answer = await fetch('/api/datasets', {method: 'POST', body: form});
        let body;
        try { body = await answer.json(); } catch (e) { body = {detail: answer.statusText}; }
        return {status: answer.status, body: body, name: filename, at: Date.now()};
    } catch (e) {
        return {status: 0, body: {detail: 'upload failed: ' + e}, name: filename, at: Date.now()};
    }
}
"""


def kpi(
    field: str,
    label: str,
    value: Any,
    pair: str,
    prefix: str,
    unit: str | None = None,
    spec: str | None = None,
) -> Any:
    """One KPI box: ``data-kpi`` = the field, its text = the value shown (the live view's
    format, or ``spec``); ``unit`` replaces the live view's unit (offline, half-lives are in
    bars, not seconds)."""
    shown = fmt.text(field, value)
    if spec is not None and fmt.number(value) is not None:
        shown = format(fmt.number(value), spec)
    return html.Div(
        [
            html.Div(label, className="kpi-label", title=field),
            html.Span(shown, id=f"{prefix}-kpi-{field}", className="kpi-value",
                      **{"data-kpi": field, "data-pair": pair}),  # type: ignore[arg-type]
            html.Span(fmt.unit(field) if unit is None else unit, className="kpi-unit"),
        ],
        className="kpi",
    )  # fmt: skip


def graph(graph_id: str, figure: Any, width: int = 6) -> Any:
    return dbc.Col(
        html.Div(dcc.Graph(id=graph_id, figure=figure, config={"displaylogo": False}),
                 className="chart-card"),
        lg=width,
    )  # fmt: skip


def when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _upload_card() -> Any:
    return dbc.Card(
        dbc.CardBody([
            html.H6("Upload a dataset"),
            html.P("Binance data-vision trades / aggTrades / 1m klines CSV (zipped or not), or "
                   "timestamp,symbol,price[,qty] (epoch ms or ISO-8601 with a time zone).",
                   className="small text-muted"),
            dcc.Upload(
                id="data-upload",
                children=html.Div(["Drop a file here or ", html.A("choose one")]),
                max_size=-1,  # the server enforces upload_max_bytes and says so
                className="upload-zone",
                style={"border": "1px dashed #5d6d7e", "borderRadius": "6px", "padding": "14px",
                       "textAlign": "center", "cursor": "pointer"},
            ),
            html.Div(id="data-upload-message", className="mt-2"),
        ]),
        className="mb-3",
    )  # fmt: skip


def _analysis_controls() -> Any:
    def labelled(label: str, control: Any, width: int = 2) -> Any:
        return dbc.Col([dbc.Label(label), control], md=width)

    return dbc.Row([
        labelled("Dataset", dcc.Dropdown(id="data-dataset", clearable=False), 3),
        labelled("Y", dcc.Dropdown(id="data-y")),
        labelled("X", dcc.Dropdown(id="data-x")),
        labelled("Bar", dbc.RadioItems(id="data-bar", value="1m", inline=True,
                                       options=["1s", "1m", "5m", "1h"])),
        labelled("Hedge", dbc.Select(id="data-hedge", value="ols", size="sm",
                                     options=[{"label": t, "value": v} for t, v in HEDGES])),
    ], className="controls g-2 my-2")  # fmt: skip


def _downloads_card() -> Any:
    now = datetime.now(UTC).replace(microsecond=0)
    start = now.replace(minute=0, second=0)
    return dbc.Card(dbc.CardBody([
        html.H6("Downloads"),
        dbc.Row([
            dbc.Col([dbc.Label("Symbol or pair"), dbc.Input(id="dl-name", value="BTCUSDT",
                                                            size="sm")], md=2),
            dbc.Col([dbc.Label("What"), dbc.Select(id="dl-what", value="ticks", size="sm", options=[
                {"label": "ticks", "value": "ticks"}, {"label": "bars 1s", "value": "bars-1s"},
                {"label": "bars 1m", "value": "bars-1m"}, {"label": "bars 5m", "value": "bars-5m"},
                {"label": "bars 1h", "value": "bars-1h"},
                {"label": "analytics history (pair)", "value": "analytics"}])], md=2),
            dbc.Col([dbc.Label("From (UTC)"), dbc.Input(id="dl-start", size="sm",
                                                        value=start.isoformat()[:19])], md=2),
            dbc.Col([dbc.Label("To (UTC)"), dbc.Input(id="dl-end", size="sm",
                                                      value=now.isoformat()[:19])], md=2),
            dbc.Col([dbc.Label("Format"), dbc.RadioItems(id="dl-format", value="csv", inline=True,
                                                         options=["csv", "parquet"])], md=2),
            dbc.Col(html.Div(id="dl-link", className="mt-4"), md=2),
        ], className="controls g-2"),
        html.H6("Parquet archive", className="mt-3"),
        html.Div(id="data-archive"),
    ]), className="mb-3")  # fmt: skip


def layout(_path: str) -> Any:
    return dbc.Container(
        [
            html.H5("Data", className="mt-2"),
            _upload_card(),
            dbc.Card(dbc.CardBody([html.H6("Datasets"), html.Div(id="data-list")]),
                     className="mb-3"),
            dbc.Card(dbc.CardBody([
                html.H6("Offline analysis"),
                _analysis_controls(),
                html.Div(id="data-analysis-message"),
                html.Div(id="data-kpis", className="kpi-grid"),
                dbc.Row([graph("data-prices", figures.empty("Prices", "pick a dataset and a pair")),
                         graph("data-spread", figures.empty("Spread", ""))], className="mt-2 g-2"),
                dbc.Row([graph("data-z", figures.empty("z-score", "")),
                         dbc.Col(html.Div(id="data-johansen"), lg=6)], className="g-2"),
            ]), className="mb-3"),
            _downloads_card(),
            dcc.Store(id="data-upload-result"),
            dcc.Store(id="data-refresh", data=0),
        ],
        fluid=True,
    )  # fmt: skip


def _datasets_table(found: list[Any]) -> Any:
    if not found:
        return html.P("No datasets yet: upload a file above.", className="text-muted")
    head = html.Thead(
        html.Tr([html.Th(t) for t in ("Id", "File", "Kind", "Symbols", "Rows", "From", "To", "")])
    )
    rows = [
        html.Tr([
            html.Td(d.id, className="num"), html.Td(d.name), html.Td(d.kind),
            html.Td(", ".join(d.symbols)), html.Td(f"{d.rows:,}", className="num"),
            html.Td(when(d.start_ms)), html.Td(when(d.end_ms)),
            html.Td(dbc.Button("delete", id={"type": "data-delete", "id": d.id}, size="sm",
                               color="danger", outline=True)),
        ], **{"data-dataset": d.id})
        for d in found
    ]  # fmt: skip
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, className="mb-0")


def _message(result: dict[str, Any]) -> Any:
    status, body = result.get("status", 0), result.get("body") or {}
    if status == 201:
        return dbc.Alert(
            f"Dataset {body['id']}: {body['rows']:,} rows of {', '.join(body['symbols'])}.",
            color="success", id="data-upload-ok", className="py-2 mb-0",
        )  # fmt: skip
    # the API's detail already names the line and column (``body["line"]``/``["column"]``)
    return dbc.Alert(f"Upload refused: {body.get('detail', 'unknown error')}",
                     color="danger", id="data-upload-error", className="py-2 mb-0")  # fmt: skip


def _query(search: Any) -> dict[str, str]:
    """``?dataset=..&y=..&x=..`` (how the screener opens a dataset pair here)."""
    parsed = parse_qs(str(search or "").lstrip("?"))
    return {k: v[0] for k, v in parsed.items() if v}


def _ms(text: str) -> int:
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _archive_table(ctx: Context) -> Any:
    files = list_files(archive_root(ctx.settings.data_dir))
    if not files:
        return html.P("The archive is empty so far.", className="text-muted small")
    rows = [
        html.Tr([html.Td(html.A(f.path, href=f"/api/archive/{f.path}", target="_blank")),
                 html.Td(f.dataset), html.Td(f.key), html.Td(f.date),
                 html.Td(f"{f.size:,}", className="num")])
        for f in files[-ARCHIVE_ROWS:]
    ]  # fmt: skip
    head = html.Thead(html.Tr([html.Th(t) for t in ("File", "Kind", "Key", "Date", "Bytes")]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", className="mb-0 small")


def _johansen(panel: dict[str, Any] | None) -> Any:
    if panel is None:
        return html.P("Johansen: not enough data.", className="text-muted")
    rows = [
        html.Tr([html.Td(f"r ≤ {r}"), html.Td(f"{panel['trace_stat'][r]:.3f}"),
                 html.Td(f"{panel['trace_crit'][r][1]:.3f}"),
                 html.Td(f"{panel['max_eig_stat'][r]:.3f}"),
                 html.Td(f"{panel['max_eig_crit'][r][1]:.3f}"),
                 html.Td(f"{panel['eigenvalues'][r]:.5f}"),
                 html.Td(", ".join(f"{v:.4g}" for v in panel["eigenvectors"][r]))])
        for r in range(len(panel["trace_stat"]))
    ]  # fmt: skip
    head = html.Thead(
        html.Tr(
            [
                html.Th(t)
                for t in (
                    "H0",
                    "Trace",
                    "Trace 95%",
                    "Max-eig",
                    "Max-eig 95%",
                    "Eigenvalue",
                    "Vector (y, x)",
                )
            ]
        )
    )
    return html.Div([html.H6("Johansen", className="mt-2"),
                     dbc.Table([head, html.Tbody(rows)], size="sm", id="data-johansen-table")],
                    className="chart-card p-2")  # fmt: skip


def register(app: Dash, ctx: Context) -> None:
    from spreadbus.research import datasets  # noqa: PLC0415
    from spreadbus.research.analysis import pair_analytics  # noqa: PLC0415

    root = datasets.datasets_root(ctx.settings.data_dir)
    app.clientside_callback(  # type: ignore[no-untyped-call]
        UPLOAD_JS,
        Output("data-upload-result", "data"),
        Input("data-upload", "contents"),
        State("data-upload", "filename"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("data-upload-message", "children"),
        Output("data-refresh", "data"),
        Input("data-upload-result", "data"),
        State("data-refresh", "data"),
        prevent_initial_call=True,
    )
    async def uploaded(result: dict[str, Any] | None, refresh: int) -> tuple[Any, int]:
        if not result:
            raise PreventUpdate
        return _message(result), refresh + 1

    @app.callback(
        Output("data-list", "children"),
        Output("data-dataset", "options"),
        Output("data-dataset", "value"),
        Input("data-refresh", "data"),
        Input({"type": "data-delete", "id": ALL}, "n_clicks"),
        State("data-dataset", "value"),
        State("data-upload-result", "data"),
        State("url", "search"),
    )
    async def listing(
        _refresh: int, deletes: list[int | None], current: str | None, result: Any, search: Any
    ) -> tuple[Any, Any, Any]:
        trigger = dash_ctx.triggered_id
        if isinstance(trigger, dict) and any(deletes):
            await asyncio.to_thread(datasets.delete, root, trigger["id"])
        found = await asyncio.to_thread(datasets.list_datasets, root)
        options = [{"label": f"{d.name} ({d.id})", "value": d.id} for d in found]
        ids = [d.id for d in found]
        asked = _query(search).get("dataset")
        value: str | None = ids[0] if ids else None
        if asked in ids:
            value = asked
        if current in ids:
            value = current
        if trigger == "data-refresh" and result and result.get("status") == 201:
            value = result["body"]["id"]  # a new upload: analyse it
        return _datasets_table(found), options, value

    @app.callback(
        Output("data-y", "options"),
        Output("data-x", "options"),
        Output("data-y", "value"),
        Output("data-x", "value"),
        Input("data-dataset", "value"),
        State("data-y", "value"),
        State("data-x", "value"),
        State("url", "search"),
    )
    async def legs(
        dataset: str | None, y: str | None, x: str | None, search: Any
    ) -> tuple[Any, ...]:
        if not dataset:
            return [], [], None, None
        try:
            info = await asyncio.to_thread(datasets.get, root, dataset)
        except datasets.DatasetNotFoundError:
            return [], [], None, None
        symbols = info.symbols
        query = _query(search)
        y, x = y or query.get("y"), x or query.get("x")
        y = y if y in symbols else (symbols[0] if symbols else None)
        x = x if x in symbols and x != y else next((s for s in symbols if s != y), None)
        return symbols, symbols, y, x

    @app.callback(
        Output("data-kpis", "children"),
        Output("data-prices", "figure"),
        Output("data-spread", "figure"),
        Output("data-z", "figure"),
        Output("data-johansen", "children"),
        Output("data-analysis-message", "children"),
        Input("data-dataset", "value"),
        Input("data-y", "value"),
        Input("data-x", "value"),
        Input("data-bar", "value"),
        Input("data-hedge", "value"),
    )
    async def analyse(dataset: str | None, y: str | None, x: str | None, bar: str,
                      hedge: str) -> tuple[Any, ...]:  # fmt: skip
        if not (dataset and y and x) or y == x:
            raise PreventUpdate

        def compute() -> dict[str, Any]:
            closes = datasets.bar_closes(root, dataset, [y, x], bar)  # type: ignore[arg-type]
            ts, ys, xs = closes.index.to_numpy(), closes[y].to_numpy(), closes[x].to_numpy()
            return pair_analytics(ts, ys, xs, bar, hedge)  # type: ignore[arg-type]

        try:
            out = await asyncio.to_thread(compute)
        except (ValueError, LookupError) as exc:
            alert = dbc.Alert(str(exc), color="warning", className="py-2")
            return no_update, no_update, no_update, no_update, no_update, alert
        pair = f"{y}/{x}"
        fields, series = out["fields"], out["series"]
        revision = f"{dataset}:{pair}:{bar}:{hedge}"
        ts = series["ts_ms"]
        kpis = [kpi(f, label, fields.get(f), pair, "data", "bars" if "half_life" in f else None)
                for f, label in KPIS]  # fmt: skip
        spread_fig = {"data": [figures.line("spread", ts, series["spread"], figures.COLORS["z"])],
                      "layout": figures.layout(f"Spread ({hedge})", revision)}  # fmt: skip
        z_fig = figures.zscore(ts, series["zscore"], 2.0, 0.5, revision, "z-score")
        return (kpis, figures.prices(ts, series["y"], series["x"], (y, x), False, revision),
                spread_fig, z_fig, _johansen(out["johansen"]), None)  # fmt: skip

    @app.callback(
        Output("dl-link", "children"),
        Input("dl-name", "value"),
        Input("dl-what", "value"),
        Input("dl-start", "value"),
        Input("dl-end", "value"),
        Input("dl-format", "value"),
    )
    async def link(name: str, what: str, start: str, end: str, fmt_: str) -> Any:
        try:
            params = {"start_ms": _ms(start), "end_ms": _ms(end), "format": fmt_}
        except (ValueError, AttributeError):
            return html.Span("dates: YYYY-MM-DDTHH:MM:SS", className="text-warning small")
        name = (name or "").strip().upper()
        if what == "analytics":
            url = "/api/downloads/analytics?" + urlencode({"pair": name, **params})
        elif what.startswith("bars-"):
            url = "/api/downloads/bars?" + urlencode(
                {"symbol": name, "bar": what.removeprefix("bars-"), **params}
            )
        else:
            url = "/api/downloads/ticks?" + urlencode({"symbol": name, **params})
        return html.A("download", href=url, id="dl-href", className="btn btn-sm btn-secondary",
                      target="_blank")  # fmt: skip

    @app.callback(Output("data-archive", "children"), Input("data-refresh", "data"))
    async def archive(_refresh: int) -> Any:
        return await asyncio.to_thread(_archive_table, ctx)


PAGE = Page("/data", "Data", layout, register)
