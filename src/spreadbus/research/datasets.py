"""Uploaded datasets: a file of trades or candles, checked, stored as Parquet, listed, deleted.

Formats (detected from the first line of each CSV; a ``.zip`` is read member by member,
streamed, never unpacked to disk):

* Binance data-vision ``trades`` and ``aggTrades`` CSV, with or without the header line, parsed
  by the replay source's own parser (:mod:`spreadbus.gateway.replay`): the symbol comes from
  the file name, ``BTCUSDT-aggTrades-2026-11-21.csv``;
* data-vision ``1m`` klines CSV (``open_time,open,high,low,close,volume,close_time,...``, 12
  columns, header optional), named ``BTCUSDT-1m-2026-11-21.csv``: one row per minute, stored as
  a price (the close) at the minute's open time with the volume as quantity;
* a generic ``timestamp,symbol,price[,qty]`` CSV (header optional): ``timestamp`` in epoch
  milliseconds or ISO-8601 *with* a time zone (``2026-11-21T10:00:00Z``).

Two readers, one result: Arrow's streaming CSV reader (:mod:`spreadbus.research.columnar`,
about ten times faster) goes first, and whatever it cannot vouch for is read again from the
start by the exact parser (the code below, and the replay's for trades), which stores the
same rows. Validation reads the whole file: any bad row rejects the upload with
:class:`DatasetError` naming the first problem by line and column, plus how many other rows
are bad. Nothing is half-made: rows go to ``<root>/.incoming-<id>/`` in chunks of about
:data:`CHUNK_ROWS` (memory stays flat whatever the size), and only a complete, valid dataset
is renamed to ``<root>/<id>/`` (``prices.parquet`` + ``meta.json``); a failure removes the
incoming folder.

Stored rows: ``ts_ms`` (int64 epoch ms), ``symbol``, ``price`` (float64), ``qty`` (float64, NaN
when the file has none). Datasets are never written to Redis nor mixed with live data.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import secrets
import shutil
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spreadbus.analytics.resample import BAR_MILLISECONDS, Rule, resample
from spreadbus.config import SYMBOL_RE
from spreadbus.gateway import replay
from spreadbus.research import columnar
from spreadbus.research.columnar import SCHEMA, Kind

Parser = Literal["arrow", "exact"]
CHUNK_ROWS: Final = 200_000
ID_RE: Final = re.compile(r"^[0-9a-f]{16}$")
DATA_FILE: Final = "prices.parquet"
META_FILE: Final = "meta.json"
KLINE_COLUMNS: Final = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume",
    "count", "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)  # fmt: skip
GENERIC_COLUMNS: Final = ("timestamp", "symbol", "price", "qty")
_KLINE_NAME_RE: Final = re.compile(r"^([A-Za-z0-9]{2,20})-(\d+[smhdwM])-")
_ZIP_MAGIC: Final = b"PK\x03\x04"
_READ_ERRORS: Final = (OSError, EOFError, zipfile.BadZipFile, zlib.error)
EXPECTED: Final = (
    "expected Binance data-vision trades, aggTrades or 1m klines CSV, "
    "or timestamp,symbol,price[,qty]"
)


class DatasetError(ValueError):
    """The upload cannot become a dataset; ``line``/``column`` name the first problem (1-based
    line of the CSV; column by name, or by 1-based position), ``others`` the further bad rows."""

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: str | int | None = None,
        others: int = 0,
    ) -> None:
        where = ""
        if line is not None:
            where = f"line {line}" + (f", column {column}" if column is not None else "") + ": "
        more = f" (and {others} more bad row{'s' if others != 1 else ''})" if others else ""
        super().__init__(f"{where}{message}{more}")
        self.line = line
        self.column = column
        self.others = others


class DatasetNotFoundError(LookupError):
    """No dataset with that id."""


@dataclass(frozen=True, slots=True)
class DatasetInfo:
    """What ``meta.json`` holds about one dataset."""

    id: str
    name: str  # the uploaded file's name
    kind: Kind
    symbols: list[str]
    rows: int
    start_ms: int
    end_ms: int
    created_ms: int
    parser: Parser = "exact"  # which reader stored it: Arrow's (fast path) or the exact one

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def datasets_root(data_dir: Path) -> Path:
    """``<data-dir>/datasets``."""
    return Path(data_dir) / "datasets"


# ---- parsing -----------------------------------------------------------------------------------
class _Problems:
    """The first bad row and how many followed it."""

    def __init__(self) -> None:
        self.first: tuple[str, int | None, str | int | None] | None = None
        self.count = 0

    def add(self, message: str, line: int | None, column: str | int | None) -> None:
        if self.first is None:
            self.first = (message, line, column)
        self.count += 1

    def raise_if_any(self, prefix: str) -> None:
        if self.first is not None:
            message, line, column = self.first
            raise DatasetError(f"{prefix}{message}", line, column, self.count - 1)


@dataclass(frozen=True, slots=True)
class _Source:
    path: Path
    member: str | None
    display: str

    @property
    def name(self) -> str:
        return Path(self.member).name if self.member else self.path.name

    @contextlib.contextmanager
    def open(self) -> Iterator[IO[bytes]]:
        if self.member is None:
            with self.path.open("rb") as handle:
                yield handle
        else:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as handle:
                yield handle


Row = tuple[int, str, float, float]


def _lines(source: _Source) -> Iterator[tuple[int, str]]:
    """Non-blank lines, stripped, with their 1-based number."""
    with source.open() as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        for lineno, line in enumerate(text, 1):
            stripped = line.strip().removeprefix("\ufeff")
            if stripped:
                yield lineno, stripped


def _first_cells(source: _Source) -> list[str] | None:
    for _, line in _lines(source):
        return [cell.strip() for cell in line.split(",")]
    return None


def _checked(text: str, name: str, *, positive: bool) -> float:
    """``text`` as a finite number > 0 (``positive``) or >= 0; ValueError saying which."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 if positive else value >= 0) or not math.isfinite(value):
        raise ValueError(f"{name} {text!r} is not a number {'> 0' if positive else '>= 0'}")
    return value


def _timestamp_ms(text: str) -> int:
    """Epoch ms from digits, or from ISO-8601 with a time zone; ValueError says why not."""
    if text.isdigit():
        value = int(text)
        if not columnar.MIN_MS <= value <= columnar.MAX_MS:
            raise ValueError(f"{text!r} is not epoch milliseconds (2000 to 2100)")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither epoch milliseconds nor ISO-8601") from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone (add Z or +00:00)")
    return int(moment.timestamp() * 1000)


def _generic_rows(source: _Source, problems: _Problems) -> Iterator[Row]:
    header = True
    width = 0
    for lineno, line in _lines(source):
        cells = [cell.strip() for cell in line.split(",")]
        if header:
            header = False
            width = len(cells)
            if cells[0].lower() == "timestamp":
                continue
        if len(cells) != width:
            problems.add(
                f"{len(cells)} columns, expected {width}", lineno, min(len(cells), width) + 1
            )
            continue
        try:
            ts_ms = _timestamp_ms(cells[0])
        except ValueError as exc:
            problems.add(str(exc), lineno, "timestamp")
            continue
        symbol = cells[1].upper()
        if not SYMBOL_RE.match(symbol):
            problems.add(f"{cells[1]!r} is not a symbol such as BTCUSDT", lineno, "symbol")
            continue
        column = "price"
        try:
            price = _checked(cells[2], column, positive=True)
            column = "qty"
            qty = _checked(cells[3], column, positive=False) if width == 4 else math.nan
        except ValueError as exc:
            problems.add(str(exc), lineno, column)
            continue
        yield ts_ms, symbol, price, qty


def _kline_rows(source: _Source, symbol: str, problems: _Problems) -> Iterator[Row]:
    first = True
    for lineno, line in _lines(source):
        cells = [cell.strip() for cell in line.split(",")]
        if first:
            first = False
            if cells[0].lower() == "open_time":
                continue
        if len(cells) != len(KLINE_COLUMNS):
            missing = min(len(cells), len(KLINE_COLUMNS)) + 1
            problems.add(f"{len(cells)} columns, expected {len(KLINE_COLUMNS)}", lineno, missing)
            continue
        try:
            ts_ms = _timestamp_ms(cells[0])
        except ValueError as exc:
            problems.add(str(exc), lineno, "open_time")
            continue
        column = "close"
        try:
            close = _checked(cells[4], column, positive=True)
            column = "volume"
            volume = _checked(cells[5], column, positive=False)
        except ValueError as exc:
            problems.add(str(exc), lineno, column)
            continue
        yield ts_ms, symbol, close, volume


def _inspect_trades(source: _Source) -> replay.ReplayFile:
    """A data-vision trades/aggTrades CSV, recognised by the replay parser."""
    try:
        found = replay.inspect_csv(source.path, source.member, source.display)
    except replay.ReplayError as exc:
        text = str(exc)
        if "neither" in text or "unrecognised" in text:
            raise DatasetError(f"unrecognised columns in {source.display}; {EXPECTED}", 1) from None
        raise DatasetError(text, 1) from None
    if found.kind == "frames":
        raise DatasetError(f"{source.display} is a recorded frames file; {EXPECTED}", 1)
    return found


def _trade_rows(found: replay.ReplayFile, problems: _Problems) -> Iterator[Row]:
    """data-vision trades/aggTrades rows, through the replay parser."""
    for _, _, record_kind, payload in replay.csv_records(found, 0, [0]):
        if record_kind == replay.BAD:
            _, detail, lineno, column = payload
            problems.add(detail.split(": ", 1)[-1], lineno, column)
            continue
        symbol, _, price, qty, _, trade_ts = payload
        yield trade_ts, symbol, float(price), float(qty)


@dataclass(frozen=True, slots=True)
class _Format:
    """What a file holds: its layout, and for trades the replay parser's view of it."""

    layout: columnar.Layout
    trades: replay.ReplayFile | None = None


def _generic_layout(width: int, header: bool) -> columnar.Layout:
    qty = 3 if width == 4 else None
    return columnar.Layout("generic", width, header, 0, 2, qty, None, symbol_col=1)


def _detect(source: _Source) -> _Format:
    cells = _first_cells(source)
    if cells is None:
        raise DatasetError(f"{source.display} is empty: no rows")
    heads = [cell.lower() for cell in cells]
    if heads[:3] == list(GENERIC_COLUMNS[:3]) and len(heads) in (3, 4):
        if len(heads) == 4 and heads[3] not in ("qty", "quantity"):
            raise DatasetError(f"unrecognised fourth column {cells[3]!r}; {EXPECTED}", 1, 4)
        return _Format(_generic_layout(len(cells), header=True))
    headerless = cells[0][:1].isdigit()  # a timestamp, not a column name
    if len(cells) in (3, 4) and headerless and SYMBOL_RE.match(cells[1].upper()):
        return _Format(_generic_layout(len(cells), header=False))
    if len(cells) == len(KLINE_COLUMNS) and (heads[0] == "open_time" or cells[0].isdigit()):
        match = _KLINE_NAME_RE.match(source.name)
        if match is None:
            raise DatasetError(
                f"cannot tell the symbol of {source.display}: "
                "name it like BTCUSDT-1m-2026-11-21.csv"
            )
        if match.group(2) != "1m":
            raise DatasetError(
                f"{source.display} holds {match.group(2)} klines; only 1m is supported"
            )
        header = heads[0] == "open_time"
        symbol = match.group(1).upper()
        return _Format(columnar.Layout("klines_1m", len(KLINE_COLUMNS), header, 0, 4, 5, symbol))
    if len(cells) < 6:
        raise DatasetError(f"unrecognised columns {','.join(cells)[:120]!r}; {EXPECTED}", 1)
    found = _inspect_trades(source)
    kind: Kind = "aggTrades" if found.kind == "aggTrades" else "trades"
    id_col, price_col, qty_col, time_col, maker_col = found.columns
    layout = columnar.Layout(
        kind, found.width, found.header, time_col, price_col, qty_col, found.symbol,
        id=id_col, maker=maker_col,
    )  # fmt: skip
    return _Format(layout, found)


def _exact_rows(source: _Source, found: _Format, problems: _Problems) -> Iterator[Row]:
    """The rows by the exact parser, every bad one added to ``problems``."""
    if found.trades is not None:
        return _trade_rows(found.trades, problems)
    if found.layout.kind == "klines_1m":
        assert found.layout.symbol is not None
        return _kline_rows(source, found.layout.symbol, problems)
    return _generic_rows(source, problems)


def _sources(path: Path, display: str) -> list[_Source]:
    with path.open("rb") as handle:
        magic = handle.read(4)
    if not magic:
        raise DatasetError(f"{display} is empty: no rows")
    if magic != _ZIP_MAGIC:
        return [_Source(path, None, display)]
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{display} is a truncated or damaged zip archive")
    with zipfile.ZipFile(path) as archive:
        members = [m for m in archive.namelist() if not m.endswith("/")]
    if not members:
        raise DatasetError(f"{display} is an empty zip archive")
    for member in members:
        if not member.lower().endswith(".csv"):
            raise DatasetError(f"{display} holds {member!r}, not a CSV file")
    return [_Source(path, member, f"{display}:{member}") for member in members]


class _Writer:
    """Rows or tables to Parquet in chunks of about :data:`CHUNK_ROWS`; tracks what
    ``meta.json`` needs. ``discard`` removes what was written, to start over."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: pq.ParquetWriter | None = None
        self._columns: tuple[list[int], list[str], list[float], list[float]] = ([], [], [], [])
        self._tables: list[pa.Table] = []  # not yet written
        self._pending = 0
        self.rows = 0
        self.symbols: set[str] = set()
        self.start_ms = math.inf
        self.end_ms = -math.inf

    def add(self, row: Row) -> None:
        ts, symbols, prices, qtys = self._columns
        ts.append(row[0])
        symbols.append(row[1])
        prices.append(row[2])
        qtys.append(row[3])
        if len(ts) >= CHUNK_ROWS:
            self.flush()

    def add_table(self, table: pa.Table) -> None:
        self._tables.append(table)
        self._pending += table.num_rows
        if self._pending >= CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._columns[0]:
            self._tables.append(pa.table(list(self._columns), schema=SCHEMA))
            for column in self._columns:
                column.clear()
        if not self._tables:
            return
        table = pa.concat_tables(self._tables)
        self._tables.clear()
        self._pending = 0
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, SCHEMA, compression="zstd")
        self._writer.write_table(table)
        self.rows += table.num_rows
        self.symbols.update(pc.unique(table.column("symbol")).to_pylist())
        bounds = pc.min_max(table.column("ts_ms")).as_py()
        self.start_ms = min(self.start_ms, bounds["min"])
        self.end_ms = max(self.end_ms, bounds["max"])

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def discard(self) -> None:
        """Close and remove the file: nothing written stays on disk."""
        self._tables.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._path.unlink(missing_ok=True)


def _write_fast(formats: list[tuple[_Source, _Format]], writer: _Writer) -> None:
    """Every source through Arrow; :class:`columnar.NotFastError` if any cannot be vouched for
    (a truncated zip too: the exact parser then says so)."""
    try:
        for source, found in formats:
            for table in columnar.tables(source.open, found.layout):
                writer.add_table(table)
    except (*_READ_ERRORS, ValueError) as exc:
        raise columnar.NotFastError(str(exc)) from None


def _write_exact(formats: list[tuple[_Source, _Format]], writer: _Writer) -> None:
    """Every source through the exact parser: :class:`DatasetError` naming the first bad
    line and column of a source, with the count of the others."""
    for source, found in formats:
        problems = _Problems()
        for row in _exact_rows(source, found, problems):
            if problems.first is None:
                writer.add(row)
        problems.raise_if_any(f"{source.member}: " if source.member else "")


def ingest(upload: Path, name: str, root: Path, *, fast: bool = True) -> DatasetInfo:
    """Check ``upload`` (named ``name`` by the user) and store it as a new dataset under
    ``root``; :class:`DatasetError` naming the first problem, and nothing stored, if it is bad.

    ``name`` matters: data-vision files carry the symbol only in their name. ``fast`` tries
    Arrow's reader first (:mod:`spreadbus.research.columnar`); whatever it cannot vouch for is
    read again from the start by the exact parser, which names the problem."""
    dataset_id = secrets.token_hex(8)
    incoming = root / f".incoming-{dataset_id}"
    incoming.mkdir(parents=True)
    display = Path(name).name or "upload"
    writer = _Writer(incoming / DATA_FILE)
    parser: Parser = "exact"
    try:
        try:
            formats = [(source, _detect(source)) for source in _sources(upload, display)]
            try:
                if not fast:
                    raise columnar.NotFastError("exact parser asked for")
                _write_fast(formats, writer)
                parser = "arrow"
            except columnar.NotFastError:
                writer.discard()
                writer = _Writer(incoming / DATA_FILE)
                _write_exact(formats, writer)
        except _READ_ERRORS as exc:
            reason = "truncated or damaged" if not isinstance(exc, OSError) else str(exc)
            raise DatasetError(f"cannot read {display}: {reason}") from None
        writer.close()
        if writer.rows == 0:
            raise DatasetError(f"{display} has a header but no data rows")
        kinds = {found.layout.kind for _, found in formats}
        info = DatasetInfo(
            id=dataset_id,
            name=display,
            kind=kinds.pop() if len(kinds) == 1 else "generic",
            symbols=sorted(writer.symbols),
            rows=writer.rows,
            start_ms=int(writer.start_ms),
            end_ms=int(writer.end_ms),
            created_ms=int(time.time() * 1000),
            parser=parser,
        )
        (incoming / META_FILE).write_text(json.dumps(info.to_json()))
        incoming.rename(root / dataset_id)
        return info
    finally:
        writer.close()
        shutil.rmtree(incoming, ignore_errors=True)


# ---- the store ---------------------------------------------------------------------------------
def _folder(root: Path, dataset_id: str) -> Path:
    """The dataset's folder; :class:`DatasetNotFoundError` for a malformed or unknown id (so
    an id can never name a path outside ``root``)."""
    if not ID_RE.match(dataset_id):
        raise DatasetNotFoundError(dataset_id)
    folder = root / dataset_id
    if not (folder / META_FILE).is_file():
        raise DatasetNotFoundError(dataset_id)
    return folder


def get(root: Path, dataset_id: str) -> DatasetInfo:
    meta = json.loads((_folder(root, dataset_id) / META_FILE).read_text())
    return DatasetInfo(**meta)


def list_datasets(root: Path) -> list[DatasetInfo]:
    """Every complete dataset, newest first."""
    if not root.is_dir():
        return []
    found = [get(root, p.name) for p in root.iterdir() if ID_RE.match(p.name)]
    return sorted(found, key=lambda info: info.created_ms, reverse=True)


def delete(root: Path, dataset_id: str) -> None:
    """Remove a dataset: renamed out of sight first, so a listing never sees half of it."""
    folder = _folder(root, dataset_id)
    doomed = root / f".deleting-{dataset_id}"
    folder.rename(doomed)
    shutil.rmtree(doomed)


def load_ticks(root: Path, dataset_id: str, symbols: list[str]) -> pd.DataFrame:
    """Rows of ``symbols`` (columns ``ts``, ``symbol``, ``price``, ``qty``), in file order."""
    path = _folder(root, dataset_id) / DATA_FILE
    table = pq.read_table(path, filters=[("symbol", "in", symbols)])
    frame: pd.DataFrame = table.to_pandas()
    return frame.rename(columns={"ts_ms": "ts"})


def bar_closes(root: Path, dataset_id: str, symbols: list[str], bar: Rule) -> pd.DataFrame:
    """Each symbol's close per bar (index: bar start, epoch ms), over the bars where every
    symbol has a price (a quiet bar carries the previous close forward)."""
    info = get(root, dataset_id)
    missing = [s for s in symbols if s not in info.symbols]
    if missing:
        raise DatasetError(f"dataset {dataset_id} has no {', '.join(missing)}")
    ticks = load_ticks(root, dataset_id, symbols)
    columns: dict[str, pd.Series] = {}
    for symbol, group in ticks.groupby("symbol", sort=False):
        frame = group[["ts", "price", "qty"]].fillna({"qty": 0.0})
        bars = resample(frame, bar)
        index = pd.DatetimeIndex(bars.index).as_unit("ms").asi8
        columns[str(symbol)] = pd.Series(bars["close"].to_numpy(), index=index)
    closes = pd.DataFrame({s: columns[s] for s in symbols}).sort_index().ffill().dropna()
    closes.index = closes.index.astype(np.int64)
    closes.index.name = "ts_ms"
    return closes


__all__ = [
    "BAR_MILLISECONDS",
    "DatasetError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "bar_closes",
    "datasets_root",
    "delete",
    "get",
    "ingest",
    "list_datasets",
    "load_ticks",
]
