"""Dataset uploads through the real HTTP API: the web process's memory stays flat whatever the
file's size, and rows per second.

One ``spreadbus web`` process (:mod:`bench.webserver`) takes ``POST /api/datasets`` uploads of
data-vision aggTrades CSVs, plain (the uploaded bytes are the CSV's), of each size in
``BENCH_UPLOAD_MB`` (megabytes, comma separated; default ``20,200``; ``20,1024`` for the 1 GB
check). Before each upload the kernel's peak-RSS counter of the web process is reset; ``value``
is the peak during the upload above the RSS just before it, and ``ratio`` is that against the
first (smallest) size's in the same run: about 1 means flat. The rate counts the whole request
(streaming to disk, then ingest). Reference for speed, same run: the exact parser
(``ingest(..., fast=False)``) on the smallest file in this process.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import httpx

from bench.webserver import Web, running_web
from spreadbus.research import datasets

NAME = "BTCUSDT-aggTrades-2026-11-18.csv"
HEADER = b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"


def sizes_mb() -> list[float]:
    return [float(s) for s in os.environ.get("BENCH_UPLOAD_MB", "20,200").split(",") if s]


def write_csv(path: Path, megabytes: float) -> None:
    """An aggTrades CSV of about ``megabytes``, with varied prices, quantities and sides."""
    target = int(megabytes * 1024 * 1024)
    with path.open("wb") as out:
        out.write(HEADER)
        written, i = len(HEADER), 0
        while written < target:
            block = "".join(
                f"{k},{98000 + k % 997}.{k % 10},0.{k % 9 + 1}00,{2 * k},{2 * k + 1},"
                f"{1795000000000 + k * 7},{'true' if k % 3 else 'false'}\n"
                for k in range(i, i + 20_000)
            ).encode()
            out.write(block)
            written += len(block)
            i += 20_000


def _upload(web: Web, path: Path) -> dict[str, float]:
    web.reset_peak()
    before = web.rss_mb()
    started = time.perf_counter()
    with path.open("rb") as handle:
        answer = httpx.post(
            f"{web.url}/api/datasets", files={"file": (NAME, handle, "text/csv")}, timeout=None
        )
    elapsed = time.perf_counter() - started
    answer.raise_for_status()
    body = answer.json()
    httpx.delete(f"{web.url}/api/datasets/{body['id']}", timeout=60).raise_for_status()
    return {"rows": body["rows"], "seconds": elapsed, "above_mb": web.peak_mb() - before}


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    sizes = sizes_mb()
    limit = int(max(sizes) * 1024 * 1024 * 1.1)
    with tempfile.TemporaryDirectory(prefix="spreadbus-bench-upload-") as tmp:
        folder = Path(tmp)
        with running_web({"SPREADBUS_UPLOAD_MAX_BYTES": str(limit)}) as web:
            warm = folder / "warm.csv"
            write_csv(warm, 0.01)
            _upload(web, warm)  # imports pyarrow & co in the web process: not the upload's
            first: dict[str, float] | None = None
            for size in sizes:
                path = folder / f"{size:g}" / NAME  # the replay parser reads the symbol here
                path.parent.mkdir()
                write_csv(path, size)
                measured = _upload(web, path)
                first = first or measured
                rate = measured["rows"] / measured["seconds"]
                rows.append({
                    "case": f"upload of a {size:g} MB aggTrades CSV ({measured['rows']:,.0f} rows)",
                    "metric": "web peak RSS above before",
                    "value": measured["above_mb"],
                    "unit": "MB",
                    "reference": first["above_mb"],
                    "ratio": measured["above_mb"] / first["above_mb"],
                })  # fmt: skip
                rows.append({
                    "case": f"upload of a {size:g} MB aggTrades CSV",
                    "metric": "rows/s (upload + ingest)",
                    "value": rate,
                    "unit": "rows/s",
                    "reference": first["rows"] / first["seconds"],
                    "ratio": rate / (first["rows"] / first["seconds"]),
                })  # fmt: skip
                if size == sizes[0]:
                    started = time.perf_counter()
                    exact = datasets.ingest(path, NAME, folder / "exact", fast=False)
                    exact_rate = exact.rows / (time.perf_counter() - started)
                    rows.append({
                        "case": f"{size:g} MB: fast path against the exact parser",
                        "metric": "ingest rows/s, exact parser in-process",
                        "value": exact_rate,
                        "unit": "rows/s",
                        "reference": rate,
                        "ratio": rate / exact_rate,
                    })  # fmt: skip
                path.unlink()
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
