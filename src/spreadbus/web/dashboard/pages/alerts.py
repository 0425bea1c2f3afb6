"""``/alerts``: the live alert feed, its history, and the rules with add, edit and delete.

Rule writes go through the API's own handlers (:mod:`spreadbus.web.routes.alerts`), so a
form is validated by exactly the code that validates ``PUT /api/alerts/rules/{id}``, shows
its message on a bad rule, and is announced on ``channel:config`` for the engine at once.
"""

from __future__ import annotations

import time
from typing import Any, Final

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from dash.exceptions import PreventUpdate
from fastapi import HTTPException

from spreadbus.web import read
from spreadbus.web.dashboard.context import Context, live_callback
from spreadbus.web.dashboard.pages import Page
from spreadbus.web.routes import alerts as alert_routes

FEED_SIZE: Final = 100
OPS: Final = (">", "<", ">=", "<=", "abs>")
RULE_FIELDS: Final = ("metric", "op", "threshold", "pair", "cooldown_s", "hysteresis", "message")


def _feed_table(alerts: list[Any]) -> Any:
    if not alerts:
        return html.P("No alerts yet.", className="text-muted")
    rows = [
        html.Tr([
            html.Td(time.strftime("%H:%M:%S", time.gmtime(a.time_ms / 1000)), className="num"),
            html.Td(a.pair), html.Td(a.rule_id), html.Td(f"{a.metric} {a.op} {a.threshold:g}"),
            html.Td(f"{a.value:.4g}", className="num"), html.Td(a.message),
        ], **{"data-alert": a.rule_id})
        for a in alerts
    ]  # fmt: skip
    titles = ("UTC", "Pair", "Rule", "Condition", "Value", "Message")
    head = html.Thead(html.Tr([html.Th(t) for t in titles]))
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, className="mb-0")


def _rules_table(rules: list[Any], invalid: dict[str, str]) -> Any:
    rows = [
        html.Tr([
            html.Td(r.id), html.Td(r.pair), html.Td(f"{r.metric} {r.op} {r.threshold:g}"),
            html.Td(f"{r.cooldown_s:g} s"), html.Td(f"{r.hysteresis:g}"), html.Td(r.message),
            html.Td([
                dbc.Button("edit", id={"type": "rule-edit", "rule": r.id}, size="sm",
                           color="secondary", className="me-1"),
                dbc.Button("delete", id={"type": "rule-delete", "rule": r.id}, size="sm",
                           color="danger", outline=True),
            ]),
        ], **{"data-rule": r.id})
        for r in rules
    ] + [
        html.Tr([html.Td(rule_id), html.Td(f"invalid: {why}", colSpan=6, className="text-danger")])
        for rule_id, why in invalid.items()
    ]  # fmt: skip
    head = html.Thead(html.Tr([html.Th(t) for t in ("Id", "Pair", "Condition", "Cooldown",
                                                     "Hysteresis", "Message", "")]))  # fmt: skip
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, className="mb-0")


def _form() -> Any:
    def field(label: str, control: Any, width: int) -> Any:
        return dbc.Col([dbc.Label(label), control], xs=width)

    ops = [{"label": o, "value": o} for o in OPS]
    return dbc.Form(
        dbc.Row(
            [
                field("Rule id", dbc.Input(id="rule-id", placeholder="z_eth_btc", size="sm"), 4),
                field("Metric", dbc.Input(id="rule-metric", value="zscore", size="sm"), 4),
                field("Op", dbc.Select(id="rule-op", value="abs>", options=ops, size="sm"), 4),
                field("Threshold", dbc.Input(id="rule-threshold", type="number", value=2.5,
                                             size="sm"), 3),
                field("Pair (* = all)", dbc.Input(id="rule-pair", value="*", size="sm"), 5),
                field("Cooldown s", dbc.Input(id="rule-cooldown", type="number", value=60,
                                              size="sm"), 2),
                field("Hysteresis", dbc.Input(id="rule-hysteresis", type="number", value=0.5,
                                              size="sm"), 2),
                field("Message", dbc.Input(id="rule-message", size="sm"), 12),
            ],
            className="g-2 controls",
        ),
    )  # fmt: skip


def layout(_path: str) -> Any:
    return dbc.Container(
        [
            dbc.Row(
                [
                    dbc.Col(
                        [html.H5("Live alerts", className="mt-2"), html.Div(id="alerts-feed")], lg=7
                    ),
                    dbc.Col(
                        [
                            html.H5("Rules", className="mt-2"),
                            html.Div(id="alerts-rules"),
                            html.H6("Add or edit a rule", className="mt-3"),
                            _form(),
                            dbc.Button(
                                "Save rule",
                                id="rule-save",
                                color="primary",
                                size="sm",
                                className="mt-2",
                            ),
                            html.Div(id="rule-message-out", className="mt-2"),
                        ],
                        lg=5,
                    ),
                ]
            ),
            dcc.Store(id="alerts-newest"),
            dcc.Store(id="alerts-version", data=0),
            dcc.Interval(id="alerts-tick", interval=1000),
        ],
        fluid=True,
    )


def register(app: Dash, ctx: Context) -> None:
    @app.callback(
        Output("alerts-feed", "children"),
        Output("alerts-newest", "data"),
        Input("alerts-tick", "n_intervals"),
        State("alerts-newest", "data"),
    )
    @live_callback
    async def feed(_n: int | None, newest: str | None) -> tuple[Any, Any]:
        alerts = await read.recent_alerts(ctx.client(), FEED_SIZE)
        key = f"{alerts[0].time_ms}:{alerts[0].rule_id}" if alerts else ""
        if key == newest and _n:
            raise PreventUpdate  # nothing new: send nothing
        return _feed_table(alerts), key

    @app.callback(
        Output("alerts-rules", "children"),
        Input("alerts-version", "data"),
    )
    @live_callback
    async def rules(_version: int) -> Any:
        answer = await alert_routes.rules(ctx.client())
        return _rules_table(answer.rules, answer.invalid)

    @app.callback(
        Output("rule-message-out", "children"),
        Output("alerts-version", "data"),
        Input("rule-save", "n_clicks"),
        Input({"type": "rule-delete", "rule": ALL}, "n_clicks"),
        State("rule-id", "value"),
        *(State(f"rule-{name}", "value") for name in
          ("metric", "op", "threshold", "pair", "cooldown", "hysteresis", "message")),
        State("alerts-version", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    @live_callback
    async def change(
        _save: int | None, _deletes: list[int | None], rule_id: str | None, *values_and_version: Any
    ) -> tuple[Any, ...]:
        *values, version = values_and_version
        client = ctx.client()
        trigger = dash_ctx.triggered_id
        if isinstance(trigger, dict):  # a delete button
            if not dash_ctx.triggered[0]["value"]:
                raise PreventUpdate  # the table was redrawn, nobody clicked
            await alert_routes.delete_alert_rule(trigger["rule"], client)
            return dbc.Alert(f"Deleted rule {trigger['rule']}.", color="secondary",
                             className="py-1"), version + 1  # fmt: skip
        rule = {k: v for k, v in zip(RULE_FIELDS, values, strict=True) if v not in (None, "")}
        try:
            saved = await alert_routes.put_alert_rule((rule_id or "").strip(), client, rule)
        except HTTPException as exc:
            return dbc.Alert(f"Not saved: {exc.detail}", color="danger", className="py-1",
                             id="rule-error"), no_update  # fmt: skip
        return dbc.Alert(f"Saved rule {saved.id}: the engine applies it now.", color="success",
                         className="py-1", id="rule-saved"), version + 1  # fmt: skip

    @app.callback(
        Output("rule-id", "value"),
        *(Output(f"rule-{name}", "value") for name in
          ("metric", "op", "threshold", "pair", "cooldown", "hysteresis", "message")),
        Input({"type": "rule-edit", "rule": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )  # fmt: skip
    @live_callback
    async def edit(_clicks: list[int | None]) -> tuple[Any, ...]:
        trigger = dash_ctx.triggered_id
        if not isinstance(trigger, dict) or not dash_ctx.triggered[0]["value"]:
            raise PreventUpdate
        answer = await alert_routes.rules(ctx.client())
        rule = next((r for r in answer.rules if r.id == trigger["rule"]), None)
        if rule is None:
            raise PreventUpdate
        return (rule.id, rule.metric, rule.op, rule.threshold, rule.pair, rule.cooldown_s,
                rule.hysteresis, rule.message)  # fmt: skip


PAGE = Page("/alerts", "Alerts", layout, register)
