"""Run every benchmark module, print one table, write JSON to bench/results/.

A benchmark module ``bench/bench_<name>.py`` exposes ``run() -> list[dict[str, object]]``: one
row per measurement, each with at least ``benchmark``, ``metric``, ``value`` and ``unit``, and
where it applies ``reference`` (a figure measured in the same run, e.g. redis-benchmark) and
``ratio``. Machines are shared and noisy: ratios against a same-run reference are what count.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results"


def discover() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_")
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.startswith("bench_")
    )


def main(names: Sequence[str] = ()) -> int:
    selected = list(names) or discover()
    console = Console(width=None if sys.stdout.isatty() else 160)
    rows: list[dict[str, object]] = []
    for name in selected:
        console.print(f"[bold]bench {name}[/] ...")
        started = time.perf_counter()
        module = importlib.import_module(f"bench.bench_{name}")
        for row in module.run():
            rows.append({"benchmark": name, **row})
        console.print(f"  done in {time.perf_counter() - started:.1f} s")
    table = Table(title="spreadbus benchmarks")
    for column in ("benchmark", "case", "metric", "value", "unit", "reference", "ratio"):
        table.add_column(column, justify="right" if column in ("value", "ratio") else "left")
    for row in rows:
        table.add_row(
            *(
                _fmt(row.get(c))
                for c in ("benchmark", "case", "metric", "value", "unit", "reference", "ratio")
            )
        )
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(rows, indent=2, default=str))
    console.print(f"results: {out}")
    return 0


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
