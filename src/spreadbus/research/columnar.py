"""The fast path of dataset ingest: Arrow's streaming CSV reader, checked column by column.

A block of rows is accepted only when every row passes checks at least as strict as the exact
parser's (:mod:`spreadbus.research.datasets`, the replay's parser for trades), and then it
holds exactly the rows that parser would store: the same epoch milliseconds, and the same
doubles (Arrow's text-to-double conversion is correctly rounded, like Python's ``float``).
Anything else (a column count off, a cell these checks do not recognise, a byte-order mark, a
blank first line, a line of spaces, unreadable bytes) raises :class:`NotFastError`, and the
caller starts over with the exact parser, which names the first bad line and column. The fast
path reports no problems itself: line numbers are the exact parser's job.

Memory: Arrow reads :data:`BLOCK_BYTES` at a time, on one thread (the web process shares two
cores with everything else), so it stays flat whatever the file's size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

Kind = Literal["trades", "aggTrades", "klines_1m", "generic"]
BLOCK_BYTES: Final = 1 << 20
SCHEMA: Final = pa.schema(
    [("ts_ms", pa.int64()), ("symbol", pa.string()), ("price", pa.float64()),
     ("qty", pa.float64())]
)  # fmt: skip
# epoch ms of 2000-01-01 and 2100-01-01: the exact parser's range for digits in ms
MIN_MS: Final = 946_684_800_000
MAX_MS: Final = 4_102_444_800_000
# is_decimal_text (the live and replay parsers' rule): no sign, exponent or leading zero
_DECIMAL: Final = r"^(0|[1-9][0-9]*)(\.[0-9]+)?$"
# plain digits with an optional fraction: a subset of what Python's float() reads
_NUMBER: Final = r"^[0-9]+(\.[0-9]+)?$"
_DIGITS: Final = r"^[0-9]{1,19}$"  # an int64 at most (a larger one fails the cast: NotFastError)
_SYMBOL: Final = r"^[A-Za-z0-9]{2,20}$"  # SYMBOL_RE once upper-cased (ASCII only)
# the ISO-8601 forms Python's datetime.fromisoformat and Arrow's cast read alike, zone required
_ISO: Final = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
_BOM: Final = b"\xef\xbb\xbf"


class NotFastError(Exception):
    """The fast path cannot vouch for this file: read it with the exact parser."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the fields are in each row (0-based columns) and what the file holds."""

    kind: Kind
    width: int  # columns in every row
    header: bool  # the first line is column names
    time: int
    price: int
    qty: int | None  # None: no quantity (stored as NaN)
    symbol: str | None  # from the file name; None: per row, in column ``symbol_col``
    symbol_col: int | None = None
    id: int | None = None  # trades: an integer trade id
    maker: int | None = None  # trades: true/false


Opener = Callable[[], AbstractContextManager[IO[bytes]]]


def tables(open_file: Opener, layout: Layout) -> Iterator[pa.Table]:
    """The file's rows as tables of :data:`SCHEMA`, a block at a time, in file order;
    :class:`NotFastError` at the first block the checks cannot vouch for."""
    with open_file() as handle:
        head = handle.read(4096)
    first_line = head.replace(b"\r", b"\n").split(b"\n", 1)[0]
    if head.startswith(_BOM) or not first_line.strip():
        raise NotFastError("byte-order mark or blank first line")
    names = [f"c{i}" for i in range(layout.width)]
    wanted = [layout.time, layout.price, layout.qty, layout.symbol_col, layout.id, layout.maker]
    include = [names[i] for i in sorted({i for i in wanted if i is not None})]
    read = pacsv.ReadOptions(
        column_names=names,
        skip_rows=1 if layout.header else 0,
        block_size=BLOCK_BYTES,
        use_threads=False,
    )
    parse = pacsv.ParseOptions(quote_char=False, escape_char=False, ignore_empty_lines=True)
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(include, pa.string()),
        include_columns=include,
        strings_can_be_null=False,
        check_utf8=True,
    )
    try:
        with open_file() as handle:
            reader = pacsv.open_csv(handle, read, parse, convert)
            for batch in reader:
                if batch.num_rows:
                    yield _rows(batch, layout)
    except pa.ArrowException as exc:
        raise NotFastError(str(exc)) from None


def _need(mask: pa.Array) -> None:
    if not pc.all(mask).as_py():
        raise NotFastError("a cell the fast path does not vouch for")


def _matching(column: pa.Array, pattern: str) -> pa.Array:
    _need(pc.match_substring_regex(column, pattern))
    return column


def _cast(column: pa.Array, kind: pa.DataType) -> np.ndarray:
    """``column`` as ``kind``, into numpy (a failed cast raises ArrowInvalid: NotFastError)."""
    return np.asarray(pc.cast(column, kind).to_numpy())


def _numbers(column: pa.Array, pattern: str) -> np.ndarray:
    values = _cast(_matching(column, pattern), pa.float64())
    _need(pa.array(np.isfinite(values)))  # hundreds of digits: beyond a double
    return values


def _trade_ms(column: pa.Array) -> np.ndarray:
    """``replay._ms`` over a column: ms, µs (data-vision spot since 2025) or ns to ms."""
    raw = _cast(_matching(column, _DIGITS), pa.int64())
    ms = np.where(raw > 10**17, raw // 1_000_000, np.where(raw > 10**14, raw // 1000, raw))
    _need(pa.array(ms > 0))
    return ms


def _epoch_ms(column: pa.Array) -> np.ndarray:
    """Digits in the epoch-ms range, or ISO-8601 with a zone, as ``int(ts.timestamp() *
    1000)`` computes it (microseconds / 1e6 is correctly rounded in both)."""
    if pc.all(pc.match_substring_regex(column, _DIGITS)).as_py():
        ms = _cast(column, pa.int64())
        _need(pa.array((ms >= MIN_MS) & (ms <= MAX_MS)))
        return ms
    stamps = pc.cast(_matching(column, _ISO), pa.timestamp("us", "UTC"))
    micros = _cast(stamps, pa.int64())
    return np.trunc(micros.astype(np.float64) / 1e6 * 1000.0).astype(np.int64)


def _rows(batch: pa.RecordBatch, layout: Layout) -> pa.Table:
    def cell(index: int) -> pa.Array:
        return batch.column(f"c{index}")

    n = batch.num_rows
    if layout.kind in ("trades", "aggTrades"):
        assert layout.id is not None and layout.maker is not None
        _matching(cell(layout.id), _DIGITS)
        ts_ms = _trade_ms(cell(layout.time))
        price = _numbers(cell(layout.price), _DECIMAL)
        assert layout.qty is not None
        qty = _numbers(cell(layout.qty), _DECIMAL)
        _need(pc.is_in(pc.ascii_lower(cell(layout.maker)), pa.array(["true", "false"])))
    else:
        if layout.kind == "klines_1m":
            ts_ms = _cast(_matching(cell(layout.time), _DIGITS), pa.int64())
            _need(pa.array((ts_ms >= MIN_MS) & (ts_ms <= MAX_MS)))
        else:
            ts_ms = _epoch_ms(cell(layout.time))
        price = _numbers(cell(layout.price), _NUMBER)
        qty = (
            _numbers(cell(layout.qty), _NUMBER) if layout.qty is not None else np.full(n, math.nan)
        )
    _need(pa.array(price > 0))
    if layout.symbol is not None:
        symbols: pa.Array = pa.repeat(pa.scalar(layout.symbol), n)
    else:
        assert layout.symbol_col is not None
        symbols = pc.ascii_upper(_matching(cell(layout.symbol_col), _SYMBOL))
    return pa.Table.from_arrays(
        [pa.array(ts_ms, pa.int64()), symbols, pa.array(price), pa.array(qty)], schema=SCHEMA
    )
