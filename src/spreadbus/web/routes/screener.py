"""``/api/screener``: rank every pair of a universe by Engle-Granger p-value.

Universe: ``{"symbols": [...]}``, or ``{"symbols": null}`` for every symbol with 1-minute
candles in Redis (the last ``hours``, the archive beyond Redis's 24 h), or
``{"dataset": id}`` for every symbol of a dataset.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, Literal

import numpy as np
from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from spreadbus.analytics import AnalyticsInputError
from spreadbus.archivist.layout import archive_root
from spreadbus.config import SYMBOL_RE
from spreadbus.research import datasets, history
from spreadbus.web.deps import AppSettings, Client
from spreadbus.web.errors import NOT_FOUND
from spreadbus.web.routes.numbers import Integer, Number
from spreadbus.web.routes.responses import unprocessable

MAX_SYMBOLS: Final = 200

router = APIRouter(tags=["research"])


class ScreenerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is named, not ignored

    symbols: list[str] | None = Field(None, min_length=2, max_length=MAX_SYMBOLS)
    dataset: str | None = None
    hours: Number = Field(24.0, gt=0, le=24 * 366)
    bar: Literal["1s", "1m", "5m", "1h"] = "1m"
    limit: Integer | None = Field(None, ge=1)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = list(dict.fromkeys(s.strip().upper() for s in value))
        bad = [s for s in cleaned if not SYMBOL_RE.match(s)]
        if bad:
            raise ValueError(f"malformed symbols {bad}, expected e.g. BTCUSDT")
        return cleaned


class ScreenerRow(BaseModel):
    pair: str
    eg_pvalue: float
    eg_pvalue_reverse: float
    eg_stat: float | None
    half_life: float | None
    corr: float | None
    beta: float
    n: int


class ScreenerResult(BaseModel):
    symbols: list[str]
    bars: int
    start_ms: int
    end_ms: int
    rows: list[ScreenerRow]


async def _live_symbols(client: Client) -> list[str]:
    """Every symbol with 1-minute candles in Redis; 404 when fewer than two have any (nothing
    to pair yet: a stack that has not run, or a fresh Redis)."""
    found = await history.candle_symbols(client)
    if len(found) < 2:
        have = f"only {found[0]}" if found else "none"
        raise HTTPException(
            404,
            detail=f"no live symbols to screen: 2 needed with 1-minute candles, {have}; "
            "run the stack with a source, or screen an uploaded dataset",
        )
    return found


@router.post(
    "/screener",
    response_model=ScreenerResult,
    responses={
        **unprocessable(
            "the symbols name one symbol twice in two spellings, or a dataset's closes "
            f"cannot be screened, or more than {MAX_SYMBOLS} live symbols"
        ),
        404: {
            **NOT_FOUND,
            "description": "No such dataset, no live candles for a symbol, or fewer than 2 "
            "live symbols (symbols: null)",
        },
    },
)
async def run_screener(
    body: ScreenerRequest, client: Client, settings: AppSettings
) -> ScreenerResult:
    """Every pair of the universe, best (lowest Engle-Granger p-value) first."""
    # imported here: statsmodels costs a second of the web's start (and of its restart)
    from spreadbus.research.screener import screen  # noqa: PLC0415

    try:
        if body.dataset is not None:
            root = datasets.datasets_root(settings.data_dir)
            info = await asyncio.to_thread(datasets.get, root, body.dataset)
            symbols = body.symbols or info.symbols
            closes = await asyncio.to_thread(
                datasets.bar_closes, root, body.dataset, symbols, body.bar
            )
        else:
            symbols = body.symbols or await _live_symbols(client)
            if len(symbols) < 2:  # given in two spellings, e.g. btcusdt and BTCUSDT
                raise HTTPException(422, detail=f"the screener needs 2 symbols, got {symbols}")
            if len(symbols) > MAX_SYMBOLS:
                raise HTTPException(422, detail=f"{len(symbols)} symbols, at most {MAX_SYMBOLS}")
            closes = await history.live_closes(
                client, archive_root(settings.data_dir), symbols, body.hours, body.bar
            )
        names = list(closes.columns)
        rows = await asyncio.to_thread(screen, closes.to_numpy(dtype=np.float64), names)
    except datasets.DatasetNotFoundError:
        raise HTTPException(404, detail=f"no dataset {body.dataset!r}") from None
    except history.HistoryError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except (datasets.DatasetError, AnalyticsInputError) as exc:
        raise HTTPException(422, detail=str(exc)) from None
    picked: list[Any] = rows[: body.limit] if body.limit else rows
    return ScreenerResult(
        symbols=names,
        bars=len(closes),
        start_ms=int(closes.index[0]),
        end_ms=int(closes.index[-1]),
        rows=[ScreenerRow(**r.to_json()) for r in picked],
    )
