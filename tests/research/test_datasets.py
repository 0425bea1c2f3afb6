"""Datasets: every upload format stored row for row, by the fast path (Arrow) exactly as by the
exact parser; every bad file refused with its own message naming line and column, leaving
nothing behind."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spreadbus.research import columnar, datasets
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
    path = _upload(tmp_path, upload_name, payload)
    info = datasets.ingest(path, upload_name, root)
    assert info.kind == kind
    # the fast path took it, and stored what the exact parser stores, bit for bit
    assert info.parser == "arrow"
    exact = datasets.ingest(path, upload_name, tmp_path / "exact", fast=False)
    assert exact.to_json() | {"id": 0, "created_ms": 0, "parser": 0} == info.to_json() | {
        "id": 0, "created_ms": 0, "parser": 0
    }  # fmt: skip
    _same_table(
        pq.read_table(root / info.id / datasets.DATA_FILE),
        pq.read_table(tmp_path / "exact" / exact.id / datasets.DATA_FILE),
    )
    assert info.rows == len(rows)
    assert info.symbols == sorted({r[1] for r in rows})
    assert (info.start_ms, info.end_ms) == (min(r[0] for r in rows), max(r[0] for r in rows))
    _same_rows(_stored(root, info.id), rows)
    assert datasets.get(root, info.id) == info
    assert [d.id for d in datasets.list_datasets(root)] == [info.id]


@pytest.mark.parametrize("fast", [False, True])
def test_chunks_cover_every_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fast: bool
) -> None:
    """A file several chunks long is stored whole, in order: chunks shrunk to 64 rows for the
    exact parser, Arrow blocks shrunk to 2 kB (about 30 rows) for the fast path."""
    monkeypatch.setattr(datasets, "CHUNK_ROWS", 64)
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 2048)
    data, rows = datafiles.agg_trades("BTCUSDT", 1000)
    root = tmp_path / "datasets"
    info = datasets.ingest(
        _upload(tmp_path, "BTCUSDT-aggTrades-x.csv", data), "B.csv", root, fast=fast
    )
    assert info.parser == ("arrow" if fast else "exact")
    groups = pq.ParquetFile(root / info.id / datasets.DATA_FILE).num_row_groups
    assert groups == 16 if not fast else groups > 8
    _same_rows(_stored(root, info.id), rows)


def _ingest_both(tmp_path: Path, name: str, payload: bytes) -> tuple[pa.Table, pa.Table]:
    """The stored table by the fast path (which must have taken it) and by the exact parser."""
    path = _upload(tmp_path, name, payload)
    fast = datasets.ingest(path, name, tmp_path / "fast")
    exact = datasets.ingest(path, name, tmp_path / "exact", fast=False)
    assert (fast.parser, exact.parser) == ("arrow", "exact")
    assert fast.to_json() | {"id": 0, "created_ms": 0, "parser": 0} == exact.to_json() | {
        "id": 0, "created_ms": 0, "parser": 0
    }  # fmt: skip
    read = [pq.read_table(tmp_path / d / i.id / datasets.DATA_FILE) for d, i in
            (("fast", fast), ("exact", exact))]  # fmt: skip
    return read[0], read[1]


def _same_table(fast: pa.Table, exact: pa.Table) -> None:
    """Row for row, bit for bit (NaN quantities compare equal as bits)."""
    assert fast.schema == exact.schema
    assert fast.num_rows == exact.num_rows > 0
    for name in ("ts_ms", "price", "qty"):
        got, want = fast.column(name).to_numpy(), exact.column(name).to_numpy()
        assert got.dtype == want.dtype
        assert got.tobytes() == want.tobytes(), name
    assert fast.column("symbol").to_pylist() == exact.column("symbol").to_pylist()


def _random_decimal(rng: np.random.Generator, *, plain: bool) -> str:
    """Decimal text of up to 17 significant digits; ``plain`` never starts with a zero
    unless it is ``0.x`` (the trades rule), otherwise leading zeros are allowed."""
    whole = str(int(rng.integers(1, 10 ** int(rng.integers(1, 12)))))
    if not plain and rng.random() < 0.2:
        whole = "00" + whole
    digits = int(rng.integers(0, 10))
    fraction = "".join(str(d) for d in rng.integers(0, 10, digits))
    return whole + ("." + fraction if fraction else "")


def test_fast_path_doubles_equal_pythons_on_random_decimals(tmp_path: Path) -> None:
    """Many random decimal texts, in all three layouts: Arrow's double is Python's ``float``,
    and µs and ns trade times become the same milliseconds."""
    rng = np.random.default_rng(11)
    n = 3000
    agg = [f"{i},{_random_decimal(rng, plain=True)},{_random_decimal(rng, plain=True)},"
           f"{i},{i},{datafiles.T0_MS * 1000 ** int(rng.integers(0, 3)) + i},true"
           for i in range(n)]  # fmt: skip
    generic = [f"{datafiles.T0_MS + i},X{i % 7}USDT,{_random_decimal(rng, plain=False)},"
               f"{_random_decimal(rng, plain=False)}" for i in range(n)]  # fmt: skip
    stamps = ["Z", "+05:30", "-08:00", ".5Z", ".123456+01:00", ".000999Z", ".1-00:30"]
    iso = [f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}{stamps[i % 7]},"
           f"ab{i % 3}usdt,{_random_decimal(rng, plain=False)}" for i in range(n)]  # fmt: skip
    cases = [("BTCUSDT-aggTrades-x.csv", agg), ("g.csv", generic), ("iso.csv", iso)]
    for name, lines in cases:
        folder = tmp_path / name
        folder.mkdir()
        _same_table(*_ingest_both(folder, name, ("\r\n".join(lines) + "\n").encode()))


def _ingest_fast_or_exact(tmp_path: Path, name: str, payload: bytes) -> datasets.DatasetInfo:
    return datasets.ingest(_upload(tmp_path, name, payload), name, tmp_path / "d")


@pytest.mark.parametrize(
    ("payload", "qty"),
    [
        (b"\xef\xbb\xbftimestamp,symbol,price\n1795000000000,BTCUSDT,1.5\n", None),  # BOM
        (b"1795000000000,BTCUSDT, 1.5\n", None),  # a space in a cell
        (b'1795000000000,btcusdt,1.5e2,2\n1795000000001,BTCUSDT,"3",1\n', None),
        (b"1795000000000,BTCUSDT,1.5\n   \n1795000000001,BTCUSDT,1_5\n", None),
    ],
)
def test_what_the_fast_path_cannot_vouch_for_goes_to_the_exact_parser(
    tmp_path: Path, payload: bytes, qty: object
) -> None:
    """Odd but valid to the exact parser (BOM, spaces, exponent) or refused by it (quotes,
    1_5): either way the answer is the exact parser's, by the exact parser."""
    exact_error: str | None = None
    try:
        exact = datasets.ingest(_upload(tmp_path, "g.csv", payload), "g.csv", tmp_path / "e",
                                fast=False)  # fmt: skip
    except DatasetError as exc:
        exact_error = str(exc)
    if exact_error is None:
        info = _ingest_fast_or_exact(tmp_path, "g.csv", payload)
        assert info.parser == "exact"
        _same_table(
            pq.read_table(tmp_path / "d" / info.id / datasets.DATA_FILE),
            pq.read_table(tmp_path / "e" / exact.id / datasets.DATA_FILE),
        )
    else:
        with pytest.raises(DatasetError) as caught:
            _ingest_fast_or_exact(tmp_path, "g.csv", payload)
        assert str(caught.value) == exact_error
        assert [p.name for p in (tmp_path / "d").iterdir()] == []


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


def test_bad_row_after_many_good_blocks_is_named_and_nothing_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path has written dozens of blocks when it meets the bad rows; the exact parser
    then names the first by line and column, counts the others, and no file is left."""
    monkeypatch.setattr(columnar, "BLOCK_BYTES", 2048)
    data, _ = datafiles.agg_trades("BTCUSDT", 1000)
    root = tmp_path / "datasets"
    with pytest.raises(DatasetError) as caught:
        datasets.ingest(_upload(tmp_path, AGG_NAME, _bad_price(data, (900, 950))), AGG_NAME, root)
    assert (caught.value.line, caught.value.column, caught.value.others) == (900, "price", 1)
    assert list(root.iterdir()) == []
