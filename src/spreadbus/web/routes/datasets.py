"""``/api/datasets``: upload a file of trades or candles, list and delete datasets, and analyse
a pair of a dataset offline.

An upload streams to ``<data-dir>/datasets/.upload-<random>/`` (never into memory), is checked
and stored by :func:`spreadbus.research.datasets.ingest`, and its upload folder is removed
whatever happens. Problems answer ``{"detail", "line", "column"}``: 413 past the size limit
(``upload_max_bytes``), 422 for a file that is not a dataset (the first problem named).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from spreadbus.analytics import AnalyticsInputError
from spreadbus.research import datasets
from spreadbus.research.analysis import pair_analytics
from spreadbus.research.datasets import DatasetError, DatasetInfo, DatasetNotFoundError
from spreadbus.web.deps import AppSettings
from spreadbus.web.names import symbol_from_path
from spreadbus.web.upload import receive_file

router = APIRouter(tags=["datasets"])


class Dataset(BaseModel):
    id: str
    name: str
    kind: str
    symbols: list[str]
    rows: int
    start_ms: int
    end_ms: int
    created_ms: int


class DatasetList(BaseModel):
    datasets: list[Dataset]


class Problem(BaseModel):
    detail: str
    line: int | None = None
    column: str | int | None = None


class DatasetAnalytics(BaseModel):
    dataset: str
    pair: str
    bar: str
    hedge: str
    fields: dict[str, float | int | None]
    johansen: dict[str, list[float] | list[list[float]]] | None
    series: dict[str, list[float | int | None]]


def problem(
    status: int, detail: str, line: int | None = None, column: object = None
) -> JSONResponse:
    return JSONResponse({"detail": detail, "line": line, "column": column}, status_code=status)


def not_found(dataset_id: str) -> HTTPException:
    return HTTPException(404, detail=f"no dataset {dataset_id!r}")


def _model(info: DatasetInfo) -> Dataset:
    return Dataset(**info.to_json())


@router.post(
    "/datasets",
    status_code=201,
    response_model=Dataset,
    responses={
        413: {"model": Problem, "description": "The file is larger than the upload limit"},
        422: {
            "model": Problem,
            "description": "The file is not a dataset: the first problem, by line and column",
        },
    },
    openapi_extra={  # the handler streams the upload itself: the form it expects, documented
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                        "required": ["file"],
                    }
                }
            },
        }
    },
)
async def upload_dataset(request: Request, settings: AppSettings) -> Dataset | JSONResponse:
    """Upload one file as multipart field ``file``: data-vision trades/aggTrades or 1m klines
    CSV (header or not, zipped or not), or ``timestamp,symbol,price[,qty]``."""
    root = datasets.datasets_root(settings.data_dir)
    folder = root / f".upload-{secrets.token_hex(8)}"
    await asyncio.to_thread(folder.mkdir, parents=True)
    try:
        received = await receive_file(request, folder, "file", settings.upload_max_bytes)
        info = await asyncio.to_thread(datasets.ingest, received.path, received.filename, root)
    except HTTPException as exc:
        return problem(exc.status_code, str(exc.detail))
    except DatasetError as exc:
        return problem(422, str(exc), exc.line, exc.column)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)
    return _model(info)


@router.get("/datasets", response_model=DatasetList)
async def list_datasets(settings: AppSettings) -> DatasetList:
    """Every dataset, newest first."""
    root = datasets.datasets_root(settings.data_dir)
    found = await asyncio.to_thread(datasets.list_datasets, root)
    return DatasetList(datasets=[_model(info) for info in found])


@router.get("/datasets/{dataset_id}", response_model=Dataset)
async def get_dataset(dataset_id: str, settings: AppSettings) -> Dataset:
    root = datasets.datasets_root(settings.data_dir)
    try:
        return _model(await asyncio.to_thread(datasets.get, root, dataset_id))
    except DatasetNotFoundError:
        raise not_found(dataset_id) from None


@router.delete("/datasets/{dataset_id}", status_code=204, response_class=Response)
async def delete_dataset(dataset_id: str, settings: AppSettings) -> Response:
    root = datasets.datasets_root(settings.data_dir)
    try:
        await asyncio.to_thread(datasets.delete, root, dataset_id)
    except DatasetNotFoundError:
        raise not_found(dataset_id) from None
    return Response(status_code=204)


@router.get(
    "/datasets/{dataset_id}/analytics",
    response_model=DatasetAnalytics,
    responses={
        404: {"model": Problem},
        422: {
            "model": Problem,
            "description": "Validation Error, or y and x are the same symbol, or the dataset's "
            "closes of y and x cannot be analysed (too few, not overlapping)",
        },
    },
)
async def dataset_analytics(
    dataset_id: str,
    settings: AppSettings,
    y: Annotated[str, Query(description="Y leg, e.g. ETHUSDT")],
    x: Annotated[str, Query(description="X leg, e.g. BTCUSDT")],
    bar: Literal["1s", "1m", "5m", "1h"] = "1m",
    hedge: Literal["ols", "kalman", "huber", "theil_sen"] = "ols",
) -> DatasetAnalytics:
    """The pair's snapshot fields (the names of ``state:analytics:{PAIR}``) over the whole
    dataset, a Johansen panel and chart series."""
    y_sym, x_sym = symbol_from_path(y), symbol_from_path(x)
    if y_sym == x_sym:
        raise HTTPException(422, detail="y and x must be different symbols")
    root = datasets.datasets_root(settings.data_dir)

    def compute() -> dict[str, object]:
        closes = datasets.bar_closes(root, dataset_id, [y_sym, x_sym], bar)
        ts = closes.index.to_numpy()
        return pair_analytics(ts, closes[y_sym].to_numpy(), closes[x_sym].to_numpy(), bar, hedge)

    try:
        out = await asyncio.to_thread(compute)
    except DatasetNotFoundError:
        raise not_found(dataset_id) from None
    except (DatasetError, AnalyticsInputError) as exc:
        raise HTTPException(422, detail=str(exc)) from None
    return DatasetAnalytics(
        dataset=dataset_id,
        pair=f"{y_sym}/{x_sym}",
        bar=bar,
        hedge=hedge,
        **out,
    )
