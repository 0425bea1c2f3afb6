"""``/api/backtest``: backtest a pair (live history or a dataset), download its trades and
equity as CSV, and sweep entry z x window in the background.

A result is kept in memory (the latest :data:`KEEP_RESULTS`) under the ``id`` it answers with,
for ``GET /api/backtest/{id}/trades.csv`` and ``/equity.csv``. A sweep answers 202 with its
id at once; ``GET /api/backtest/sweeps/{id}`` follows it, ``DELETE`` cancels it.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections import OrderedDict
from dataclasses import fields
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from spreadbus.analytics import AnalyticsInputError
from spreadbus.config import parse_pair
from spreadbus.research.backtest import BacktestParams, run_backtest
from spreadbus.research.datasets import DatasetError, DatasetNotFoundError
from spreadbus.research.history import HistoryError
from spreadbus.research.sources import pair_closes
from spreadbus.research.sweep import BOOK, MAX_CELLS, Sweep
from spreadbus.web.deps import AppSettings, Client
from spreadbus.web.export import csv_response, iso_ms
from spreadbus.web.names import SYMBOL_PATTERN
from spreadbus.web.routes.numbers import Integer, Number
from spreadbus.web.routes.responses import unprocessable

KEEP_RESULTS: Final = 20
TRADE_COLUMNS: Final = (
    "entry_ms", "exit_ms", "side", "qty_y", "qty_x", "entry_y", "entry_x", "exit_y", "exit_x",
    "beta", "fees", "pnl", "reason", "bars",
)  # fmt: skip

# rules between fields that the schema cannot state: the legs differ, the series fit the rule
SAME_LEGS: Final = "y and x are the same symbol, or the closes cannot carry the strategy"

router = APIRouter(tags=["research"])


class Source(BaseModel):
    """A live pair ``{"pair": "Y/X"}`` (its last ``hours``), or ``{"dataset", "y", "x"}``."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is named, not ignored

    pair: str | None = Field(None, examples=["ETHUSDT/BTCUSDT"])
    dataset: str | None = None
    y: str | None = Field(None, pattern=SYMBOL_PATTERN)  # checked even beside a pair
    x: str | None = Field(None, pattern=SYMBOL_PATTERN)
    hours: Number = Field(24.0, gt=0, le=24 * 366)
    bar: Literal["1s", "1m", "5m", "1h"] = "1m"

    @model_validator(mode="after")
    def _one_source(self) -> Source:
        if (self.pair is None) == (self.dataset is None):
            raise ValueError('give either "pair" or "dataset" (with "y" and "x")')
        if self.pair is not None:
            self.y, self.x = parse_pair(self.pair)
        elif self.y is None or self.x is None:
            raise ValueError('a dataset backtest needs "y" and "x"')
        else:
            self.y, self.x = parse_pair(f"{self.y}/{self.x}")
        return self

    @property
    def legs(self) -> tuple[str, str]:
        assert self.y is not None and self.x is not None
        return self.y, self.x


class Strategy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hedge: Literal["ols", "kalman"] = "ols"
    window: Integer = Field(60, ge=3, le=1_000_000)
    entry_z: Number = Field(2.0, gt=0)
    exit_z: Number = 0.5
    stop_z: Number | None = None
    max_hold_bars: Integer | None = Field(None, ge=1)
    fee_bps: Number = Field(1.0, ge=0)
    slippage_bps: Number = Field(0.0, ge=0, lt=10_000)
    capital: Number = Field(10_000.0, gt=0)


class BacktestRequest(Source, Strategy):
    pass


class SweepRequest(Source, Strategy):
    entry_zs: Annotated[list[Number], Field(min_length=1)] = [1.0, 1.5, 2.0, 2.5, 3.0]
    windows: Annotated[list[Annotated[Integer, Field(ge=3)]], Field(min_length=1)] = [30, 60, 120]


class _Results:
    """The latest backtest results, by id."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, result: dict[str, Any]) -> str:
        result_id = secrets.token_hex(8)
        with self._lock:
            self._items[result_id] = result
            while len(self._items) > KEEP_RESULTS:
                self._items.popitem(last=False)
        return result_id

    def get(self, result_id: str) -> dict[str, Any]:
        with self._lock:
            found = self._items.get(result_id)
        if found is None:
            raise HTTPException(404, detail=f"no backtest result {result_id!r} (kept: the latest)")
        return found


RESULTS: Final = _Results()


def params_of(body: Strategy, bar: str) -> BacktestParams:
    """The request's strategy fields (named as :class:`BacktestParams`'s) at ``bar``."""
    chosen = {f.name: getattr(body, f.name) for f in fields(BacktestParams) if f.name != "bar"}
    return BacktestParams(bar=bar, **chosen)  # type: ignore[arg-type]


async def closes_of(client: Any, settings: Any, source: Source) -> tuple[Any, Any, Any]:
    """The source's aligned closes; 404/422 with the reason when there are none."""
    y, x = source.legs
    try:
        return await pair_closes(
            client, settings.data_dir, y, x, source.bar, dataset=source.dataset, hours=source.hours
        )
    except DatasetNotFoundError:
        raise HTTPException(404, detail=f"no dataset {source.dataset!r}") from None
    except HistoryError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except DatasetError as exc:
        raise HTTPException(422, detail=str(exc)) from None


@router.post("/backtest", responses=unprocessable(SAME_LEGS))
async def backtest(body: BacktestRequest, client: Client, settings: AppSettings) -> dict[str, Any]:
    """Backtest the z-score rule on the pair: ``{"id", "pair", "stats", "trades", "equity",
    "drawdown", "zscore", "positions"}``; series are ``[[ms, value], ...]``."""
    ts, y, x = await closes_of(client, settings, body)
    try:
        out = await asyncio.to_thread(run_backtest, ts, y, x, params_of(body, body.bar))
    except AnalyticsInputError as exc:
        raise HTTPException(422, detail=str(exc)) from None
    out["pair"] = "/".join(body.legs)
    out["id"] = RESULTS.add(out)
    return out


@router.get("/backtest/{result_id}/trades.csv", response_class=Response)
async def trades_csv(result_id: str) -> Response:
    result = RESULTS.get(result_id)
    rows = [[t[c] for c in TRADE_COLUMNS] for t in result["trades"]]
    return csv_response(TRADE_COLUMNS, rows, f"backtest_{result_id}_trades.csv")


@router.get("/backtest/{result_id}/equity.csv", response_class=Response)
async def equity_csv(result_id: str) -> Response:
    result = RESULTS.get(result_id)
    drawdown = dict(result["drawdown"])
    rows = [[ts, iso_ms(ts), value, drawdown[ts]] for ts, value in result["equity"]]
    return csv_response(
        ("ts_ms", "time", "equity", "drawdown"), rows, f"backtest_{result_id}_equity.csv"
    )


@router.post(
    "/backtest/sweeps",
    status_code=202,
    responses=unprocessable(f"{SAME_LEGS}, or the grid has more than {MAX_CELLS} cells"),
)
async def start_sweep(body: SweepRequest, client: Client, settings: AppSettings) -> dict[str, Any]:
    """Start a sweep of entry z x window (Sharpe per cell) in the background."""
    if len(body.entry_zs) * len(body.windows) > MAX_CELLS:
        raise HTTPException(422, detail=f"a sweep has at most {MAX_CELLS} cells")
    ts, y, x = await closes_of(client, settings, body)
    del ts
    sweep = BOOK.start(y, x, params_of(body, body.bar), body.entry_zs, body.windows)
    return sweep.snapshot()


def _snapshot(sweep: Sweep | None, sweep_id: str) -> dict[str, Any]:
    """The sweep's snapshot; 404 when the book has no sweep by that id."""
    if sweep is None:
        raise HTTPException(404, detail=f"no sweep {sweep_id!r}")
    return sweep.snapshot()


@router.get("/backtest/sweeps/{sweep_id}")
async def sweep_status(sweep_id: str) -> dict[str, Any]:
    """Progress and the grid so far (``sharpe[window][entry_z]``, None where undefined)."""
    return _snapshot(BOOK.get(sweep_id), sweep_id)


@router.delete("/backtest/sweeps/{sweep_id}")
async def cancel_sweep(sweep_id: str) -> dict[str, Any]:
    """Cancel a running sweep (it stops before its next cell)."""
    return _snapshot(BOOK.cancel(sweep_id), sweep_id)
