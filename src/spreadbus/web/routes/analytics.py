"""``/api/analytics/{pair}``: a pair's latest snapshot, its chart history, and CSV export.

``{pair}`` is ``ETHUSDT-BTCUSDT`` or ``ETHUSDT/BTCUSDT`` (the slash URL-encoded or not).
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from spreadbus.bus import keys
from spreadbus.web.deps import Client
from spreadbus.web.export import csv_response, iso_ms
from spreadbus.web.fields import Scalar, number, typed_fields
from spreadbus.web.names import PairName
from spreadbus.web.series import align, read_window

METRIC_PATTERN: Final = r"^[a-z][a-z0-9_]{0,39}$"
MAX_METRICS: Final = 50
RAW_WINDOW_MINUTES: Final = 60  # the 1 s series keep an hour; longer windows use the 1 m ones

router = APIRouter(tags=["analytics"])

Minutes = Annotated[int, Query(ge=1, le=1440, description="window length, up to the newest sample")]
Resolution = Literal["auto", "1s", "1m"]
Step = Literal["1s", "1m"]


class PairSnapshot(BaseModel):
    pair: str
    fields: dict[str, Scalar]


class History(BaseModel):
    pair: str
    metric: str
    resolution: Step
    points: list[tuple[int, float | None]]  # (epoch ms, value)


@functools.cache
def chart_metrics() -> tuple[str, ...]:
    """The metrics the engine records as series. Imported on first use: the engine's module
    pulls in numpy/scipy/statsmodels (~3 s), which the API needs for nothing else."""
    from spreadbus.engine.pairstate import SERIES_FIELDS  # noqa: PLC0415

    return tuple(SERIES_FIELDS)


def _step(resolution: Resolution, minutes: int) -> Step:
    if resolution != "auto":
        return resolution
    return "1s" if minutes <= RAW_WINDOW_MINUTES else "1m"


def _series_key(pair: str, metric: str, step: Step) -> str:
    if step == "1s":
        return keys.analytics_series(pair, metric)
    return keys.analytics_series_1m(pair, metric)


@router.get("/analytics/{pair:path}.csv", response_class=Response)
async def analytics_csv(
    name: PairName,
    client: Client,
    minutes: Minutes = 60,
    metrics: Annotated[
        str | None, Query(description="comma-separated metrics (default: every chart metric)")
    ] = None,
    resolution: Resolution = "auto",
) -> Response:
    """The pair's chart series over the window as CSV, one row per time, one column each."""
    wanted = (
        [m.strip() for m in metrics.split(",") if m.strip()]
        if metrics
        else list(await asyncio.to_thread(chart_metrics))
    )
    if not wanted or len(wanted) > MAX_METRICS:
        raise HTTPException(422, detail=f"give between 1 and {MAX_METRICS} metrics")
    bad = [m for m in wanted if not re.match(METRIC_PATTERN, m)]
    if bad:
        raise HTTPException(422, detail=f"malformed metric names: {', '.join(bad)}")
    used = _step(resolution, minutes)
    series = {metric: _series_key(name, metric, used) for metric in wanted}
    window = await read_window(client, list(series.values()), minutes, latest=used == "1m")
    if all(v is None for v in window.values()):
        raise HTTPException(404, detail=f"no analytics history for {name}")
    rows = align({m: window[k] for m, k in series.items()})
    filename = f"analytics_{name.replace('/', '-')}_{used}.csv"
    return csv_response(
        ["ts_ms", "time", *series],
        ([ts, iso_ms(ts), *values] for ts, values in rows),
        filename,
    )


@router.get("/analytics/{pair:path}/history", response_model=History)
async def analytics_history(
    name: PairName,
    client: Client,
    metric: Annotated[str, Query(pattern=METRIC_PATTERN)] = "zscore",
    minutes: Minutes = 60,
    resolution: Resolution = "auto",
) -> History:
    """One chart series (``ts:analytics:{PAIR}:{metric}``) over the last ``minutes`` before
    its newest sample: 1 s samples, or 1 m averages for windows over an hour (the current
    minute's average so far included)."""
    used = _step(resolution, minutes)
    key = _series_key(name, metric, used)
    samples = (await read_window(client, [key], minutes, latest=used == "1m"))[key]
    if samples is None:
        raise HTTPException(404, detail=f"no {metric} history for {name}")
    points = [(ts, number(value)) for ts, value in samples]
    return History(pair=name, metric=metric, resolution=used, points=points)


@router.get("/analytics/{pair:path}", response_model=PairSnapshot)
async def analytics_snapshot(name: PairName, client: Client) -> PairSnapshot:
    """The pair's latest snapshot (``state:analytics:{PAIR}``): beta, alpha, spread, z-score,
    ADF, correlation, ... with numbers as numbers and NaN as null."""
    raw: Any = await client.hgetall(keys.analytics_state(name))
    if not raw:
        raise HTTPException(404, detail=f"no analytics for pair {name}")
    return PairSnapshot(pair=name, fields=typed_fields(raw))
