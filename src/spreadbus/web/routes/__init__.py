"""The API's routers, one noun each; :data:`ROUTERS` is what ``create_app`` mounts under
``/api``."""

from __future__ import annotations

from fastapi import APIRouter

from spreadbus.web.routes import (
    alerts,
    analytics,
    archive,
    backtest,
    datasets,
    downloads,
    health,
    pairs,
    screener,
    symbols,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    pairs.router,
    analytics.router,
    symbols.router,
    alerts.router,
    archive.router,
    datasets.router,
    backtest.router,
    screener.router,
    downloads.router,
)
