"""The dashboard's pages, in navigation order.

A page is a module with a :class:`Page`: the path it answers (a prefix ending in ``/`` for
pages that take a parameter, as ``/pair/ETHUSDT-BTCUSDT``), its label in the navigation bar,
``layout(path)`` building its components for the requested path, and ``register(app, ctx)``
adding its callbacks to the Dash app once. Ids are prefixed with the page's name, so pages
never collide; each live page owns its ``dcc.Interval``, which goes away with the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dash import Dash

from spreadbus.web.dashboard.context import Context


@dataclass(frozen=True)
class Page:
    path: str
    label: str
    layout: Callable[[str], Any]
    register: Callable[[Dash, Context], None]
    in_nav: bool = True

    def matches(self, path: str) -> bool:
        if self.path.endswith("/") and self.path != "/":
            return path.startswith(self.path)
        return path.rstrip("/") == self.path.rstrip("/") or (self.path == "/" and path == "")


def pages() -> tuple[Page, ...]:
    """Every page, imported on first use (pages import plotly and the analytics)."""
    from spreadbus.web.dashboard.pages import (  # noqa: PLC0415
        alerts,
        backtest,
        data,
        overview,
        pair,
        screener,
        system,
    )  # fmt: skip

    return (
        overview.PAGE, pair.PAGE, alerts.PAGE, system.PAGE,
        data.PAGE, backtest.PAGE, screener.PAGE,
    )  # fmt: skip
