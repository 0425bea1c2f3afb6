"""Dataset uploads: memory stays flat whatever the file's size, and rows per second.

Each size is ingested (:func:`spreadbus.research.datasets.ingest`, the code behind
``POST /api/datasets``) in a fresh Python process that reports its peak resident memory; the
reference is the same process importing the same modules and ingesting a file of a few rows
(its baseline). ``value`` is the peak above that baseline: it must not grow with the file.
A data-vision aggTrades CSV, zipped as data-vision ships it; the rows are written here.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

SIZES_MB = (20, 100)
NAME = "BTCUSDT-aggTrades-2026-11-18.csv"

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from spreadbus.research import datasets
    path, root = Path(sys.argv[1]), Path(sys.argv[2])
    started = time.perf_counter()
    info = datasets.ingest(path, path.name, root)
    elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": info.rows, "seconds": elapsed, "peak_mb": peak_kb / 1024}))
    """
)


def _write(path: Path, megabytes: float) -> None:
    """An aggTrades CSV of about ``megabytes`` (zipped: the CSV inside is that large)."""
    target = int(megabytes * 1024 * 1024)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open(NAME, "w", force_zip64=True) as out,
    ):
        out.write(b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,"
                  b"is_buyer_maker\n")  # fmt: skip
        written, i = 0, 0
        block: list[bytes] = []
        while written < target:
            maker = "true" if i % 3 else "false"
            line = (f"{i},{98000 + i % 997}.{i % 10},0.{i % 9 + 1}00,{2 * i},{2 * i + 1},"
                    f"{1795000000000 + i * 7},{maker}\n").encode()  # fmt: skip
            block.append(line)
            written += len(line)
            i += 1
            if len(block) == 10_000:
                out.write(b"".join(block))
                block.clear()
        out.write(b"".join(block))


def _ingest(path: Path, root: Path) -> dict[str, float]:
    import json

    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(root)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tiny = folder / ("tiny-" + NAME + ".zip")
        _write(tiny, 0.001)
        baseline = _ingest(tiny, folder / "d0")["peak_mb"]
        for size in SIZES_MB:
            path = folder / f"{size}-{NAME}.zip"
            _write(path, size)
            measured = _ingest(path, folder / f"d{size}")
            rows.append({
                "case": f"aggTrades CSV of {size} MB ({measured['rows']:,.0f} rows)",
                "metric": "peak RSS above baseline",
                "value": measured["peak_mb"] - baseline,
                "unit": "MB",
                "reference": baseline,
            })  # fmt: skip
            rows.append({
                "case": f"aggTrades CSV of {size} MB",
                "metric": "ingest rate",
                "value": measured["rows"] / measured["seconds"],
                "unit": "rows/s",
            })  # fmt: skip
            path.unlink()
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
