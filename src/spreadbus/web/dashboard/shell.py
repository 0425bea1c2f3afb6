"""The frame around every page: navigation, the data-source banner, the service strip, the
stale-data and Redis warnings, alert toasts, and the router that picks the page.

One callback a second refreshes the frame. It answers ``no_update`` for each part that has
not changed (a signature of the last rendered state lives in ``shell-state``), so an idle
frame costs a few bytes a second.
"""

from __future__ import annotations

import time
import zlib
from typing import Any, Final, cast

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update

from spreadbus.bus.codec import Alert
from spreadbus.web import read
from spreadbus.web.dashboard import fmt
from spreadbus.web.dashboard.context import Context, live_callback
from spreadbus.web.dashboard.pages import pages
from spreadbus.web.errors import REDIS_DOWN
from spreadbus.web.routes.health import Health, ServiceHealth, health

STALE_AFTER_S: Final = 5.0  # newest tick older than this: the page says the data is stale
TOASTS_KEPT: Final = 4
TOAST_MS: Final = 10_000


def layout() -> Any:
    links = [
        dbc.NavItem(dbc.NavLink(page.label, href=page.path if page.path != "/pair/" else "/pair/",
                                active="partial" if page.path != "/" else "exact"))
        for page in pages() if page.in_nav
    ]  # fmt: skip
    navbar = dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand("spreadbus", href="/", className="fw-bold me-3"),
                dbc.Nav(
                    [*links, dbc.NavItem(dbc.NavLink("API", href="/api/docs", external_link=True))],
                    navbar=True, className="me-auto",
                ),
                html.Span(id="source-banner", className="badge rounded-pill text-bg-secondary"),
            ],
            fluid=True,
        ),
        color="dark", dark=True, className="py-1 border-bottom border-secondary",
    )  # fmt: skip
    return html.Div(
        [
            dcc.Location(id="url", refresh="callback-nav"),
            dcc.Interval(id="shell-tick", interval=1000),
            dcc.Store(id="shell-state", data={}),
            navbar,
            html.Div(id="shell-services", className="service-strip px-3 py-1"),
            html.Div(id="shell-warnings", className="px-3"),
            html.Div(id="page"),
            html.Div(id="shell-toasts", className="toast-stack"),
        ]
    )


def _banner(source: str | None) -> tuple[str, str]:
    """(text, badge classes) for where the data comes from."""
    if not source:
        return "NO FEED: the gateway is not running", "badge rounded-pill text-bg-secondary"
    if source.startswith("sim"):
        why = " (fallback: Binance unreachable)" if "fallback" in source else ""
        return f"SIMULATED market data{why}", "badge rounded-pill text-bg-warning"
    if source.startswith("replay"):
        name = source.partition(":")[2].rsplit("/", 1)[-1] or "file"
        return f"REPLAY of {name}", "badge rounded-pill text-bg-info"
    return "LIVE Binance USDT-M", "badge rounded-pill text-bg-success"


def service_state(service: ServiceHealth) -> str:
    """healthy, degraded or down, as the strip shows a service."""
    if service.status == "down":
        return "down"
    state = getattr(service, "state", None)
    if service.status != "healthy" or state in ("degraded", "failing"):
        return "degraded" if state != "failing" else "down"
    return "healthy"


_STATE_COLOR: Final = {"healthy": "success", "degraded": "warning", "down": "danger"}


def _strip(report: Health, feeds: dict[str, dict[str, Any]]) -> list[Any]:
    items: list[Any] = []
    for name, service in report.services.items():
        state = service_state(service)
        reason = getattr(service, "reason", None) or ""
        items.append(
            html.Span(
                [html.Span(className=f"dot bg-{_STATE_COLOR[state]}"), f"{name} {state}"],
                className="me-3", title=reason or f"{name}: {state}",
                **cast(dict[str, Any], {"data-service": name, "data-state": state}),
            )
        )  # fmt: skip
    rate = sum(fmt.number(f.get("tick_rate")) or 0.0 for f in feeds.values())
    p99s = [fmt.number(f.get("latency_ingest_p99_ms")) for f in feeds.values()]
    worst = max((p for p in p99s if p is not None), default=None)
    items.append(html.Span(f"ticks {rate:,.0f}/s", className="me-3 text-muted"))
    if worst is not None:
        items.append(html.Span(f"ingest p99 {worst:.1f} ms", className="me-3 text-muted"))
    return items


def newest_tick_age_s(feeds: dict[str, dict[str, Any]], now_s: float) -> float | None:
    stamps = [fmt.number(f.get("last_trade_ms")) for f in feeds.values()]
    newest = max((s for s in stamps if s is not None), default=None)
    return None if newest is None else max(now_s - newest / 1000, 0.0)


def _toast(alert: Alert) -> Any:
    when = time.strftime("%H:%M:%S", time.gmtime(alert.time_ms / 1000))
    body = alert.message or f"{alert.metric} {alert.op} {alert.threshold:g}"
    return dbc.Toast(
        [
            html.Div(body, **cast(dict[str, Any], {"data-alert": alert.rule_id})),
            html.Small(f"{alert.metric} = {alert.value:.4g} · {when} UTC"),
        ],
        header=f"Alert {alert.pair}", icon="danger", duration=TOAST_MS, dismissable=True,
        className="alert-toast",
    )  # fmt: skip


def _alert_key(alert: Alert) -> str:
    return f"{alert.time_ms}:{alert.rule_id}:{alert.pair}"


def register(app: Dash, ctx: Context) -> None:
    all_pages = pages()

    @app.callback(Output("page", "children"), Input("url", "pathname"))
    async def route(pathname: str | None) -> Any:
        path = pathname or "/"
        for page in all_pages:
            if page.matches(path):
                return page.layout(path)
        return dbc.Container(
            [html.H4("No such page"), dcc.Link("Back to the overview", href="/")],
            className="pt-4",
        )

    @app.callback(
        Output("source-banner", "children"),
        Output("source-banner", "className"),
        Output("shell-services", "children"),
        Output("shell-warnings", "children"),
        Output("shell-toasts", "children"),
        Output("shell-state", "data"),
        Input("shell-tick", "n_intervals"),
        State("shell-state", "data"),
    )
    @live_callback
    async def refresh(_n: int | None, state: dict[str, Any] | None) -> tuple[Any, ...]:
        before = dict(state or {})
        state = dict(before)
        try:
            client = ctx.client()
            report = await health(client)
            pairs, _ = await read.configured_pairs(client, ctx.settings.pairs)
            symbols = sorted({s for pair in pairs for s in pair.split("/")})
            feeds = await read.feeds(client, symbols)
            alerts = await read.recent_alerts(client, TOASTS_KEPT)
        except REDIS_DOWN as exc:
            warning = dbc.Alert(
                f"Redis is unavailable ({type(exc).__name__}): showing the last data; "
                "the page recovers by itself when Redis is back.",
                color="danger", className="my-2 py-2", id="redis-warning",
            )  # fmt: skip
            if state.get("warn") == "redis":
                return (no_update,) * 6
            state["warn"] = "redis"
            return no_update, no_update, no_update, warning, no_update, state

        banner, banner_class = _banner(report.source)
        strip = _strip(report, feeds)
        age = newest_tick_age_s(feeds, time.time())
        warn = "stale" if age is not None and age > STALE_AFTER_S else ""
        warnings: Any = (
            dbc.Alert(
                f"Stale data: the newest tick is {fmt.age(age)} old.",
                color="warning", className="my-2 py-2", id="stale-warning",
            ) if warn else []
        )  # fmt: skip

        out: list[Any] = [no_update] * 6
        if state.get("banner") != banner:
            out[0], out[1] = banner, banner_class
            state["banner"] = banner
        signature = zlib.crc32(
            repr([(getattr(c, "title", None), c.children) for c in strip]).encode()
        )
        if state.get("strip") != signature:
            out[2] = strip
            state["strip"] = signature
        if state.get("warn") != warn or warn:  # a stale warning's age moves each second
            out[3] = warnings
            state["warn"] = warn
        seen = state.get("alert")
        if alerts and seen is None:
            state["alert"] = _alert_key(alerts[0])  # on load: no toast for old alerts
        elif alerts and _alert_key(alerts[0]) != seen:
            keys = [_alert_key(a) for a in alerts]
            fresh = alerts[: keys.index(seen)] if seen in keys else alerts
            out[4] = [_toast(a) for a in fresh[:TOASTS_KEPT]]
            state["alert"] = keys[0]
        elif not alerts:
            state["alert"] = ""
        out[5] = state if state != before else no_update
        return tuple(out)
