"""Fixtures of the Archivist tests (tests cannot import helpers under --import-mode=importlib):

- ``market``: publishes ticks the way the gateway does (real stream ids ``<trade ms>-<trade
  id>``, ghost ids ``*``, optional TimeSeries candles) and remembers what it published;
- ``run_archivist``: runs the Archivist in this event loop (``async with run_archivist(cfg)``);
- ``archive``: reads the archive as any Parquet reader would and checks exactly-once;
- ``wait_for``: polls a condition.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import redis

from spreadbus.archivist.service import Archivist
from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.bus.tickschema import to_fields
from spreadbus.config import Settings
from spreadbus.testing.services import running_service

# 2026-11-21 23:58:00 UTC: two minutes before midnight, so ticks span two dates.
BASE_MS = 1795305480000
PAIR = "ETHUSDT/BTCUSDT"
SYMBOLS = ("ETHUSDT", "BTCUSDT")


@dataclass
class Market:
    """Publishes ticks into real Redis and remembers what it published."""

    client: redis.Redis
    next_ms: dict[str, int] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=dict)
    # (symbol, venue, stream id, trade id) of every tick published
    published: list[tuple[str, str, str, int]] = field(default_factory=list)
    candles: set[str] = field(default_factory=set)

    def create_candle_series(self, symbol: str) -> None:
        """The TimeSeries the gateway keeps: per-ms pre-aggregates and 1-minute rules."""
        policies = {"open": "FIRST", "high": "MAX", "low": "MIN", "close": "LAST", "volume": "SUM"}
        for name, policy in policies.items():
            source = keys.candle_source_series(symbol, name)
            if not self.client.exists(source):
                self.client.execute_command("TS.CREATE", source, "DUPLICATE_POLICY", policy)
        aggregations = {
            "open": "first",
            "high": "max",
            "low": "min",
            "close": "last",
            "volume": "sum",
        }
        for name, aggregation in aggregations.items():
            dest = keys.candle_series(symbol, name)
            self.client.execute_command("TS.CREATE", dest, "DUPLICATE_POLICY", "LAST")
            self.client.execute_command(
                "TS.CREATERULE",
                keys.candle_source_series(symbol, name),
                dest,
                "AGGREGATION",
                aggregation,
                60000,
            )
        self.candles.add(symbol)

    def publish(
        self,
        symbol: str,
        n: int,
        *,
        ghost: bool = True,
        step_ms: int = 7,
        per_ms: int = 1,
        start_ms: int = BASE_MS,
    ) -> list[Tick]:
        """``n`` real ticks (``per_ms`` sharing each millisecond), each with a ghost shadow."""
        ms = self.next_ms.get(symbol, start_ms)
        trade_id = self.next_id.get(symbol, 1000)
        ticks: list[Tick] = []
        ghosts: list[tuple[int, int]] = []  # (position of the XADD in the pipeline, trade id)
        pipe = self.client.pipeline(transaction=False)
        for i in range(n):
            trade_id += 1
            if i % per_ms == 0:
                ms += step_ms
            price = f"{100 + (trade_id * 37 % 101) / 100:.2f}"
            qty = f"{(trade_id % 7 + 1) / 1000:.3f}"
            side = "buy" if trade_id % 3 else "sell"
            tick = Tick(symbol, trade_id, price, qty, side, ms, ms + 2, ms + 5.125, "sim")
            ticks.append(tick)
            pipe.xadd(keys.tick_stream(symbol), to_fields(tick), id=tick.stream_id)
            self.published.append((symbol, "sim", tick.stream_id, trade_id))
            if symbol in self.candles:
                for name in ("open", "high", "low", "close"):
                    source = keys.candle_source_series(symbol, name)
                    pipe.execute_command("TS.ADD", source, ms, price)
                source = keys.candle_source_series(symbol, "volume")
                pipe.execute_command("TS.ADD", source, ms, qty)
            if ghost:
                shadow = Tick(symbol, trade_id, price, qty, side, ms, ms + 2, ms + 45.5, "ghost")
                ghosts.append((len(pipe.command_stack), trade_id))
                pipe.xadd(keys.ghost_stream(symbol), to_fields(shadow, ghost=True))
        results = pipe.execute()
        for position, ghost_trade in ghosts:  # ghost ids are assigned by Redis
            self.published.append((symbol, "ghost", results[position].decode(), ghost_trade))
        self.next_ms[symbol] = ms
        self.next_id[symbol] = trade_id
        return ticks

    def trim_all(self, symbol: str) -> None:
        for key in (keys.tick_stream(symbol), keys.ghost_stream(symbol)):
            self.client.xtrim(key, maxlen=0, approximate=False)

    def expected(self) -> pd.DataFrame:
        return pd.DataFrame(self.published, columns=["symbol", "venue", "stream_id", "trade_id"])


def archive_settings(settings: Settings, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": settings.redis_url,
        "data_dir": settings.data_dir,
        "heartbeat_interval": 0.5,
        "archive_interval": 0.3,
        "pairs": PAIR,
    }
    values.update(changes)
    return Settings(**values)


def running(settings: Settings) -> contextlib.AbstractAsyncContextManager[Archivist]:
    """The Archivist running in this event loop until the block ends (clean stop)."""
    return running_service(Archivist, settings)


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        await asyncio.sleep(0.05)


@dataclass
class ArchiveView:
    root: Path

    def read(self, dataset: str) -> pd.DataFrame:
        """The whole dataset as any Parquet reader sees it (pandas + Hive partitioning)."""
        path = self.root / dataset
        if not path.exists():
            return pd.DataFrame()
        return pd.read_parquet(path)

    def visible_files(self) -> list[Path]:
        """Files a reader of the dataset folders sees (nothing hidden: no temporaries)."""
        return [
            p
            for p in self.root.rglob("*")
            if p.is_file() and not any(x.startswith(".") for x in p.relative_to(self.root).parts)
        ]

    def all_files(self) -> list[Path]:
        """Every file below the archive root except the private spool."""
        return [p for p in self.root.rglob("*") if p.is_file() and ".spool" not in p.parts]

    def parquet_files(self, dataset: str = "") -> list[Path]:
        return sorted(
            p
            for p in (self.root / dataset).rglob("*.parquet")
            if ".spool" not in p.parts
            and not any(part.startswith(".") for part in p.relative_to(self.root).parts)
        )

    def assert_exactly_once(self, market: Market) -> pd.DataFrame:
        """The archive holds every published tick once and nothing else."""
        got = self.read("ticks")
        expected = market.expected()
        assert len(got) == len(expected)
        assert not got.duplicated(["symbol", "venue", "stream_id"]).any()
        assert not got.duplicated(["symbol", "venue", "trade_id"]).any()
        key = ["symbol", "venue", "stream_id", "trade_id"]
        merged = got.astype({"symbol": str}).merge(expected, on=key, how="outer", indicator=True)
        assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
        counts = got.astype({"symbol": str}).groupby(["symbol", "venue"]).size().to_dict()
        assert counts == expected.groupby(["symbol", "venue"]).size().to_dict()
        return got


@pytest.fixture
def market(sync_redis: redis.Redis) -> Market:
    return Market(sync_redis)


@pytest.fixture
def arch_settings(settings: Settings) -> Settings:
    return archive_settings(settings)


@pytest.fixture
def archive(data_dir: Path) -> ArchiveView:
    return ArchiveView(data_dir / "archive")


@pytest.fixture
def run_archivist() -> Callable[[Settings], contextlib.AbstractAsyncContextManager[Archivist]]:
    return running


@pytest.fixture(name="wait_for")
def wait_for_fixture() -> Callable[..., Any]:
    return wait_for


@pytest.fixture
def make_settings(settings: Settings) -> Callable[..., Settings]:
    """Archivist settings for this test's Redis and data folder, with changes."""
    return lambda **changes: archive_settings(settings, **changes)
