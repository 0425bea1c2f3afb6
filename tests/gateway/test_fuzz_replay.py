"""Fuzzing replay files (issue 12): hypothesis-made data-vision CSVs, plain or zipped, with
broken rows, huge lines, binary garbage, truncation, shuffled or wrong columns, and whole files
that are not trade data at all.

Every file is built with what it must yield, row by row, from the data-vision format (a good
row is a tick with the row's exact text; a broken row carries exactly one defect and must be
reported under that defect's reason, naming its file and line), never from the replay's code.
"""

from __future__ import annotations

import asyncio
import io
import random
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.config import Settings
from spreadbus.gateway.replay import ReplayError, ReplayStats, run_replay
from spreadbus.gateway.service import Gateway
from spreadbus.testing.services import running_service

try:  # issue 14 moves the stream entry layout to bus.tickschema: read it there once it lands
    from spreadbus.bus.tickschema import decode
except ImportError:  # until then, the codec's decoder (it needs neither entry id nor symbol)
    from spreadbus.bus.codec import tick_from_fields

    def decode(fields: Any, entry: bytes | str, symbol: str) -> Tick:
        return tick_from_fields(fields)


T0 = 1_795_314_919_000
COLUMNS = {
    "aggTrades": (
        "agg_trade_id", "price", "quantity", "first_trade_id", "last_trade_id", "transact_time",
        "is_buyer_maker",
    ),
    "trades": ("id", "price", "qty", "quote_qty", "time", "is_buyer_maker"),
}  # fmt: skip
ROLES = {
    "agg_trade_id": "id", "id": "id", "price": "price", "quantity": "qty", "qty": "qty",
    "transact_time": "time", "time": "time", "is_buyer_maker": "maker",
}  # fmt: skip
# One defect each; none of them has whitespace at its ends (a line's ends are stripped)
BAD_INTS = ["", "x", "-5", "1.5", "0x1f", "1e3", "9" * 5000, "٣x", "NaN"]
BAD_TIMES = [*BAD_INTS, "0", "-1", "17953149190001e3"]
NOT_DECIMALS = [
    "", "-1", "+1", "1e5", "nan", "inf", ".5", "5.", "1..2", "0x10", "１２", "٣", "1 5",
    "00", "01", "00.5", "007.25",  # leading zeros: RedisTimeSeries refuses such a value
    "1" * 400, "9" * 400 + ".5",  # decimal text beyond a double (inf)
]  # fmt: skip
BAD_SIDES = ["", "yes", "1", "0", "t", "truee", "nil", "fals", "ｔrue"]
ROW_WHATS = (
    "valid", "valid", "valid", "valid", "valid", "huge_ok", "width", "id", "time", "price",
    "zero_price", "qty", "maker", "garbage", "huge_bad", "nul",
)  # fmt: skip
FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,  # the same files on every run: CI stays stable
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass
class CsvFile:
    """A file to replay and what it must yield: ticks ``(symbol, id, price, qty, side, ms)``
    in order, and the broken lines ``(reason, line number)`` in order."""

    name: str  # as it appears in messages: file name, or "archive.zip:member"
    ticks: list[tuple[Any, ...]] = field(default_factory=list)
    bad: list[tuple[str, int]] = field(default_factory=list)


def _price(rng: random.Random) -> str:
    whole = rng.choice([0, rng.randint(1, 9), rng.randint(1, 10**6), rng.randint(1, 10**12)])
    places = rng.randint(0 if whole else 1, 8)
    digits = "".join(rng.choice("0123456789") for _ in range(places))
    if not whole and not digits.strip("0"):
        digits = digits[:-1] + "1"
    return f"{whole}.{digits}" if places else str(whole)


def _qty(rng: random.Random) -> str:
    return rng.choice(["0", "0.0", "1", "0.012", f"{rng.randint(0, 10**6)}.{rng.randint(0, 999)}"])


def _filler(rng: random.Random, size: int = 12) -> str:
    """A value for a column the replay ignores: anything but a comma or a line break."""
    chars = [chr(rng.randint(0x21, 0x7E)) for _ in range(rng.randint(0, size))]
    return "".join(c for c in chars if c != ",") + rng.choice(["", "é", "€", "\x00"]) + "0"


REASONS = {
    "width": "bad_csv_row", "id": "bad_number", "time": "bad_number", "price": "bad_number",
    "zero_price": "bad_price", "qty": "bad_number", "maker": "bad_side", "garbage": "bad_csv_row",
    "huge_bad": "bad_csv_row", "nul": "bad_number",
}  # fmt: skip
BAD_VALUES = {  # defect -> (the column it breaks, the values that break it)
    "id": ("id", BAD_INTS), "time": ("time", BAD_TIMES), "price": ("price", NOT_DECIMALS),
    "qty": ("qty", NOT_DECIMALS), "maker": ("maker", BAD_SIDES),
    "zero_price": ("price", ["0", "0.0", "0.000"]),
    "nul": ("price", ["1\x005", "\x00", "12.5\x00"]),
}  # fmt: skip


class CsvBuilder:
    """One data-vision CSV, row recipe by row recipe, with what it must yield."""

    def __init__(
        self, rng: random.Random, kind: str, *, header: bool, shuffle: bool, symbol: str,
        first_id: int, t0: int,
    ) -> None:  # fmt: skip
        self.rng = rng
        self.symbol = symbol
        self.columns = list(COLUMNS[kind])
        if shuffle and header:  # a header names the columns: any order is a valid file
            rng.shuffle(self.columns)
        self.width = len(self.columns)
        self.lines: list[str] = []
        self.ticks: list[tuple[Any, ...]] = []
        self.bad: list[tuple[str, int]] = []
        self.next_id, self.next_ms = first_id, t0
        if header:
            text = ",".join(rng.choice([c, c.upper()]) for c in self.columns)
            self.lines.append(rng.choice(["", "\ufeff"]) + text)  # a byte-order mark is fine

    def good(self) -> tuple[dict[str, str], tuple[Any, ...]]:
        """A good row's values by role, and the tick it must become."""
        rng, ms = self.rng, self.next_ms
        values = {
            "id": str(self.next_id), "price": _price(rng), "qty": _qty(rng),
            "time": str(ms * 1000 if rng.random() < 0.2 else ms),  # µs are read as ms
            "maker": rng.choice(["true", "false", "TRUE", "False"]),
        }  # fmt: skip
        side = "sell" if values["maker"].lower() == "true" else "buy"
        tick = (self.symbol, self.next_id, values["price"], values["qty"], side, ms)
        self.next_id += rng.choice([1, 1, 1, 5])
        self.next_ms += rng.choice([0, 1, 7])
        return values, tick

    def row(self, values: dict[str, str], filler: str | None = None) -> str:
        cells = [values.get(ROLES.get(c, ""), filler or _filler(self.rng)) for c in self.columns]
        return ",".join(cells)

    def add(self, what: str) -> None:
        rng = self.rng
        if self.lines and rng.random() < 0.1:
            self.lines.append(rng.choice(["", "   ", "\t"]))  # blank lines are no rows
        values, tick = self.good()
        if what in ("valid", "huge_ok"):  # huge_ok: a huge line, still good (filler ignored)
            huge = "z" * rng.randint(50_000, 300_000) if what == "huge_ok" else None
            self.lines.append(self.row(values, huge))
            self.ticks.append(tick)
            return
        if what == "width":
            cells = self.row(values).split(",")
            if rng.random() < 0.5:
                del cells[rng.randrange(self.width)]
            else:
                cells += [_filler(rng) for _ in range(rng.randint(1, 3))]
            line = ",".join(cells)
        elif what in BAD_VALUES:
            role, bad = BAD_VALUES[what]
            line = self.row({**values, role: rng.choice(bad)})
        elif what == "garbage":  # binary noise, no comma: one column
            noise = bytes(b for b in rng.randbytes(rng.randint(0, 80)) if b not in b"\r\n,")
            line = "#" + noise.decode("utf-8", "replace")
        else:  # huge_bad: one enormous line with no column at all
            line = "#" + "y" * rng.randint(100_000, 1_000_000)
        self.lines.append(line)
        self.bad.append((REASONS[what], len(self.lines)))

    def body(self, truncate: bool) -> str:
        """The file's text; ``truncate``: it ends inside one more good row (a cut download)."""
        end = self.rng.choice(["\n", "\r\n", "\r"])
        text = end.join(self.lines) + end
        if truncate and self.columns[-1] == "is_buyer_maker":
            values, _ = self.good()
            last = self.row(values)
            kept = last[: self.rng.randrange(len(last))]
            if kept:  # cut in a column before the side: too few; in the side: not true/false
                few = len(kept.split(",")) != self.width
                self.bad.append(("bad_csv_row" if few else "bad_side", len(self.lines) + 1))
            text += kept
        return text


def build_csv(
    rng: random.Random, whats: Sequence[str], kind: str, *, header: bool, shuffle: bool,
    zipped: bool, truncate: bool, symbol: str = "BTCUSDT", first_id: int = 1, t0: int = T0,
) -> tuple[str, bytes, CsvFile]:  # fmt: skip
    """(file name, file bytes, expectations) of one data-vision CSV built from row recipes."""
    builder = CsvBuilder(
        rng, kind, header=header, shuffle=shuffle, symbol=symbol, first_id=first_id, t0=t0
    )
    for index, what in enumerate(whats):
        builder.add("valid" if index == 0 and not header else what)  # header-less: good start
    data = builder.body(truncate).encode()
    name = f"{symbol}-{kind}-2026-11-21.csv"
    expect = CsvFile(f"{name}.zip:{name}" if zipped else name, builder.ticks, builder.bad)
    if not zipped:
        return name, data, expect
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return f"{name}.zip", buffer.getvalue(), expect


class Sink:
    """A TickSink that keeps what the replay hands over."""

    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.malformed: list[tuple[str, str]] = []
        self.frames = 0

    def on_frame(self, frame: bytes | str, recv_ts: float, source: str) -> None:
        self.frames += 1

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        self.ticks.extend(ticks)

    def on_malformed(self, reason: str, detail: str) -> None:
        self.malformed.append((reason, detail))

    async def wait_for_room(self) -> None:
        return None


def replay(path: Path) -> tuple[ReplayStats | ReplayError, Sink]:
    """Replay ``path`` at full speed: its stats, or the ReplayError it raised."""
    sink = Sink()
    try:
        return asyncio.run(run_replay(str(path), sink, asyncio.Event(), speed=0)), sink
    except ReplayError as exc:
        return exc, sink


def as_rows(ticks: Sequence[Tick]) -> list[tuple[Any, ...]]:
    assert all(t.event_ts == t.trade_ts for t in ticks)
    return [(t.symbol, t.trade_id, t.price, t.qty, t.side, t.trade_ts) for t in ticks]


def check_replayed(expect: CsvFile, outcome: ReplayStats | ReplayError, sink: Sink) -> None:
    """Good rows arrive as ticks, in order, exactly; each broken line is reported once under
    its defect's reason, naming file and line; a file without a good row is refused."""
    assert as_rows(sink.ticks) == expect.ticks
    assert [reason for reason, _ in sink.malformed] == [reason for reason, _ in expect.bad]
    for (_, detail), (reason, line) in zip(sink.malformed, expect.bad, strict=True):
        assert detail.startswith(f"{expect.name}:{line}: "), (reason, detail[:200])
        assert len(detail) < 400 and "\n" not in detail  # one readable line, even for 2 MB
    if expect.ticks:
        assert isinstance(outcome, ReplayStats), outcome
        assert (outcome.ticks, outcome.malformed) == (len(expect.ticks), len(expect.bad))
    else:
        assert isinstance(outcome, ReplayError), outcome
        message = str(outcome)
        assert "\n" not in message and expect.name in message and "no readable rows" in message
        assert f"({len(expect.bad)} malformed lines)" in message


def test_fuzzed_csv_files_report_every_broken_line_and_deliver_every_good_row() -> None:
    """250 hypothesis-made CSV files, each replayed alone and checked by check_replayed."""
    figures: Counter[str] = Counter()

    @FUZZ
    @given(
        whats=st.lists(st.sampled_from(ROW_WHATS), min_size=1, max_size=40),
        kind=st.sampled_from(["aggTrades", "trades"]),
        header=st.booleans(),
        shuffle=st.booleans(),
        zipped=st.booleans(),
        truncate=st.booleans(),
        seed=st.integers(0, 2**32 - 1),
    )
    def run(
        whats: list[str], kind: str, header: bool, shuffle: bool, zipped: bool, truncate: bool,
        seed: int,
    ) -> None:  # fmt: skip
        rng = random.Random(seed)
        name, data, expect = build_csv(
            rng, whats, kind, header=header, shuffle=shuffle, zipped=zipped, truncate=truncate
        )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / name
            path.write_bytes(data)
            outcome, sink = replay(path)
        check_replayed(expect, outcome, sink)
        figures.update(files=1, zipped=zipped, good=len(expect.ticks), bad=len(expect.bad))
        figures.update(refused=isinstance(outcome, ReplayError))
        figures.update(reason for reason, _ in expect.bad)

    run()
    print(f"\nreplay fuzz: {dict(figures)}")
    assert figures["files"] >= 250 and figures["zipped"] >= 50 and figures["refused"] >= 1
    assert figures["good"] >= 500 and figures["bad"] >= 1_000


def _zip(members: dict[str, bytes], *, directory: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if directory is not None:
            archive.writestr(zipfile.ZipInfo(directory), b"")
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


GOOD_ROWS = (
    "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
)
GOOD_ROWS += "".join(f"{i},100.5,0.5,1,1,{T0 + i},true\n" for i in range(1, 6))
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + random.Random(7).randbytes(3000)
NAME = "BTCUSDT-aggTrades-2026-11-21"
NOT_TRADE_DATA = {  # file name -> (bytes, what the one-line refusal says)
    f"{NAME}.csv": (b"", "is empty"),
    f"{NAME}-blank.csv": (b"\n \r\n\t\n", "is empty"),
    f"{NAME}-png.csv": (PNG, "neither a trades/aggTrades CSV nor a frames file"),
    f"{NAME}-noise.csv": (random.Random(8).randbytes(5000), "neither a trades/aggTrades CSV"),
    f"{NAME}-utf16.csv": (GOOD_ROWS.encode("utf-16"), "neither a trades/aggTrades CSV"),
    f"{NAME}-5cols.csv": (b"1,100.5,0.5,1,1\n", "neither a trades/aggTrades CSV"),
    f"{NAME}-header.csv": (b"a,b,c,d,e,f,g\n1,2,3,4,5,6,7\n", "unrecognised CSV header"),
    f"{NAME}-klines.csv": (
        b"open_time,open,high,low,close,volume,close_time\n1,2,3,4,5,6,7\n",
        "unrecognised CSV header",
    ),
    f"{NAME}-oneline.csv": (b"0" * 3_000_000, "neither a trades/aggTrades CSV"),  # no newline
    "trades.csv": (GOOD_ROWS.encode(), "cannot tell the symbol"),
    f"{NAME}-png.zip": (_zip({f"{NAME}.csv": PNG}), "neither a trades/aggTrades CSV"),
    f"{NAME}-nested.zip": (
        _zip({f"{NAME}.zip": _zip({f"{NAME}.csv": GOOD_ROWS.encode()})}),
        "neither",
    ),
    "archive.zip": (_zip({"data.csv": GOOD_ROWS.encode()}), "cannot tell the symbol"),
    f"{NAME}-dir.zip": (_zip({}, directory="BTCUSDT/"), "is an empty zip archive"),
    f"{NAME}-bomb.zip": (_zip({f"{NAME}.csv": b"0" * 50_000_000}), "neither"),  # 50 MB, 50 kB
    f"{NAME}-cut.zip": (
        _zip({f"{NAME}.csv": GOOD_ROWS.encode() * 50})[:-30],  # central directory cut off
        "neither a trades/aggTrades CSV",
    ),
}


@pytest.mark.parametrize("name", sorted(NOT_TRADE_DATA))
def test_a_file_that_is_no_trade_data_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    """Alone, such a file is refused with one line that names it and says why."""
    data, reason = NOT_TRADE_DATA[name]
    path = tmp_path / name
    path.write_bytes(data)
    outcome, sink = replay(path)
    assert isinstance(outcome, ReplayError), outcome
    assert "\n" not in str(outcome) and name in str(outcome) and reason in str(outcome)
    assert len(str(outcome)) < 400
    assert sink.ticks == []


def test_a_folder_replays_its_good_files_and_reports_each_bad_one(tmp_path: Path) -> None:
    """In a folder, every file that is no trade data is skipped with its reason, counted, and
    the good files' rows all arrive."""
    for name, (data, _) in NOT_TRADE_DATA.items():
        (tmp_path / name).write_bytes(data)
    good = tmp_path / "ETHUSDT-aggTrades-2026-11-21.csv"
    good.write_text(GOOD_ROWS)
    outcome, sink = replay(tmp_path)
    assert isinstance(outcome, ReplayStats), outcome
    assert [(t.symbol, t.trade_id) for t in sink.ticks] == [("ETHUSDT", i) for i in range(1, 6)]
    skipped = [detail for reason, detail in sink.malformed if reason == "replay_file_skipped"]
    assert len(skipped) == len(NOT_TRADE_DATA) == len(sink.malformed)
    for name, (_, reason) in NOT_TRADE_DATA.items():
        assert sum(name in d and reason in d for d in skipped) == 1, name


@pytest.mark.slow
async def test_fuzzed_files_through_a_replay_gateway_land_once_in_redis(
    settings: Settings, aredis: aioredis.Redis, tmp_path: Path
) -> None:
    """End to end: fuzzed CSVs of both legs (plain and zipped) and files that are no trade data,
    in one folder, replayed by a gateway into the real Redis. Every good row is in its stream
    once, with its exact text, and fully in the price series (no sample refused); every broken
    line and skipped file is counted in the gateway's malformed counters."""
    rng = random.Random(12)
    expected: dict[str, list[tuple[Any, ...]]] = {}
    bad = Counter()
    whats = [*ROW_WHATS[:5] * 30, *ROW_WHATS[5:] * 3]
    for symbol, kind, zipped in (("BTCUSDT", "aggTrades", False), ("ETHUSDT", "trades", True)):
        rng.shuffle(whats)
        name, data, expect = build_csv(
            rng, whats, kind, header=True, shuffle=True, zipped=zipped, truncate=True,
            symbol=symbol, first_id=1000,
        )  # fmt: skip
        (tmp_path / name).write_bytes(data)
        expected[symbol] = expect.ticks
        bad.update(reason for reason, _ in expect.bad)
    for name in ("archive.zip", f"{NAME}-png.zip", f"{NAME}-noise.csv", f"{NAME}-header.csv"):
        (tmp_path / name).write_bytes(NOT_TRADE_DATA[name][0])
    bad["replay_file_skipped"] = 4
    good = sum(len(rows) for rows in expected.values())
    opts = {"source": f"replay:{tmp_path}", "speed": 0.0, "pairs": ("ETHUSDT/BTCUSDT",)}
    async with running_service(Gateway, settings.model_copy(update=opts), client=aredis) as gw:
        counters = gw.ingest.counters
        deadline = time.monotonic() + 30
        while counters["published"] < good or gw.ingest.buffered:
            assert time.monotonic() < deadline, f"published {counters['published']} of {good}"
            await asyncio.sleep(0.02)
        health = dict(gw.health())
    assert health["malformed_by_reason"] == dict(bad)
    assert health["published"] == health["ticks"] == good
    for name in ("duplicates", "lost", "write_errors", "write_refused_samples"):
        assert health.get(name, 0) == 0, (name, health[name])
    for symbol, rows in expected.items():
        entries = await aredis.xrange(keys.tick_stream(symbol))
        ticks = [decode(fields, entry_id, symbol) for entry_id, fields in entries]
        assert [(t.symbol, t.trade_id, t.price, t.qty, t.side, t.trade_ts) for t in ticks] == rows
        samples = await aredis.execute_command("TS.RANGE", keys.price_series(symbol), "-", "+")
        last_by_ms = {row[5]: row[2] for row in rows}  # the series keeps each ms's last trade
        assert {int(ms): value for ms, value in samples} == {
            ms: float(price) for ms, price in last_by_ms.items()
        }
