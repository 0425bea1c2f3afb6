"""replay:PATH: data-vision CSVs and recorded frames through the sink, paced by the data clock."""

from __future__ import annotations

import asyncio
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from spreadbus.bus.codec import Tick, epoch_ms
from spreadbus.gateway.binance import parse_frame
from spreadbus.gateway.replay import ReplayError, ReplayStats, run_replay, write_frames

AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
TRADES_HEADER = "id,price,qty,quote_qty,time,is_buyer_maker"
T0 = 1_795_314_919_000


class RecordingSink:
    """A TickSink that keeps what it is given; frames go through the live parser."""

    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.frames: list[tuple[bytes | str, float, str]] = []
        self.parsed: list[object] = []
        self.malformed: list[tuple[str, str]] = []
        self.room_waits = 0
        self.pushed_at: list[float] = []  # monotonic time of each tick/frame push

    def on_frame(self, frame: bytes | str, recv_ts: float, source: str) -> None:
        self.frames.append((frame, recv_ts, source))
        self.pushed_at.append(time.monotonic())
        try:
            self.parsed.append(parse_frame(frame, recv_ts, source))
        except ValueError as exc:
            self.parsed.append(exc)

    def on_ticks(self, ticks: Sequence[Tick]) -> None:
        self.ticks.extend(ticks)
        self.pushed_at.extend([time.monotonic()] * len(ticks))

    def on_malformed(self, reason: str, detail: str) -> None:
        self.malformed.append((reason, detail))

    async def wait_for_room(self) -> None:
        self.room_waits += 1


def agg_rows(n: int, *, start_id: int = 2871449921, t0: int = T0, step_ms: int = 7) -> list[str]:
    rows = []
    for i in range(n):
        price = f"{98231.4 + (i % 13) * 0.1:.1f}"
        maker = "true" if i % 3 else "false"
        fid = 6198474650 + 2 * i
        rows.append(f"{start_id + i},{price},0.012,{fid},{fid + 1},{t0 + i * step_ms},{maker}")
    return rows


def trade_rows(n: int, *, t0: int = T0, step_ms: int = 5) -> list[str]:
    return [
        f"{6198474650 + i},3501.2{i % 10},1.250,4376.5,{t0 + i * step_ms},{str(i % 2 == 0).lower()}"
        for i in range(n)
    ]


def write_csv(
    path: Path, rows: list[str], header: str | None = None, *, zipped: bool = False
) -> Path:
    text = "\n".join(([header] if header else []) + rows) + "\n"
    if zipped:
        target = path.with_name(path.name + ".zip")
        with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(path.name, text)
        return target
    path.write_text(text)
    return path


async def replay(
    path: Path | str, speed: float = 0, *, recorded_recv: bool = False, batch_size: int = 2000
) -> tuple[ReplayStats, RecordingSink]:
    sink = RecordingSink()
    stats = await run_replay(
        str(path),
        sink,
        asyncio.Event(),
        speed=speed,
        recorded_recv=recorded_recv,
        batch_size=batch_size,
    )
    return stats, sink


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
@pytest.mark.parametrize("zipped", [False, True], ids=["csv", "zip"])
async def test_agg_trades_csv(tmp_path: Path, header: bool, zipped: bool) -> None:
    path = write_csv(
        tmp_path / "BTCUSDT-aggTrades-2026-11-21.csv",
        agg_rows(50),
        AGG_HEADER if header else None,
        zipped=zipped,
    )
    before = epoch_ms()
    stats, sink = await replay(path)
    assert (stats.files, stats.ticks, stats.frames, stats.malformed) == (1, 50, 0, 0)
    assert not sink.malformed
    assert not sink.frames
    first = sink.ticks[0]
    assert (first.symbol, first.trade_id, first.price, first.qty, first.side) == (
        "BTCUSDT",
        2871449921,
        "98231.4",
        "0.012",
        "buy",  # is_buyer_maker false: the taker bought
    )
    assert first.trade_ts == first.event_ts == T0
    assert first.source == "replay"
    assert sink.ticks[1].side == "sell"
    assert sink.ticks[12].price == "98232.6"
    assert [t.trade_id for t in sink.ticks] == list(range(2871449921, 2871449921 + 50))
    assert all(before <= t.recv_ts <= epoch_ms() for t in sink.ticks)  # wall clock at push
    assert (stats.first_ms, stats.last_ms) == (T0, T0 + 49 * 7)


@pytest.mark.parametrize("header", [True, False], ids=["header", "no-header"])
@pytest.mark.parametrize("zipped", [False, True], ids=["csv", "zip"])
async def test_trades_csv(tmp_path: Path, header: bool, zipped: bool) -> None:
    path = write_csv(
        tmp_path / "ETHUSDT-trades-2026-11-21.csv",
        trade_rows(30),
        TRADES_HEADER if header else None,
        zipped=zipped,
    )
    stats, sink = await replay(path)
    assert (stats.ticks, stats.malformed) == (30, 0)
    t = sink.ticks[3]
    assert (t.symbol, t.trade_id, t.price, t.qty, t.side, t.trade_ts) == (
        "ETHUSDT",
        6198474653,
        "3501.23",
        "1.250",  # exact text, trailing zero kept
        "buy",
        T0 + 15,
    )


async def test_microsecond_timestamps_become_milliseconds(tmp_path: Path) -> None:
    rows = [
        f"{100 + i},0.35012,120,{100 + i},{100 + i},{(T0 + i) * 1000 + 999},true" for i in range(3)
    ]
    path = write_csv(tmp_path / "DOGEUSDT-aggTrades-2026-11-21.csv", rows, AGG_HEADER)
    _, sink = await replay(path)
    assert [t.trade_ts for t in sink.ticks] == [T0, T0 + 1, T0 + 2]
    assert all(t.event_ts == t.trade_ts for t in sink.ticks)


async def test_broken_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    rows = agg_rows(6)
    rows[1] = "2871449922,98231.5,0.012"  # truncated row
    rows[2] = rows[2].replace("98231.6", "abc")  # non-numeric price
    rows[3] = rows[3].replace("98231.7", "0.0")  # zero price
    rows[4] = rows[4].replace(f",{T0 + 28},", ",yesterday,")  # broken time
    path = write_csv(tmp_path / "BTCUSDT-aggTrades-2026-11-21.csv", rows, AGG_HEADER)
    stats, sink = await replay(path)
    assert (stats.ticks, stats.malformed) == (2, 4)
    assert [t.trade_id for t in sink.ticks] == [2871449921, 2871449926]
    assert [reason for reason, _ in sink.malformed] == [
        "bad_csv_row",
        "bad_number",
        "bad_price",
        "bad_number",
    ]
    assert "BTCUSDT-aggTrades-2026-11-21.csv:3" in sink.malformed[0][1]  # file and line


def frame(symbol: str, agg_id: int, trade_ms: int, price: str = "98231.40") -> bytes:
    data = {
        "e": "aggTrade",
        "E": trade_ms + 5,
        "s": symbol,
        "a": agg_id,
        "p": price,
        "q": "0.012",
        "f": 1,
        "l": 2,
        "T": trade_ms,
        "m": True,
    }
    return orjson.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data})


@pytest.mark.parametrize(
    "url", [None, "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade"]
)
async def test_recorded_frames_go_through_the_live_parser(tmp_path: Path, url: str | None) -> None:
    recorded = [(T0 / 1000 + i * 0.01, frame("BTCUSDT", 10 + i, T0 + i * 10)) for i in range(20)]
    path = tmp_path / "frames.log"
    assert write_frames(path, recorded, url=url) == 20
    stats, sink = await replay(path)
    assert (stats.frames, stats.ticks, stats.malformed) == (20, 0, 0)
    assert stats.urls == ([url] if url else [])
    assert [f for f, _, _ in sink.frames] == [f for _, f in recorded]
    assert {source for _, _, source in sink.frames} == {"replay"}
    parsed = [p for p in sink.parsed if isinstance(p, Tick)]
    assert [t.trade_id for t in parsed] == list(range(10, 30))
    assert parsed[0].source == "replay"
    assert parsed[0].price == "98231.40"

    _, recorded_sink = await replay(path, recorded_recv=True)
    assert [recv for _, recv, _ in recorded_sink.frames] == pytest.approx(
        [s * 1000 for s, _ in recorded]
    )


async def test_bad_frame_lines_are_reported_and_bad_frames_reach_the_parser(tmp_path: Path) -> None:
    path = tmp_path / "frames.txt"
    path.write_bytes(
        b"1795314919.100: " + frame("BTCUSDT", 1, T0) + b"\n"
        b"this is not a frame line\n"
        b"\n"
        b"1795314919.200: {not json\n"
        b"1795314919.300:\n"
        b"1795314919.400: " + frame("BTCUSDT", 2, T0 + 300) + b"\n"
    )
    stats, sink = await replay(path)
    assert (stats.frames, stats.malformed) == (3, 2)
    assert [reason for reason, _ in sink.malformed] == ["bad_frame_line", "bad_frame_line"]
    assert "frames.txt:2" in sink.malformed[0][1]
    assert isinstance(sink.parsed[1], ValueError)  # the parser itself rejects the broken JSON
    assert [p.trade_id for p in sink.parsed if isinstance(p, Tick)] == [1, 2]


async def test_directory_of_two_symbols_is_merged_by_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "BTCUSDT").mkdir(parents=True)
    (data / "ETHUSDT").mkdir()
    write_csv(
        data / "BTCUSDT" / "BTCUSDT-aggTrades-2026-11-21.csv",
        agg_rows(40, step_ms=10),
        AGG_HEADER,
        zipped=True,
    )
    write_csv(
        data / "ETHUSDT" / "ETHUSDT-trades-2026-11-21.csv", trade_rows(40, t0=T0 + 3, step_ms=9)
    )
    (data / "BTCUSDT" / "BTCUSDT-aggTrades-2026-11-21.csv.zip.CHECKSUM").write_text("abc  x.zip\n")
    (data / "README.txt").write_text("downloaded from data.binance.vision\n")
    stats, sink = await replay(data)
    assert (stats.files, stats.ticks, stats.malformed) == (2, 80, 0)
    assert len(stats.skipped_files) == 1
    assert "README.txt" in stats.skipped_files[0]
    assert [r for r, _ in sink.malformed] == ["replay_file_skipped"]  # said, not silent
    times = [t.trade_ts for t in sink.ticks]
    assert times == sorted(times)
    assert {t.symbol for t in sink.ticks[:4]} == {"BTCUSDT", "ETHUSDT"}  # interleaved
    for symbol in ("BTCUSDT", "ETHUSDT"):
        ids = [t.trade_id for t in sink.ticks if t.symbol == symbol]
        assert ids == sorted(ids)
        assert len(ids) == 40


async def test_speed_zero_is_fast_and_waits_for_room(tmp_path: Path) -> None:
    # 20 000 rows spanning 10 hours of data time
    path = write_csv(
        tmp_path / "BTCUSDT-aggTrades-2026-11-21.csv", agg_rows(20_000, step_ms=1800), AGG_HEADER
    )
    started = time.monotonic()
    stats, sink = await replay(path, speed=0, batch_size=1000)
    assert time.monotonic() - started < 10
    assert stats.ticks == 20_000
    assert not stats.stopped
    assert sink.room_waits >= 19


async def test_speed_paces_by_the_data_clock(tmp_path: Path) -> None:
    # 0.6 s of data time: at speed 2 about 0.3 s of wall time, in order
    rows = agg_rows(7, step_ms=100)
    path = write_csv(tmp_path / "BTCUSDT-aggTrades-2026-11-21.csv", rows, AGG_HEADER)
    started = time.monotonic()
    stats, sink = await replay(path, speed=2.0)
    elapsed = time.monotonic() - started
    assert stats.ticks == 7
    assert 0.25 <= elapsed < 5  # loose: never faster than the data clock allows
    assert [t.trade_id for t in sink.ticks] == sorted(t.trade_id for t in sink.ticks)
    gaps = [b - a for a, b in zip(sink.pushed_at, sink.pushed_at[1:], strict=False)]
    assert sum(gaps) >= 0.25
    assert max(gaps) >= 0.03

    recorded = [(T0 / 1000 + i * 0.05, frame("BTCUSDT", i + 1, T0 + i * 50)) for i in range(5)]
    write_frames(tmp_path / "frames.log", recorded)
    started = time.monotonic()
    await replay(tmp_path / "frames.log", speed=1.0)
    assert 0.18 <= time.monotonic() - started < 5


async def test_stop_interrupts_a_slow_replay(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "BTCUSDT-aggTrades-2026-11-21.csv", agg_rows(3, step_ms=60_000), AGG_HEADER
    )
    sink = RecordingSink()
    stop = asyncio.Event()
    task = asyncio.create_task(run_replay(str(path), sink, stop, speed=1.0))
    await asyncio.sleep(0.2)
    stop.set()
    stats = await asyncio.wait_for(task, 5)
    assert stats.stopped
    assert stats.ticks == 1


async def test_replay_prefix_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_csv(tmp_path / "BTCUSDT-aggTrades-2026-11-21.csv", agg_rows(3), AGG_HEADER)
    monkeypatch.chdir(tmp_path)
    stats, _ = await replay("replay:BTCUSDT-aggTrades-2026-11-21.csv")
    assert stats.ticks == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (None, None, "does not exist"),
        ("BTCUSDT-aggTrades-2026-11-21.csv", "", "is empty"),
        ("BTCUSDT-aggTrades-2026-11-21.csv", AGG_HEADER + "\n", "no readable rows"),
        ("BTCUSDT-aggTrades-2026-11-21.csv", "1,abc,1,1,1,1,true\n", "no readable rows"),
        (
            "trades.csv",
            TRADES_HEADER + "\n1,2.5,1,2.5,1795314919000,true\n",
            "cannot tell the symbol",
        ),
        ("BTCUSDT-aggTrades-2026-11-21.csv", "a,b,c,d,e,f,g\n", "unrecognised CSV header"),
        ("notes.txt", "hello\n", "neither a trades/aggTrades CSV nor a frames file"),
    ],
)
async def test_unusable_sources_raise_one_line_errors(
    tmp_path: Path, name: str | None, content: str | None, message: str
) -> None:
    path = tmp_path / (name or "missing.csv")
    if content is not None:
        path.write_text(content)
    with pytest.raises(ReplayError, match=message) as info:
        await replay(path)
    assert "\n" not in str(info.value)


async def test_empty_directory_and_bad_zip_raise(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReplayError, match="no replayable file"):
        await replay(tmp_path / "empty")
    bad = tmp_path / "BTCUSDT-aggTrades-2026-11-21.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("BTCUSDT-aggTrades-2026-11-21.csv", "")
    with pytest.raises(ReplayError, match="is empty"):
        await replay(bad)
    with pytest.raises(ReplayError, match="speed"):
        await replay(bad, speed=-1)


def test_write_frames_refuses_multi_line_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one line"):
        write_frames(tmp_path / "f.log", [(1.0, b'{"a":\n1}')])


async def test_corrupt_zip_member_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-aggTrades-2026-11-21.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("BTCUSDT-aggTrades-2026-11-21.csv", "\n".join(agg_rows(5000)) + "\n")
    data = bytearray(path.read_bytes())
    at = data.index(b"2871454900,")  # near the end: detected mid-replay, at the member's end
    data[at] = ord("3")  # still a valid row, but the member's CRC no longer matches
    path.write_bytes(bytes(data))
    sink = RecordingSink()
    with pytest.raises(ReplayError, match=r"failed while reading.*Bad CRC-32") as info:
        await run_replay(str(path), sink, asyncio.Event(), speed=0)
    assert "\n" not in str(info.value)
    assert len(sink.ticks) > 4000  # what was read before the damage was delivered
