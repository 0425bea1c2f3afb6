"""markPrice and funding: the parser, the funding interval rule, and the figures end to end
through the gateway (local Binance-protocol server and the sim) and the engine, on real Redis.

Every expected number is written out by hand (or by the sim's documented formula) here.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from spreadbus.bus import keys
from spreadbus.config import Settings
from spreadbus.gateway import simfunding
from spreadbus.gateway.binance import (
    FrameError,
    MarkPrice,
    mark_price_frame,
    parse_frame,
    parse_mark_price,
)
from spreadbus.gateway.funding import FundingBook
from spreadbus.gateway.replay import write_frames
from spreadbus.gateway.service import Gateway
from spreadbus.testing.binance_server import BinanceServer
from spreadbus.testing.services import running_service

H = 3_600_000
DOC_FRAME = (
    b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1562305380000,'
    b'"s":"BTCUSDT","p":"11794.15000000","i":"11784.62659091","P":"11784.25641265",'
    b'"r":"0.00038167","T":1562306400000}}'
)


def test_parses_the_documented_payload() -> None:
    mark = parse_frame(DOC_FRAME, 5.0)
    assert mark == MarkPrice(
        "BTCUSDT", 11794.15, 11784.62659091, 11784.25641265, 0.00038167, 1562306400000,
        1562305380000, 5.0,
    )  # fmt: skip


def test_negative_rates_unknown_fields_and_bad_payloads() -> None:
    data = orjson.loads(DOC_FRAME)["data"]
    assert parse_mark_price({**data, "r": "-0.00012000", "new": 1}, 0.0).funding_rate == -0.00012
    for change, reason in (
        ({"r": "1e-4"}, "bad_number"),
        ({"p": "-1"}, "bad_number"),
        ({"i": "0"}, "bad_price"),
        ({"T": -5}, "bad_number"),
        ({"r": None}, "bad_number"),
    ):
        with pytest.raises(FrameError) as caught:
            parse_mark_price({**data, **change}, 0.0)
        assert caught.value.reason == reason, change
    with pytest.raises(FrameError) as caught:
        parse_mark_price({k: v for k, v in data.items() if k != "T"}, 0.0)
    assert caught.value.reason == "missing_field" and "'T'" in str(caught.value)


def test_frames_the_sim_builds_read_back_exactly() -> None:
    mark = simfunding.sim_mark(7, "ETHUSDT", 1_795_305_601_000, 3500.25)
    back = parse_frame(mark_price_frame(mark), 0.0)
    assert isinstance(back, MarkPrice)
    assert back.mark_price == 3500.25 and back.next_funding_ms == mark.next_funding_ms
    assert back.funding_rate == pytest.approx(mark.funding_rate, abs=5e-9)  # 8 decimals


def test_interval_is_derived_from_successive_funding_times() -> None:
    book = FundingBook()
    t0 = 1_795_305_600_000
    book.on_mark(MarkPrice("SOLUSDT", 180.0, 179.91, 179.91, 1e-4, t0 + 4 * H, t0, 0.0))
    assert book.fields("SOLUSDT")["funding_interval_ms"] == 8 * H  # nothing seen: default
    assert book.fields("SOLUSDT")["funding_interval_source"] == "default"
    book.on_mark(MarkPrice("SOLUSDT", 180.0, 179.91, 179.91, 1e-4, t0 + 4 * H, t0 + 1000, 0.0))
    book.on_mark(MarkPrice("SOLUSDT", 180.0, 179.91, 179.91, 1e-4, t0 + 8 * H, t0 + 4 * H, 0.0))
    fields = book.fields("SOLUSDT")
    assert (fields["funding_interval_ms"], fields["funding_interval_source"]) == (4 * H, "observed")
    # (180 / 179.91 - 1) * 1e4 = 5.0025... bps
    assert fields["mark_index_bps"] == pytest.approx(5.00250125, rel=1e-8)
    late = MarkPrice("SOLUSDT", 1.0, 1.0, 1.0, 0.0, t0, t0 + 5, 0.0)
    book.on_mark(late)  # older than what is there: ignored
    assert book.fields("SOLUSDT")["mark_price"] == 180.0
    assert book.fields("BTCUSDT") == {}


def test_sim_funding_times_follow_the_interval_rule() -> None:
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT"):
        interval = simfunding.funding_interval_ms(symbol)
        assert interval in (H, 4 * H, 8 * H)
        now = 1_795_305_612_345
        nxt = simfunding.next_funding_ms(symbol, now)
        assert nxt % interval == 0 and 0 < nxt - now <= interval
        # one interval later the next funding time has moved by exactly one interval
        assert simfunding.next_funding_ms(symbol, nxt) == nxt + interval
    # the rate drifts slowly: within FUNDING_AMP of 0.01%, and by less than 1e-8 a second
    rates = [simfunding.funding_rate(7, "BTCUSDT", 1_795_305_600_000 + s * 1000) for s in range(60)]
    assert all(abs(r - 1e-4) <= 5e-5 for r in rates)
    assert max(abs(a - b) for a, b in itertools.pairwise(rates)) < 1e-8


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


def _decoded(raw: dict[bytes, bytes]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in raw.items()}


@pytest.mark.slow
async def test_local_server_funding_reaches_feed_series_and_pair_carry(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    """Exact markPrice values through the gateway into state:feed and ts:funding, then the
    engine's carry for ETHUSDT/BTCUSDT, each checked against a hand computation."""
    pair_settings = settings.model_copy(
        update={"pairs": ("ETHUSDT/BTCUSDT",), "window": 60, "heartbeat_interval": 0.5}
    )
    async with BinanceServer() as server:
        gateway_settings = pair_settings.model_copy(
            update={"source": "binance", "binance_ws_url": server.ws_url,
                    "binance_rest_url": server.rest_url}
        )  # fmt: skip
        async with running_service(Gateway, gateway_settings, client=aredis, stop_timeout=15):
            await server.wait_for_subscribers("btcusdt@markPrice@1s")
            await server.wait_for_subscribers("ethusdt@markPrice@1s")
            now = int(time.time() * 1000)
            # 40 s of trades, one per leg per 100 ms, y = 150 + 0.035 x + a small wiggle
            for k in range(400):
                t = now - 40_000 + 100 * k
                x = 98_000.0 + 20.0 * math.sin(k / 7.0) + 0.1 * k
                y = 150.0 + 0.035 * x + 0.05 * math.sin(k / 3.0)
                server.publish_agg_trade("BTCUSDT", f"{x:.1f}", "0.010", trade_time_ms=t)
                server.publish_agg_trade("ETHUSDT", f"{y:.2f}", "0.100", trade_time_ms=t)
            next_eth, next_btc = (now // (8 * H) + 1) * 8 * H, (now // (4 * H) + 1) * 4 * H
            server.publish_mark_price(
                "ETHUSDT",
                "3580.00000000",
                "3578.21000000",
                "0.00010000",
                next_eth,
                event_time_ms=now,
            )
            server.publish_mark_price(
                "BTCUSDT",
                "98049.00000000",
                "98000.00000000",
                "-0.00005000",
                next_btc - 4 * H,
                event_time_ms=now,
            )
            # BTC's funding time rolls: the gateway learns its 4 h interval from the step
            server.publish_mark_price(
                "BTCUSDT",
                "98049.00000000",
                "98000.00000000",
                "-0.00005000",
                next_btc,
                event_time_ms=now + 1,
            )
            await server.flush()

            async def feed(symbol: str) -> dict[str, str] | None:
                fields = _decoded(await aredis.hgetall(keys.feed_state(symbol)))
                return fields if fields.get("mark_event_ms") in (str(now), str(now + 1)) else None

            eth = await eventually(lambda: feed("ETHUSDT"))
            btc = await eventually(lambda: feed("BTCUSDT"))
            assert eth and btc, "no funding in state:feed"
            assert float(eth["mark_price"]) == 3580.0 and float(eth["index_price"]) == 3578.21
            assert float(eth["funding_rate"]) == 0.0001
            assert int(eth["next_funding_ms"]) == next_eth
            assert (eth["funding_interval_ms"], eth["funding_interval_source"]) == (
                str(8 * H), "default",
            )  # fmt: skip
            # (3580 / 3578.21 - 1) * 1e4 = 5.00250... bps
            assert float(eth["mark_index_bps"]) == pytest.approx(5.0025013, rel=1e-6)
            assert btc["mark_event_ms"] == str(now + 1)
            assert (btc["funding_interval_ms"], btc["funding_interval_source"]) == (
                str(4 * H), "observed",
            )  # fmt: skip
            samples = await aredis.execute_command("TS.RANGE", keys.funding_series("BTCUSDT"),
                                                   "-", "+")  # fmt: skip
            assert [(int(t), float(v)) for t, v in samples][-1] == (now + 1, -0.00005)

            from spreadbus.engine.service import QuantEngine  # the units above need no engine

            async with running_service(QuantEngine, pair_settings, stop_timeout=15):

                async def carried() -> dict[str, str] | None:
                    snap = _decoded(await aredis.hgetall(keys.analytics_state("ETHUSDT/BTCUSDT")))
                    # the carry is recomputed each second with the then latest half-life
                    ok = snap.get("carry_half_life_long_bps", "nan") != "nan"
                    return snap if ok else None

                snap = await eventually(carried, timeout=30)
                assert snap, "no carry in the pair snapshot"
    beta = float(snap["beta"])
    # (0.0001 - (-0.00005)) * 1e4 = 1.5 bps; 0.0001 * 1095 + 0.00005 * 2190 = 21.9 %
    assert float(snap["funding_diff_bps"]) == pytest.approx(1.5, rel=1e-9)
    assert float(snap["funding_diff_ann_pct"]) == pytest.approx(21.9, rel=1e-9)
    assert float(snap["mark_index_y_bps"]) == pytest.approx(5.0025013, rel=1e-6)
    assert float(snap["mark_index_x_bps"]) == pytest.approx(5.0, rel=1e-9)  # 98049 / 98000
    gross = 3580.0 + abs(beta) * 98049.0
    long_bps = (-0.0001 * 3580.0 + beta * -0.00005 * 98049.0) / gross * 1e4
    assert float(snap["carry_next_long_bps"]) == pytest.approx(long_bps, rel=1e-9)
    assert float(snap["carry_next_short_bps"]) == pytest.approx(-long_bps, rel=1e-9)
    assert beta == pytest.approx(0.035, rel=0.01)  # the hedge the trades were built with
    # both funding times are hours away, far beyond a half-life of seconds
    assert float(snap["carry_half_life_long_bps"]) == 0.0


@pytest.mark.slow
async def test_sim_source_funding_follows_its_formula(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    sim_settings = settings.model_copy(
        update={"source": "sim", "speed": 1.0, "pairs": ("ETHUSDT/BTCUSDT",), "seed": 11}
    )
    async with running_service(Gateway, sim_settings, client=aredis, stop_timeout=15):

        async def feed() -> dict[str, str] | None:
            fields = _decoded(await aredis.hgetall(keys.feed_state("ETHUSDT")))
            return fields if "funding_rate" in fields else None

        fields = await eventually(feed)
    assert fields, "the sim wrote no funding"
    t = int(fields["mark_event_ms"])
    assert t % 1000 == 0  # one update per sim second
    # the documented formulas, evaluated here by hand for this symbol, seed and time
    phase = 2 * math.pi * simfunding._unit("funding:11:ETHUSDT")
    rate = 1e-4 + 5e-5 * math.sin(2 * math.pi * t / (6 * H) + phase)
    assert float(fields["funding_rate"]) == pytest.approx(rate, abs=5e-9)  # 8 decimals
    interval = simfunding.funding_interval_ms("ETHUSDT")
    assert int(fields["next_funding_ms"]) == (t // interval + 1) * interval
    premium = 3.0 * math.sin(2 * math.pi * t / 600_000 + 2 * math.pi * simfunding._unit(
        "premium:11:ETHUSDT"))  # fmt: skip
    assert float(fields["mark_index_bps"]) == pytest.approx(premium, abs=1e-3)
    samples = await aredis.execute_command("TS.RANGE", keys.funding_series("ETHUSDT"), "-", "+")
    assert samples and int(samples[0][0]) % 1000 == 0


@pytest.mark.slow
async def test_replayed_frames_carry_their_mark_prices(
    settings: Settings, aredis: aioredis.Redis, tmp_path: Any
) -> None:
    """A recording of the live feed (trade and markPrice frames) replays into state:feed."""
    t0 = 1_795_305_600_000
    frames: list[tuple[float, bytes]] = []
    for k in range(5):
        trade = {"stream": "btcusdt@aggTrade", "data": {
            "e": "aggTrade", "E": t0 + 1000 * k + 2, "s": "BTCUSDT", "a": 100 + k,
            "p": "98000.10", "q": "0.010", "f": 200 + k, "l": 200 + k, "T": t0 + 1000 * k,
            "m": False}}  # fmt: skip
        frames.append(((t0 + 1000 * k + 3) / 1000, orjson.dumps(trade)))
        mark = MarkPrice("BTCUSDT", 98000.1, 97990.3, 97990.3, 0.0001 + k * 1e-6,
                         t0 + 8 * H, t0 + 1000 * k + 500, 0.0)  # fmt: skip
        frames.append(((t0 + 1000 * k + 501) / 1000, mark_price_frame(mark)))
    path = tmp_path / "btc.frames"
    write_frames(path, frames)
    replay_settings = settings.model_copy(
        update={"source": f"replay:{path}", "speed": 0.0, "pairs": ("BTCUSDT/ETHUSDT",)}
    )
    async with running_service(Gateway, replay_settings, client=aredis, stop_timeout=15):

        async def feed() -> dict[str, str] | None:
            fields = _decoded(await aredis.hgetall(keys.feed_state("BTCUSDT")))
            return fields if fields.get("mark_event_ms") == str(t0 + 4500) else None

        fields = await eventually(feed)
    assert fields, "the replayed markPrice frames did not reach state:feed"
    assert float(fields["funding_rate"]) == pytest.approx(0.000104, abs=1e-12)
    assert float(fields["index_price"]) == 97990.3
    # (98000.1 / 97990.3 - 1) * 1e4 = 1.000098... bps
    assert float(fields["mark_index_bps"]) == pytest.approx(1.0000989, rel=1e-6)
