"""``replay:PATH``: history files pushed through the gateway's sink at ``--speed X``.

Supported files (the format is detected per file, from its first line; ``.zip`` archives are
read member by member, streamed, never unpacked to disk):

* Binance data-vision ``trades`` CSV: ``id,price,qty,quote_qty,time,is_buyer_maker``
* Binance data-vision ``aggTrades`` CSV:
  ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker``

  With or without that header line (old files have none: then the kind comes from the file name,
  else from the number of columns). The symbol always comes from the file name,
  ``BTCUSDT-aggTrades-2026-11-21.csv[.zip]``. Times are epoch milliseconds; microsecond (and
  nanosecond) timestamps are recognised by their size and converted. Ticks keep the file's
  exact price and quantity text, ``event_ts = trade_ts``, ``source = "replay"``.
* Recorded raw frames (see :func:`write_frames`): an optional first line with the stream URL,
  then one ``<receive epoch seconds>: <frame>`` per line. Each frame goes to
  ``sink.on_frame(frame, recv_ts, "replay")``: the very parser the live feed uses.

``PATH`` may be a file or a directory (searched recursively; every supported file is replayed,
all merged by time, e.g. one file per symbol). Pacing follows the data's own clock (trade time
for CSV rows, receive time for frames): speed 1 reproduces the original gaps, speed X divides
them by X, speed 0 does not sleep at all and only waits for the sink's room. ``recv_ts`` is the
wall clock at push time (like the live and sim sources) unless ``recorded_recv`` is set, in
which case frames keep their recorded receive time.

Bad lines go to ``sink.on_malformed(reason, detail)`` and the replay goes on; a path that does
not exist or holds nothing readable raises :class:`ReplayError` with a one-line message.

A replay into a bus that already holds newer trades of a symbol (the data dir of an earlier
live or replay run) would see its ticks refused one by one as duplicates: the stream only takes
trades after its last one. :func:`find_overlaps` looks at the first trade of every file before
anything is pushed, and ``on_overlap`` hears about it at once, with :func:`overlap_message`
naming the way out (a separate data dir, or an empty Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import io
import math
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Literal

from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.gateway.binance import FrameError, is_decimal_text, parse_frame
from spreadbus.gateway.sim import build_ticks
from spreadbus.gateway.sink import TickSink

SOURCE: Final = "replay"
Kind = Literal["aggTrades", "trades", "frames"]

_NAME_RE: Final = re.compile(r"^([A-Za-z0-9]{2,20})-(aggTrades|trades)-", re.IGNORECASE)
_FRAME_LINE_RE: Final = re.compile(rb"^\s*(\d+(?:\.\d*)?)\s*:\s?(.*?)\s*$", re.DOTALL)
_SNIFF_LIMIT: Final = 1 << 20
# data-vision column names -> our fields
_COLUMNS: Final = {
    "id": "id",
    "agg_trade_id": "id",
    "price": "price",
    "qty": "qty",
    "quantity": "qty",
    "time": "time",
    "transact_time": "time",
    "is_buyer_maker": "maker",
}
# headerless layouts: (id, price, qty, time, maker) column positions
_POSITIONS: Final[dict[str, tuple[int, int, int, int, int]]] = {
    "aggTrades": (0, 1, 2, 5, 6),
    "trades": (0, 1, 2, 4, 5),
}
# what reading a vanished, unreadable or corrupt (zip) file raises
_READ_ERRORS: Final = (OSError, EOFError, zipfile.BadZipFile, zlib.error)
_KIND_BY_WIDTH: Final[dict[int, Kind]] = {7: "aggTrades", 6: "trades"}
_TICK, _FRAME, _BAD = 0, 1, 2


class ReplayError(ValueError):
    """The replay source cannot be used; the message says why in one line."""


@dataclass(frozen=True, slots=True)
class ReplayFile:
    """One replayable stream: a file, or a member of a zip archive."""

    path: Path
    member: str | None  # zip member name, None for a plain file
    kind: Kind
    symbol: str | None = None  # CSV only
    header: bool = False  # CSV: first line is a header
    columns: tuple[int, int, int, int, int] = (0, 1, 2, 5, 6)  # id, price, qty, time, maker
    width: int = 0  # CSV: number of columns of every row

    @property
    def name(self) -> str:
        return f"{self.path.name}:{self.member}" if self.member else self.path.name


@dataclass(slots=True)
class ReplayStats:
    """What a replay pushed; returned when the files are exhausted (or ``stop`` was set)."""

    files: int = 0
    ticks: int = 0  # CSV rows handed over as ticks
    frames: int = 0  # frames handed to the sink's parser
    malformed: int = 0  # lines reported through on_malformed
    skipped_files: list[str] = field(default_factory=list)  # in a directory: not replayable
    urls: list[str] = field(default_factory=list)  # URL lines of frame files
    first_ms: float | None = None  # data clock of the first and last record
    last_ms: float | None = None
    elapsed_s: float = 0.0
    stopped: bool = False


# ---- discovery ---------------------------------------------------------------------------------
@contextlib.contextmanager
def _open(path: Path, member: str | None) -> Iterator[IO[bytes]]:
    if member is None:
        with path.open("rb") as handle:
            yield handle
    else:
        with zipfile.ZipFile(path) as archive, archive.open(member) as handle:
            yield handle


def _first_line(handle: IO[bytes]) -> bytes | None:
    """The first non-blank line (without its end of line), None if there is none. A lone CR
    ends a line too (old spreadsheet exports), as it does when the rows are read."""
    while True:
        chunk = handle.readline(_SNIFF_LIMIT)
        if not chunk:
            return None
        for part in chunk.splitlines():
            line = part.strip()
            if line:
                return line.removeprefix(b"\xef\xbb\xbf")


def _inspect(path: Path, member: str | None, display: str) -> ReplayFile:
    """Detect the format of one file (or zip member); :class:`ReplayError` if unsupported."""
    with _open(path, member) as handle:
        first = _first_line(handle)
    if first is None:
        raise ReplayError(f"{display} is empty: no rows to replay")
    if first.startswith((b"ws://", b"wss://")) or _FRAME_LINE_RE.match(first):
        return ReplayFile(path, member, "frames")
    try:
        text = first.decode()
    except UnicodeDecodeError:
        raise ReplayError(
            f"{display} is neither a trades/aggTrades CSV nor a frames file"
        ) from None
    cells = [cell.strip() for cell in text.split(",")]
    names = [Path(member).name, path.name] if member else [path.name]
    name_match = next((m for m in map(_NAME_RE.match, names) if m is not None), None)
    if len(cells) < 6:
        raise ReplayError(f"{display} is neither a trades/aggTrades CSV nor a frames file")
    symbol = name_match.group(1).upper() if name_match else None
    name_kind: Kind | None = None
    if name_match:
        name_kind = "aggTrades" if name_match.group(2).lower() == "aggtrades" else "trades"
    kind: Kind | None
    if cells[0].isdigit():  # no header
        kind = name_kind or _KIND_BY_WIDTH.get(len(cells))
        if kind is None:
            raise ReplayError(
                f"{display}: cannot tell trades from aggTrades ({len(cells)} columns and no "
                "header); name it like BTCUSDT-aggTrades-2026-11-21.csv"
            )
        columns, header = _POSITIONS[kind], False
        if max(columns) >= len(cells):
            raise ReplayError(f"{display}: {len(cells)} columns are too few for {kind}")
    else:
        heads = [cell.lower() for cell in cells]
        found = {_COLUMNS[n]: i for i, n in reversed(list(enumerate(heads))) if n in _COLUMNS}
        if set(found) != {"id", "price", "qty", "time", "maker"}:
            raise ReplayError(f"{display}: unrecognised CSV header {text[:120]!r}")
        kind = "aggTrades" if "agg_trade_id" in heads else "trades"
        columns = (found["id"], found["price"], found["qty"], found["time"], found["maker"])
        header = True
    if symbol is None:
        raise ReplayError(
            f"cannot tell the symbol of {display}: name it like BTCUSDT-{kind}-2026-11-21.csv"
        )
    return ReplayFile(path, member, kind, symbol, header, columns, len(cells))


def _inspect_path(path: Path) -> list[ReplayFile]:
    try:
        if not zipfile.is_zipfile(path):
            return [_inspect(path, None, path.name)]
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
        if not members:
            raise ReplayError(f"{path.name} is an empty zip archive")
        return [_inspect(path, m, f"{path.name}:{m}") for m in members]
    except _READ_ERRORS as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReplayError(f"cannot read {path.name}: {reason}") from None


def discover(path: str | Path) -> tuple[list[ReplayFile], list[str]]:
    """The replayable files at ``path`` (a file or a directory) and, for a directory, the
    files it skipped with the reason. :class:`ReplayError` if there is nothing to replay."""
    root = Path(path).expanduser()
    if isinstance(path, str) and path.startswith("replay:") and not root.exists():
        root = Path(path.removeprefix("replay:")).expanduser()  # the --source value itself
    if not root.exists():
        raise ReplayError(f"replay source {str(path)!r} does not exist")
    try:
        if root.is_file():
            return _inspect_path(root), []
        if not root.is_dir():
            raise ReplayError(f"replay source {str(path)!r} is neither a file nor a directory")
        files: list[ReplayFile] = []
        skipped: list[str] = []
        for candidate in sorted(root.rglob("*")):
            relative = candidate.relative_to(root)
            if any(part.startswith(".") for part in relative.parts) or not candidate.is_file():
                continue
            if candidate.name.upper().endswith(".CHECKSUM"):  # data-vision's companions
                continue
            try:
                files.extend(_inspect_path(candidate))
            except ReplayError as exc:
                skipped.append(str(exc))
        if not files:
            detail = f" ({skipped[0]})" if skipped else ""
            raise ReplayError(f"no replayable file in directory {str(path)!r}{detail}")
        return files, skipped
    except _READ_ERRORS as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ReplayError(f"cannot read replay source {str(path)!r}: {reason}") from None


# ---- reading -----------------------------------------------------------------------------------
# (data time ms, order, kind, payload); a _BAD payload is (reason, detail, line, column or None)
Record = tuple[float, int, int, tuple[Any, ...]]


def _ms(value: int) -> int:
    """Epoch milliseconds from ms, µs (data-vision spot since 2025) or ns timestamps."""
    if value > 10**17:
        return value // 1_000_000
    if value > 10**14:
        return value // 1000
    return value


def _csv_records(src: ReplayFile, order: int, counter: list[int]) -> Generator[Record, None, None]:
    id_col, price_col, qty_col, time_col, maker_col = src.columns
    width, symbol, name = src.width, src.symbol, src.name
    last_t = -math.inf
    decimal = is_decimal_text  # the live parser's rule: no sign, exponent or leading zero
    with _open(src.path, src.member) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        skip_header = src.header
        for lineno, raw_line in enumerate(text, 1):
            line = raw_line.strip()
            if not line:
                continue
            if skip_header:
                skip_header = False
                continue
            cells = line.split(",")
            if len(cells) != width:
                detail = f"{name}:{lineno}: {len(cells)} columns, expected {width}"
                first_off = min(len(cells), width) + 1  # 1-based: first missing or extra column
                yield last_t, order, _BAD, ("bad_csv_row", detail, lineno, first_off)
                continue
            price, qty, maker = cells[price_col], cells[qty_col], cells[maker_col].lower()
            try:
                trade_id, trade_ts = int(cells[id_col]), _ms(int(cells[time_col]))
                if trade_id < 0 or trade_ts <= 0:
                    raise ValueError("negative id or time")
            except ValueError:
                column = "time" if cells[id_col].isdigit() else "id"
                detail = f"{name}:{lineno}: bad id or time"
                yield last_t, order, _BAD, ("bad_number", detail, lineno, column)
                continue
            if not (decimal(price) and decimal(qty)):
                column = "qty" if decimal(price) else "price"
                detail = f"{name}:{lineno}: {price!r} {qty!r}"
                yield last_t, order, _BAD, ("bad_number", detail, lineno, column)
                continue
            price_f, qty_f = float(price), float(qty)
            if math.inf in (price_f, qty_f):  # hundreds of digits: beyond a double
                column, digits = ("price", price) if price_f == math.inf else ("qty", qty)
                detail = f"{name}:{lineno}: {column} too large ({len(digits)} digits)"
                yield last_t, order, _BAD, ("bad_number", detail, lineno, column)
                continue
            if not price_f > 0:
                detail = f"{name}:{lineno}: price {price!r}"
                yield last_t, order, _BAD, ("bad_price", detail, lineno, "price")
                continue
            if maker not in ("true", "false"):
                detail = f"{name}:{lineno}: {maker!r}"
                yield last_t, order, _BAD, ("bad_side", detail, lineno, "is_buyer_maker")
                continue
            last_t = trade_ts
            counter[order] += 1
            side = "sell" if maker == "true" else "buy"
            yield trade_ts, order, _TICK, (symbol, trade_id, price, qty, side, trade_ts)


def _frame_records(
    src: ReplayFile, order: int, counter: list[int], urls: list[str]
) -> Generator[Record, None, None]:
    last_t = -math.inf
    name = src.name
    with _open(src.path, src.member) as handle:
        first = True
        for lineno, raw in enumerate(handle, 1):
            line = raw.strip()
            if not line:
                continue
            if first:
                first = False
                if line.startswith((b"ws://", b"wss://")):
                    urls.append(line.decode(errors="replace"))
                    continue
            match = _FRAME_LINE_RE.match(line)
            if match is None or not match.group(2):
                detail = f"{name}:{lineno}: expected '<epoch seconds>: <frame>'"
                yield last_t, order, _BAD, ("bad_frame_line", detail, lineno, None)
                continue
            stamp = float(match.group(1))
            recv_ms = stamp if stamp > 1e11 else stamp * 1000.0  # seconds, or already ms
            last_t = recv_ms
            counter[order] += 1
            yield recv_ms, order, _FRAME, (match.group(2), recv_ms)


def _records(
    src: ReplayFile, order: int, counter: list[int], urls: list[str]
) -> Generator[Record, None, None]:
    """The records of one file, whatever its kind."""
    if src.kind == "frames":
        return _frame_records(src, order, counter, urls)
    return _csv_records(src, order, counter)


# ---- what the bus already holds ----------------------------------------------------------------
_PEEK_RECORDS: Final = 1000  # records read per file to find its first trades


@dataclass(frozen=True, slots=True)
class Overlap:
    """A symbol whose replay starts at or before the last trade the bus already holds."""

    symbol: str
    replay_first_ms: int
    bus_last_ms: int


def _first_trades(src: ReplayFile) -> dict[str, tuple[int, int]]:
    """(trade time, trade id) of the first trade of each symbol in a file, from its first
    :data:`_PEEK_RECORDS` records."""
    found: dict[str, tuple[int, int]] = {}
    records = _records(src, 0, [0], [])
    try:
        for _, (_, _, kind, payload) in zip(range(_PEEK_RECORDS), records, strict=False):
            if kind == _TICK:
                symbol, trade_id, *_, trade_ts = payload
                found.setdefault(symbol, (trade_ts, trade_id))
                break  # a CSV file holds one symbol
            if kind == _FRAME:
                try:
                    parsed = parse_frame(payload[0], 0.0, SOURCE)
                except FrameError:
                    continue
                if isinstance(parsed, Tick):
                    found.setdefault(parsed.symbol, (parsed.trade_ts, parsed.trade_id))
    finally:
        records.close()
    return found


def find_overlaps(
    files: Iterable[ReplayFile], bus_last: Mapping[str, tuple[int, int]]
) -> list[Overlap]:
    """The symbols whose first replayed trade the bus would refuse as already seen."""
    first: dict[str, tuple[int, int]] = {}
    for src in files:
        with contextlib.suppress(*_READ_ERRORS):  # the replay itself reports unreadable files
            for symbol, key in _first_trades(src).items():
                first[symbol] = min(first.get(symbol, key), key)
    return [
        Overlap(symbol, key[0], bus_last[symbol][0])
        for symbol, key in sorted(first.items())
        if symbol in bus_last and key <= bus_last[symbol]
    ]


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def overlap_message(overlaps: list[Overlap], data_dir: Path | str) -> str:
    """One loud line: what will be dropped, and how to replay into a bus of its own."""
    shown = ", ".join(
        f"{o.symbol} (replay from {_utc(o.replay_first_ms)}, bus has up to {_utc(o.bus_last_ms)})"
        for o in overlaps[:3]
    )
    more = f" and {len(overlaps) - 3} more" if len(overlaps) > 3 else ""
    separate = Path(data_dir).expanduser().resolve().parent / "data-replay"
    return (
        f"the bus already holds these symbols' trades up to a later time: {shown}{more}; every "
        "replayed trade up to that time is dropped as a duplicate. To replay all of it, use a "
        f"data dir of its own: --data-dir {separate} (or --redis-url of an empty Redis)"
    )


# ---- the replay --------------------------------------------------------------------------------
async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, waking early if ``stop`` is set; True when stopped."""
    if seconds > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def run_replay(
    path: str,
    sink: TickSink,
    stop: asyncio.Event,
    *,
    speed: float,
    recorded_recv: bool = False,
    batch_size: int = 2000,
    bus_last: Mapping[str, tuple[int, int]] | None = None,
    on_overlap: Callable[[list[Overlap]], None] | None = None,
) -> ReplayStats:
    """Replay ``path`` (a file or a directory) into ``sink``; returns the counts once every
    file is exhausted or ``stop`` is set. Raises :class:`ReplayError` (one line) when the path
    does not exist or holds no readable row.

    ``bus_last``: each symbol's last trade in the bus, ``(trade time, trade id)``; symbols the
    replay would start at or before go to ``on_overlap`` before anything is pushed."""
    if not (speed >= 0 and math.isfinite(speed)):
        raise ReplayError(f"replay speed must be a number >= 0, got {speed}")
    files, skipped = discover(path)
    if bus_last and on_overlap is not None:
        overlaps = find_overlaps(files, bus_last)
        if overlaps:
            on_overlap(overlaps)
    stats = ReplayStats(files=len(files), skipped_files=skipped)
    for reason in skipped:
        sink.on_malformed("replay_file_skipped", reason)
    counter = [0] * len(files)
    streams = [_records(f, i, counter, stats.urls) for i, f in enumerate(files)]
    records: Iterable[Record] = (
        streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda r: r[0])
    )
    started = time.monotonic()
    columns: tuple[list[Any], ...] = ([], [], [], [], [], [], [])
    symbols, ids, prices, qtys, sides, times, events = columns
    pending_frames = 0
    wall0 = data0 = 0.0
    released = -math.inf  # data time up to which records may go out without sleeping
    rate = speed * 1000.0  # data ms per wall second

    def flush() -> None:
        if symbols:
            stats.ticks += len(symbols)
            sink.on_ticks(build_ticks(columns, epoch_ms(), SOURCE))
            for column in columns:
                column.clear()

    async def breathe() -> bool:
        """Let the sink (and everything else on the loop) catch up; True when stopped."""
        nonlocal pending_frames
        flush()
        pending_frames = 0
        await sink.wait_for_room()
        await asyncio.sleep(0)
        return stop.is_set()

    try:
        for t, _, kind, payload in records:
            if kind == _BAD:
                stats.malformed += 1
                sink.on_malformed(payload[0], payload[1])
                continue
            if stats.first_ms is None:
                stats.first_ms, data0, wall0 = t, t, time.monotonic()
            stats.last_ms = t
            if rate > 0 and t > released:
                now = time.monotonic()
                released = data0 + (now - wall0) * rate
                if t > released:
                    if await breathe():
                        stats.stopped = True
                        break
                    wait = wall0 + (t - data0) / rate - time.monotonic()
                    if await _sleep_or_stop(stop, wait):
                        stats.stopped = True
                        break
                    released = t
            if kind == _TICK:
                symbol, trade_id, price, qty, side, trade_ts = payload
                symbols.append(symbol)
                ids.append(trade_id)
                prices.append(price)
                qtys.append(qty)
                sides.append(side)
                times.append(trade_ts)
                events.append(trade_ts)
                if len(symbols) >= batch_size and await breathe():
                    stats.stopped = True
                    break
            else:
                flush()  # keep CSV ticks and frames in time order
                frame, recv_ms = payload
                sink.on_frame(frame, recv_ms if recorded_recv else epoch_ms(), SOURCE)
                stats.frames += 1
                pending_frames += 1
                if pending_frames >= batch_size and await breathe():
                    stats.stopped = True
                    break
        flush()
    except _READ_ERRORS as exc:
        flush()
        raise ReplayError(f"replay of {path!r} failed while reading: {exc}") from None
    finally:
        for stream in streams:
            stream.close()
    stats.elapsed_s = time.monotonic() - started
    if not stats.stopped:
        if stats.ticks + stats.frames == 0:
            what = files[0].name if len(files) == 1 else f"replay source {path!r}"
            raise ReplayError(f"{what} has no readable rows ({stats.malformed} malformed lines)")
        for src, count in zip(files, counter, strict=True):
            if count == 0:
                stats.skipped_files.append(f"{src.name} has no readable rows")
    return stats


# ---- recording ---------------------------------------------------------------------------------
def write_frames(
    path: str | Path, frames: Iterable[tuple[float, bytes | str]], url: str | None = None
) -> int:
    """Record frames as ``<receive epoch seconds>: <frame>`` lines (optionally after a first
    line with the stream URL): the format ``replay:`` reads back. Returns the frame count."""
    count = 0
    with Path(path).open("wb") as out:
        if url is not None:
            out.write(url.encode() + b"\n")
        for recv_s, frame in frames:
            data = frame.encode() if isinstance(frame, str) else frame
            if b"\n" in data or b"\r" in data:
                raise ValueError("a frame must fit on one line (no raw line breaks)")
            out.write(f"{recv_s:.6f}: ".encode() + data + b"\n")
            count += 1
    return count


# ---- the same parser for uploaded files (spreadbus.research.datasets) -------------------------
TICK, BAD = _TICK, _BAD
inspect_csv = _inspect  # detect a trades/aggTrades CSV (or zip member); ReplayError if not
csv_records = _csv_records  # its rows as records: TICK (symbol, id, price, qty, side, ms) or BAD
