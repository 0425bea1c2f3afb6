"""``/api/analytics/{pair}``: a pair's latest snapshot, its chart history, and CSV export.

``{pair}`` is ``ETHUSDT-BTCUSDT`` or ``ETHUSDT/BTCUSDT`` (the slash URL-encoded or not).
"""

from __future__ import annotations

import asyncio
import functools
import re
from typing import Annotated, Final, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from spreadbus.web import read
from spreadbus.web.deps import Client
from spreadbus.web.export import csv_response, iso_ms
from spreadbus.web.fields import Scalar, number
from spreadbus.web.names import PairName
from spreadbus.web.series import align

METRIC_PATTERN: Final = r"^[a-z][a-z0-9_]{0,39}$"
MAX_METRICS: Final = 50

router = APIRouter(tags=["analytics"])

Minutes = Annotated[int, Query(ge=1, le=1440, description="window length, up to the newest sample")]
Resolution = Literal["auto", "1s", "1m"]
Step = read.Step


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
    return read.step_for(minutes) if resolution == "auto" else resolution


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
    window = await read.history(client, name, wanted, minutes, used)
    if all(v is None for v in window.values()):
        raise HTTPException(404, detail=f"no analytics history for {name}")
    rows = align(window)
    filename = f"analytics_{name.replace('/', '-')}_{used}.csv"
    return csv_response(
        ["ts_ms", "time", *window],
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
    samples = (await read.history(client, name, [metric], minutes, used))[metric]
    if samples is None:
        raise HTTPException(404, detail=f"no {metric} history for {name}")
    points = [(ts, number(value)) for ts, value in samples]
    return History(pair=name, metric=metric, resolution=used, points=points)


@router.get("/analytics/{pair:path}", response_model=PairSnapshot)
async def analytics_snapshot(name: PairName, client: Client) -> PairSnapshot:
    """The pair's latest snapshot (``state:analytics:{PAIR}``): beta, alpha, spread, z-score,
    ADF, correlation, ... with numbers as numbers and NaN as null."""
    fields = (await read.snapshots(client, [name]))[name]
    if not fields:
        raise HTTPException(404, detail=f"no analytics for pair {name}")
    return PairSnapshot(pair=name, fields=fields)
