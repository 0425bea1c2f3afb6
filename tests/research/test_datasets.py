"""Datasets: every upload format stored row for row; every bad file refused with its own
message naming line and column, leaving nothing behind."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from spreadbus.research import datasets
from spreadbus.research.datasets import DatasetError
from spreadbus.testing import datafiles

Rows = datafiles.Rows


def _upload(tmp_path: Path, name: str, data: bytes) -> Path:
    folder = tmp_path / "upload"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def _stored(root: Path, dataset_id: str) -> Rows:
    table = pq.read_table(root / dataset_id / datasets.DATA_FILE).to_pylist()
    return [(r["ts_ms"], r["symbol"], r["price"], r["qty"]) for r in table]


def _same_rows(stored: Rows, expected: Rows) -> None:
    """Exact: times, symbols, prices (2-decimal text parsed to the same double), quantities
    (NaN when the file has none)."""
    assert len(stored) == len(expected)
    for got, want in zip(stored, expected, strict=True):
        assert got[:3] == want[:3]
        assert (math.isnan(got[3]) and math.isnan(want[3])) or got[3] == want[3]


GOOD = [
    ("BTCUSDT-aggTrades-2026-11-18.csv", lambda: datafiles.agg_trades("BTCUSDT", 500), "aggTrades"),
    (
        "BTCUSDT-aggTrades-2026-11-18.csv",
        lambda: datafiles.agg_trades("BTCUSDT", 300, header=False),
        "aggTrades",
    ),
    ("ETHUSDT-trades-2026-11-18.csv", lambda: datafiles.trades("ETHUSDT", 400), "trades"),
    (
        "ETHUSDT-trades-2026-11-18.csv",
        lambda: datafiles.trades("ETHUSDT", 400, header=False),
        "trades",
    ),
    ("SOLUSDT-1m-2026-11-18.csv", lambda: datafiles.klines_1m("SOLUSDT", 240), "klines_1m"),
    (
        "SOLUSDT-1m-2026-11-18.csv",
        lambda: datafiles.klines_1m("SOLUSDT", 240, header=False),
        "klines_1m",
    ),
    ("mine.csv", lambda: datafiles.generic(("AAAUSDT", "BBBUSDT"), 200), "generic"),
    (
        "mine.csv",
        lambda: datafiles.generic(("AAAUSDT", "BBBUSDT"), 200, iso=True, qty=False),
        "generic",
    ),
]


@pytest.mark.parametrize(("name", "build", "kind"), GOOD)
@pytest.mark.parametrize("zip_it", [False, True])
def test_good_file_is_stored_row_for_row(
    tmp_path: Path, name: str, build: object, kind: str, zip_it: bool
) -> None:
    data, rows = build()  # type: ignore[operator]
    upload_name = name + ".zip" if zip_it else name
    payload = datafiles.zipped(name, data) if zip_it else data
    root = tmp_path / "datasets"
    info = datasets.ingest(_upload(tmp_path, upload_name, payload), upload_name, root)
    assert info.kind == kind
    assert info.rows == len(rows)
    assert info.symbols == sorted({r[1] for r in rows})
    assert (info.start_ms, info.end_ms) == (min(r[0] for r in rows), max(r[0] for r in rows))
    _same_rows(_stored(root, info.id), rows)
    assert datasets.get(root, info.id) == info
    assert [d.id for d in datasets.list_datasets(root)] == [info.id]


def test_chunks_cover_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file several chunks long (chunk shrunk to 64 rows) is stored whole, in order."""
    monkeypatch.setattr(datasets, "CHUNK_ROWS", 64)
    data, rows = datafiles.agg_trades("BTCUSDT", 1000)
    root = tmp_path / "datasets"
    info = datasets.ingest(_upload(tmp_path, "BTCUSDT-aggTrades-x.csv", data), "B.csv", root)
    assert pq.ParquetFile(root / info.id / datasets.DATA_FILE).num_row_groups == 16
    _same_rows(_stored(root, info.id), rows)


def _bad_price(data: bytes, lines: tuple[int, ...]) -> bytes:
    text = data.decode().splitlines()
    for line in lines:
        cells = text[line - 1].split(",")
        cells[1] = "abc"
        text[line - 1] = ",".join(cells)
    return ("\n".join(text) + "\n").encode()


AGG, _ = datafiles.agg_trades("BTCUSDT", 50)
AGG_NAME = "BTCUSDT-aggTrades-2026-11-18.csv"
BAD = [
    # (name, payload, message, line, column)
    ("truncated zip", AGG_NAME + ".zip", datafiles.zipped(AGG_NAME, AGG)[:200],
     "truncated or damaged zip archive", None, None),
    ("truncated csv", AGG_NAME, AGG[: AGG.rindex(b"\n", 0, -1) + 12],
     "3 columns, expected 7", 51, 4),
    ("wrong columns", "x.csv", b"when,what,how much\n1,2,3\n",
     "unrecognised columns", 1, None),
    ("non-numeric price", AGG_NAME, _bad_price(AGG, (4, 9, 20)),
     "(and 2 more bad rows)", 4, "price"),
    ("timestamp without time zone", "g.csv",
     b"timestamp,symbol,price\n2026-11-18T10:00:00Z,BTCUSDT,1.5\n2026-11-18T10:00:01,BTCUSDT,1.6\n",
     "has no time zone", 3, "timestamp"),
    ("zip of something else", "data.zip", datafiles.zipped("readme.txt", b"hello\n"),
     "holds 'readme.txt', not a CSV file", None, None),
    ("empty file", "empty.csv", b"", "is empty", None, None),
    ("header only", AGG_NAME, AGG.split(b"\n")[0] + b"\n", "no data rows", None, None),
    ("no symbol in the name", "trades.csv", AGG, "cannot tell the symbol", 1, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "payload", "message", "line", "column"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_file_is_refused_with_its_message_and_leaves_nothing(
    tmp_path: Path, name: str, payload: bytes, message: str, line: int | None, column: object
) -> None:
    root = tmp_path / "datasets"
    with pytest.raises(DatasetError) as caught:
        datasets.ingest(_upload(tmp_path, name, payload), name, root)
    assert message in str(caught.value)
    assert caught.value.line == line
    assert caught.value.column == column
    assert list(root.iterdir()) == []  # no dataset, no incoming folder
    assert datasets.list_datasets(root) == []


def test_messages_differ_between_bad_files(tmp_path: Path) -> None:
    """Each bad file gets its own message, not one generic refusal."""
    texts = set()
    for _, name, payload, *_ in BAD:
        with pytest.raises(DatasetError) as caught:
            datasets.ingest(_upload(tmp_path, name, payload), name, tmp_path / "d")
        texts.add(str(caught.value))
    assert len(texts) == len(BAD)


def test_delete_and_unknown_ids(tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    data, _ = datafiles.klines_1m("SOLUSDT", 30)
    info = datasets.ingest(_upload(tmp_path, "SOLUSDT-1m-x.csv", data), "SOLUSDT-1m-x.csv", root)
    datasets.delete(root, info.id)
    assert datasets.list_datasets(root) == []
    assert list(root.iterdir()) == []
    for bad in (info.id, "../../etc", "0123456789abcdef"):
        with pytest.raises(datasets.DatasetNotFoundError):
            datasets.get(root, bad)


def test_bar_closes_align_two_symbols(tmp_path: Path) -> None:
    """Per-bar last price of each symbol, against a pandas groupby of the raw rows."""
    data, rows = datafiles.generic(("AAAUSDT", "BBBUSDT"), 300)
    root = tmp_path / "datasets"
    info = datasets.ingest(_upload(tmp_path, "g.csv", data), "g.csv", root)
    closes = datasets.bar_closes(root, info.id, ["BBBUSDT", "AAAUSDT"], "1m")
    assert list(closes.columns) == ["BBBUSDT", "AAAUSDT"]
    for symbol in ("AAAUSDT", "BBBUSDT"):
        last: dict[int, float] = {}
        for ts, s, price, _ in rows:
            if s == symbol:
                last[ts // 60_000 * 60_000] = price
        assert closes[symbol].to_dict() == last
    with pytest.raises(DatasetError, match="has no ZZZUSDT"):
        datasets.bar_closes(root, info.id, ["ZZZUSDT", "AAAUSDT"], "1m")
