"""``/screener``: placeholder until the research workbench fills it."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, html

from spreadbus.web.dashboard.context import Context
from spreadbus.web.dashboard.pages import Page


def layout(_path: str) -> Any:
    return dbc.Container(
        [html.H4("Screener"), html.P("This part of the research workbench is being built.")],
        fluid=True, className="pt-3",
    )  # fmt: skip


def register(_app: Dash, _ctx: Context) -> None:
    return None


PAGE = Page("/screener", "Screener", layout, register)
