"""Where a pair's bars come from: an uploaded dataset, or the live history (Redis candles
joined with the archive). Both give aligned closes ``(ts_ms, y, x)``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from spreadbus.analytics.resample import Rule
from spreadbus.archivist.layout import archive_root
from spreadbus.research import datasets, history


async def pair_closes(
    client: Any,
    data_dir: Path,
    y: str,
    x: str,
    bar: Rule,
    *,
    dataset: str | None = None,
    hours: float = 24.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ts_ms, y closes, x closes)``. Raises :class:`datasets.DatasetNotFoundError`,
    :class:`datasets.DatasetError` or :class:`history.HistoryError` with a message."""
    if dataset is not None:
        root = datasets.datasets_root(data_dir)
        closes = await asyncio.to_thread(datasets.bar_closes, root, dataset, [y, x], bar)
    else:
        archive = archive_root(data_dir)
        closes = await history.live_closes(client, archive, [y, x], hours, bar)
    return (
        closes.index.to_numpy(dtype=np.int64),
        closes[y].to_numpy(dtype=np.float64),
        closes[x].to_numpy(dtype=np.float64),
    )
