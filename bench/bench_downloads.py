"""Downloads through the real HTTP API: the web process's memory stays flat whatever the range.

``spreadbus web`` (:mod:`bench.webserver`) serves a symbol whose ticks are split
between the Parquet archive (one day, ``BENCH_DOWNLOAD_ARCHIVE`` ticks, default 2,000,000)
and the live stream (``BENCH_DOWNLOAD_STREAM``, default 500,000; the first 10,000 of them are
also archived, so the seam is crossed as in production). Each download (ticks as CSV and as
Parquet, 1-second bars as CSV) is made over three ranges across the seam: small (20,000
ticks, for scale), medium (a quarter of the ticks) and large (all: millions), each by a fresh
web process (so memory one case
freed and the allocator kept does not hide the next one's) after a warm-up download of a few
ticks. ``value`` is the peak during the download above the RSS just before it; ``ratio`` is
large against medium in the same run: about 1 (for four times the rows) means flat. The row
count of each answer is checked against what was written (each tick once).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis

from bench.webserver import Web, running_redis, web_process
from spreadbus.archivist.convert import SCHEMAS
from spreadbus.archivist.layout import archive_root, date_of_ms, part_name, partition_dir
from spreadbus.archivist.writer import write_part_file
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import to_fields

SYMBOL = "BTCUSDT"
T0_MS = 1_795_000_000_000 // 86_400_000 * 86_400_000 + 60_000  # just after midnight
STEP_MS = 20  # 50 trades a second: 2.5 M trades in about 14 hours, one archive day
OVERLAP = 10_000


def _counts() -> tuple[int, int]:
    archive = int(os.environ.get("BENCH_DOWNLOAD_ARCHIVE", "2000000"))
    stream = int(os.environ.get("BENCH_DOWNLOAD_STREAM", "500000"))
    return archive, stream


def _price(i: np.ndarray) -> np.ndarray:
    return 98000 + (i * 37) % 1001 / 10


def _seed_archive(data_dir: Path, n: int) -> None:
    i = np.arange(n, dtype=np.int64)
    ts = T0_MS + i * STEP_MS
    price_text = pa.array([f"{p:.1f}" for p in _price(i)])
    table = pa.table(
        {
            "ts": pa.array(ts).cast(pa.timestamp("ms", "UTC")), "venue": ["binance"] * n,
            "trade_id": i + 1, "price": _price(i), "qty": np.full(n, 0.5),
            "side": ["buy"] * n, "event_ts": pa.array(ts + 1).cast(pa.timestamp("ms", "UTC")),
            "recv_ts": pa.array((ts + 2) * 1000).cast(pa.timestamp("us", "UTC")),
            "price_text": price_text, "qty_text": ["0.5"] * n,
            "stream_id": pa.array([f"{t}-{k + 1}" for t, k in zip(ts.tolist(), i.tolist(),
                                                                   strict=True)]),
        }
    )  # fmt: skip
    table = table.cast(SCHEMAS["ticks"])
    date = date_of_ms(T0_MS)
    path = partition_dir(archive_root(data_dir), "ticks", SYMBOL, date) / part_name(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_part_file(path, "ticks", SYMBOL, date, table)


def _seed_stream(redis_url: str, first: int, n: int) -> None:
    client = redis.Redis.from_url(redis_url)
    key = keys.tick_stream(SYMBOL)
    for offset in range(first, first + n, 5000):
        with client.pipeline(transaction=False) as pipe:
            for k in range(offset, min(offset + 5000, first + n)):
                t = T0_MS + k * STEP_MS
                tick = Tick(SYMBOL, k + 1, f"{98000 + (k * 37) % 1001 / 10:.1f}", "0.5", "buy",
                            t, t + 1, float(t + 2), "binance")  # fmt: skip
                pipe.xadd(key, to_fields(tick), id=f"{t}-{k + 1}")  # type: ignore[arg-type]
            pipe.execute()
    client.close()


def _download(web: Web, path: str, params: dict[str, Any]) -> tuple[float, int, float]:
    """(peak RSS above before in MB, rows in the answer, seconds)."""
    warm = {"symbol": SYMBOL, "start_ms": T0_MS, "end_ms": T0_MS + 100 * STEP_MS}
    with httpx.stream("GET", f"{web.url}{path}", params=params | warm, timeout=None) as answer:
        answer.read()
    web.reset_peak()
    before = web.rss_mb()
    started = time.perf_counter()
    body = io.BytesIO()
    with httpx.stream("GET", f"{web.url}{path}", params=params, timeout=None) as answer:
        answer.raise_for_status()
        for piece in answer.iter_bytes():
            body.write(piece)
    elapsed = time.perf_counter() - started
    above = web.peak_mb() - before
    if params.get("format") == "parquet":
        rows = pq.ParquetFile(io.BytesIO(body.getvalue())).metadata.num_rows
    else:
        rows = body.getvalue().count(b"\n") - 1
    return above, rows, elapsed


def run() -> list[dict[str, object]]:
    archived, streamed = _counts()
    total = archived + streamed - OVERLAP
    rows: list[dict[str, object]] = []
    with running_redis("spreadbus-bench-dl-") as (redis_url, data_dir):
        _seed_archive(data_dir, archived)
        _seed_stream(redis_url, archived - OVERLAP, streamed)
        seam = archived * STEP_MS + T0_MS
        ranges = {  # name -> (start_ms, end_ms), every one across the seam
            "small": (seam - 10_000 * STEP_MS, seam + 10_000 * STEP_MS),
            "medium": (seam - (total // 4 - 10_000) * STEP_MS, seam + 10_000 * STEP_MS),
            "large": (T0_MS, T0_MS + total * STEP_MS),
        }
        cases = [
            ("ticks CSV", "/api/downloads/ticks", {}, 1),
            ("ticks Parquet", "/api/downloads/ticks", {"format": "parquet"}, 1),
            ("1s bars CSV", "/api/downloads/bars", {"bar": "1s"}, 1000 // STEP_MS),
        ]
        for name, path, extra, per_row in cases:
            peak: dict[str, float] = {}
            count: dict[str, int] = {}
            for size, (lo, hi) in ranges.items():
                params = {"symbol": SYMBOL, "start_ms": lo, "end_ms": hi} | extra
                with web_process(redis_url, data_dir) as web:
                    peak[size], count[size], seconds = _download(web, path, params)
                expected = (hi - lo) // STEP_MS // per_row
                if count[size] != expected:
                    raise AssertionError(f"{name} {size}: {count[size]} rows, not {expected}")
            rows.append({
                "case": f"{name}: {count['large']:,} rows against {count['medium']:,}",
                "metric": "web peak RSS above before",
                "value": peak["large"],
                "unit": "MB",
                "reference": peak["medium"],
                "ratio": peak["large"] / max(peak["medium"], 1.0),
            })  # fmt: skip
            rows.append({
                "case": f"{name}: {count['small']:,} rows (for scale)",
                "metric": "web peak RSS above before",
                "value": peak["small"],
                "unit": "MB",
            })  # fmt: skip
            rows.append({
                "case": f"{name}: {count['large']:,} rows",
                "metric": "rows/s",
                "value": count["large"] / seconds,
                "unit": "rows/s",
            })  # fmt: skip
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
