"""``/system``: every service's health and counters, per-symbol feed latency and tick rate,
Redis memory and keys, the archive's size and last write, and recent warnings and errors."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, dcc, html

from spreadbus.web import read
from spreadbus.web.dashboard import fmt
from spreadbus.web.dashboard.context import Context, live_callback
from spreadbus.web.dashboard.pages import Page
from spreadbus.web.dashboard.shell import service_state
from spreadbus.web.routes.health import ShareGroupHealth, health

REFRESH_MS: Final = 2000
LOG_EVENTS: Final = 30


def layout(_path: str) -> Any:
    return dbc.Container(
        [
            dbc.Row([
                dbc.Col([html.H5("Services", className="mt-2"), html.Div(id="sys-services")], lg=7),
                dbc.Col([html.H5("Redis and archive", className="mt-2"),
                         html.Div(id="sys-storage")], lg=5),
            ]),
            html.H5("Feeds", className="mt-3"),
            html.Div(id="sys-feeds"),
            html.H5("Recent warnings and errors", className="mt-3"),
            html.Div(id="sys-logs"),
            dcc.Interval(id="sys-tick", interval=REFRESH_MS),
        ],
        fluid=True,
    )  # fmt: skip


def _table(head: list[str], rows: list[list[Any]]) -> Any:
    return dbc.Table(
        [html.Thead(html.Tr([html.Th(h) for h in head])),
         html.Tbody([html.Tr([html.Td(c) for c in row]) for row in rows])],
        size="sm", hover=True, className="mb-0",
    )  # fmt: skip


def _counters(counters: dict[str, Any], fields: dict[str, Any]) -> str:
    shown = {**{k: v for k, v in fields.items() if isinstance(v, int | float)}, **counters}
    return ", ".join(f"{k} {v}" for k, v in sorted(shown.items())
                     if not isinstance(v, dict))[:400]  # fmt: skip


def _shares(name: str, held: list[int] | None, groups: dict[str, ShareGroupHealth]) -> str:
    """``0, 1 of 2`` for a process of a share group (``engine-2``: the engine group)."""
    group = groups.get(name.split("-", maxsplit=1)[0])
    if held is None or group is None:
        return "—"
    return f"{', '.join(map(str, held)) or 'none'} of {group.shares}"


def register(app: Dash, ctx: Context) -> None:
    @app.callback(
        Output("sys-services", "children"),
        Output("sys-storage", "children"),
        Output("sys-feeds", "children"),
        Output("sys-logs", "children"),
        Input("sys-tick", "n_intervals"),
    )
    @live_callback
    async def refresh(_n: int | None) -> tuple[Any, ...]:
        client = ctx.client()
        pairs, _ = await read.configured_pairs(client, ctx.settings.pairs)
        symbols = sorted({s for pair in pairs for s in pair.split("/")})
        report, feeds, memory, archive, events = await asyncio.gather(
            health(client), read.feeds(client, symbols), read.memory_and_keys(client),
            asyncio.to_thread(read.archive_summary, ctx.settings.data_dir),
            asyncio.to_thread(read.recent_log_events, ctx.settings.data_dir, LOG_EVENTS),
        )  # fmt: skip
        services = _table(
            ["Service", "State", "Reason", "Shares", "PID", "Beat age", "Counters"],
            [[name, service_state(s), getattr(s, "reason", None) or "",
              _shares(name, s.shares, report.groups), s.pid or "—", fmt.age(s.age_s),
              _counters(s.counters, s.fields)]
             for name, s in report.services.items()],
        )  # fmt: skip
        last_write = archive["last_write_ms"]
        storage = _table(
            ["What", "Value"],
            [["Redis memory", memory["used_memory_human"]], ["Redis keys", memory["keys"]],
             ["Archive files", archive["files"]],
             ["Archive size", f"{int(archive['bytes']) / 1e6:.1f} MB"],
             ["Archive last write", "—" if not last_write else
              f"{fmt.age(time.time() - int(last_write) / 1000)} ago"]],
        )  # fmt: skip
        feed_rows = [
            [s, fmt.text("last_price", f.get("last_price")),
             fmt.text("tick_rate", f.get("tick_rate")),
             fmt.text("latency_ingest_p50_ms", f.get("latency_ingest_p50_ms")),
             fmt.text("latency_ingest_p99_ms", f.get("latency_ingest_p99_ms")),
             fmt.text("ghost_basis_bps", f.get("ghost_basis_bps"))]
            for s, f in feeds.items()
        ]  # fmt: skip
        feeds_table = _table(["Symbol", "Price", "Ticks/s", "Ingest p50 ms", "Ingest p99 ms",
                              "Ghost basis bps"], feed_rows)  # fmt: skip
        logs = (
            _table(["Time", "Level", "Service", "Event"],
                   [[e.get("time", ""), e.get("level", ""), e.get("service", ""),
                     e.get("event", e.get("message", ""))] for e in events])
            if events else html.P("No warnings or errors in the log.", className="text-muted")
        )  # fmt: skip
        return services, storage, feeds_table, logs


PAGE = Page("/system", "System", layout, register)
