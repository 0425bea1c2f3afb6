"""Fuzzing the Binance frame path (issue 12): hypothesis-made frames, valid and broken, through
the pure parser and through the local Binance server into a running gateway on the real Redis.

Every frame is built together with what it must become (a tick, a skipped off-book fill, a
control reply, an unsubscribed symbol, or one malformed reason), from the protocol in
shared/BINANCE.md and not from the parser's code: the expectation is the reference. Broken
frames carry exactly one defect each, so the reason they must be counted under is unambiguous.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spreadbus.bus import keys
from spreadbus.bus.codec import Tick
from spreadbus.config import Settings
from spreadbus.gateway.binance import ControlReply, FrameError, Skipped, parse_frame, stream_name
from spreadbus.gateway.service import Gateway
from spreadbus.testing.binance_server import BinanceServer
from spreadbus.testing.services import running_service

try:  # issue 14 moves the stream entry layout to bus.tickschema: read it there once it lands
    from spreadbus.bus.tickschema import decode
except ImportError:  # until then, the codec's decoder (it needs neither entry id nor symbol)
    from spreadbus.bus.codec import tick_from_fields

    def decode(fields: Any, entry: bytes | str, symbol: str) -> Tick:
        return tick_from_fields(fields)


SYMBOLS = ("BTCUSDT", "ETHUSDT")  # the gateway's pair ETHUSDT/BTCUSDT
TICK, SKIPPED, CONTROL, ERROR_REPLY, UNSUBSCRIBED = (
    "tick", "skipped", "control", "error_reply", "unsubscribed",
)  # fmt: skip
NOT_MALFORMED = {TICK, SKIPPED, CONTROL, ERROR_REPLY, UNSUBSCRIBED}
# BINANCE.md: prices and quantities as decimal text, and no leading zeros (nor does
# RedisTimeSeries take any: "007" and "00.5" are refused as sample values)
DECIMAL = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")
RESERVED = {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "t", "X"}
RESERVED |= {"stream", "data", "id", "code", "result", "msg"}


def fuzz(examples: int) -> settings:
    """Hypothesis settings of every fuzz run here: ``examples`` batches."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,  # the same frames on every run: CI stays stable
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class Slot:
    """A value filled in when the frame is sent: the trade id or the trade time (ms)."""

    def __init__(self, name: str) -> None:
        self.name = name


TRADE_ID, TRADE_MS = Slot("id"), Slot("ms")


@dataclass(frozen=True)
class Case:
    """One frame to send and what it must become (a malformed reason, or one of NOT_MALFORMED).

    ``payload`` may hold :class:`Slot` values; ``wrap`` is the combined-stream name (None: a
    bare payload); ``raw`` is sent verbatim instead; ``cut`` truncates the rendered frame."""

    outcome: str
    payload: Any = None
    wrap: Any = None
    raw: bytes | None = None
    cut: float | None = None

    def fill(self, trade_id: int, trade_ms: int) -> Any:
        def value(v: Any) -> Any:
            if v is TRADE_ID:
                return trade_id
            return trade_ms if v is TRADE_MS else v

        if not isinstance(self.payload, dict):
            return self.payload
        return {k: value(v) for k, v in self.payload.items()}

    def render(self, trade_id: int, trade_ms: int) -> bytes:
        if self.raw is not None:
            return self.raw
        message = self.fill(trade_id, trade_ms)
        if self.wrap is not None:
            message = {"stream": self.wrap, "data": message}
        # stdlib json, not orjson: it writes integers beyond 64 bits (orjson refuses them)
        frame = json.dumps(message, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        if self.cut is not None:  # a strict prefix (never valid JSON), cut between characters
            frame = frame[: int(len(frame) * self.cut)]
        return frame.encode()


# ---- frame recipes ---------------------------------------------------------------------------
# Hypothesis draws a recipe per frame, (what, seed): what kind of frame and which defect, and a
# seed from which a random.Random fills in the content. A hypothesis draw costs about 0.1-0.5 ms
# on this machine, and a frame drawn field by field takes ~50 of them; the recipe takes two, so
# 10,000+ frames fit in seconds, and a failure still shrinks to the simplest kind and seed.
WHATS = (
    "valid", "valid", "valid", "valid", "padded", "off_book", "foreign", "control",
    "error_reply", "drop", "event", "decimal", "zero_price", "int", "side", "data", "top",
    "no_data", "truncated", "garbage", "deep", "nan", "trailing", "binary",
)  # fmt: skip
REQUIRED = {
    "aggTrade": ["s", "a", "p", "q", "T", "m"],
    "trade": ["X", "s", "t", "p", "q", "T", "m", "E"],
}
NOT_DECIMALS = [
    "", "-1", "+1", "1e5", "1E5", "nan", "inf", "Infinity", " 1", "1 ", ".5", "5.", "1..2",
    "1.2.3", "0x10", "1_000", "１２", "²", "٣", "1,5", "00", "01", "00.5", "007.25",
    "9" * 400, "1" + "0" * 400 + ".5",  # decimal text, but beyond a double: inf
]  # fmt: skip


def rand_text(rng: random.Random, max_size: int = 12) -> str:
    """Any text UTF-8 can carry: ASCII, control characters, the BMP and beyond (no surrogates)."""
    chars = []
    for _ in range(rng.randint(0, max_size)):
        r = rng.random()
        if r < 0.5:
            chars.append(chr(rng.randint(0x20, 0x7E)))
        elif r < 0.6:
            chars.append(chr(rng.randint(0, 0x1F)))
        elif r < 0.9:
            chars.append(chr(rng.randint(0xA0, 0xD7FF)))
        else:
            chars.append(chr(rng.randint(0xE000, 0x10FFFF)))
    return "".join(chars)


def rand_int(rng: random.Random, low: int = -(2**63), high: int = 2**64 - 1) -> int:
    """Edges (0, 1, 2^63 - 1, 2^64 - 1, ...) half the time, else any size of integer."""
    edges = [v for v in (0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**64 - 1) if low <= v <= high]
    if edges and rng.random() < 0.5:
        return rng.choice(edges)
    return max(low, min(high, rng.getrandbits(rng.randint(1, 64)) * rng.choice((1, 1, -1))))


def rand_float(rng: random.Random) -> float:
    return rng.choice([0.0, -0.0, 1.5, 1e308, 5e-324, rng.uniform(-1e6, 1e6)])


def rand_json(rng: random.Random, depth: int = 0) -> Any:
    """Any JSON value, nested at most two deep."""
    pick = rng.randrange(7 if depth < 2 else 5)
    if pick == 0:
        return None
    if pick == 1:
        return rng.random() < 0.5
    if pick == 2:
        return rand_int(rng)
    if pick == 3:
        return rand_float(rng)
    if pick == 4:
        return rand_text(rng)
    if pick == 5:
        return [rand_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rand_text(rng, 4): rand_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def rand_decimal(rng: random.Random, positive: bool) -> str:
    """Decimal text as Binance sends it; ``positive``: above zero."""
    if rng.random() < 0.02:
        return "1" + "0" * 300  # large but finite
    text = str(rand_int(rng, 0, 10**12))
    places = rng.randint(0, 10)
    if places:
        text += "." + "".join(rng.choice("0123456789") for _ in range(places))
    if positive and not text.strip("0."):
        return text + "1" if "." in text else "1"
    return text


def _not_json(rng: random.Random, keep: Callable[[Any], bool]) -> Any:
    while not keep(value := rand_json(rng)):
        pass
    return value


def rand_payload(rng: random.Random, fixed_ids: bool) -> tuple[str, dict[str, Any]]:
    """A valid aggTrade or MARKET trade payload, keys in any order, unknown fields added. With
    ``fixed_ids`` its id and times are drawn (the parser alone), else they are send-time slots."""
    kind = rng.choice(("aggTrade", "trade"))
    ident: Any = rand_int(rng, 0) if fixed_ids else TRADE_ID
    ms: Any = rand_int(rng, 0) if fixed_ids else TRADE_MS
    common = {"s": rng.choice(SYMBOLS), "p": rand_decimal(rng, positive=True)}
    common |= {"q": rand_decimal(rng, positive=False), "T": ms, "m": rng.random() < 0.5}
    if kind == "aggTrade":
        payload = {"e": "aggTrade", **common, "a": ident, "f": 1, "l": 2}
        if rng.random() < 0.5:
            payload["E"] = ms  # optional: the trade time stands in for the event time
    else:
        payload = {"e": "trade", "E": ms, **common, "t": ident, "X": "MARKET"}
    for _ in range(rng.choice((0, 0, 1, 3))):
        key = rand_text(rng, 6)
        if key not in RESERVED:
            payload[key] = rand_json(rng)
    order = list(payload)
    rng.shuffle(order)
    return kind, {k: payload[k] for k in order}


def rand_wrapper(rng: random.Random, kind: str, symbol: str) -> Any:
    """The combined-stream name, right or wrong (the payload decides, not the wrapper), or none."""
    pick = rng.randrange(4)
    if pick == 0:
        return None
    if pick == 1:
        return stream_name(symbol, "aggTrade" if kind == "aggTrade" else "trade")
    return rand_text(rng, 20) if pick == 2 else _not_json(rng, lambda v: v is not None)


def rand_bad_int(rng: random.Random) -> Any:
    return rng.choice(
        [
            -rand_int(rng, 1, 2**63),
            2**64 + rand_int(rng, 0),  # beyond 64 bits: orjson reads it as a float
            rand_float(rng),
            str(rand_int(rng, 0)),
            rng.random() < 0.5,
            None,
            [rand_int(rng, 0, 9)],
        ]
    )


def rand_bad_decimal(rng: random.Random) -> Any:
    pick = rng.randrange(4)
    if pick == 0:
        return rng.choice(NOT_DECIMALS)
    if pick == 1:
        while DECIMAL.fullmatch(text := rand_text(rng, 20)):
            pass
        return text
    return _not_json(rng, lambda v: not isinstance(v, str))


def make_case(what: str, seed: int, *, fixed_ids: bool = False) -> Case:
    """One frame from its recipe: valid, off-book, control, foreign symbol, or valid but for
    exactly one defect (what it must be counted as is decided here, by construction)."""
    rng = random.Random(seed)
    kind, payload = rand_payload(rng, fixed_ids)
    wrap = rand_wrapper(rng, kind, payload["s"])
    id_key = "a" if kind == "aggTrade" else "t"
    if what == "valid" or (what == "off_book" and kind == "aggTrade"):
        return Case(TICK, payload, wrap)
    if what == "padded":  # a huge line that is still a valid trade
        return Case(TICK, {**payload, "zz": "x" * rng.randint(1_000, 64_000)}, wrap)
    if what == "off_book":
        fill = rng.choice(["INSURANCE_FUND", "ADL", "NA", rand_text(rng), rand_int(rng), None])
        return Case(SKIPPED, {**payload, "X": "NA" if fill == "MARKET" else fill}, wrap)
    if what == "foreign":
        symbol = rng.choice(["XRPUSDT", "btcusdt", "BTCUSDT ", "", rand_text(rng), rand_int(rng)])
        symbol = rng.choice([symbol, None, [payload["s"]]])
        return Case(UNSUBSCRIBED, {**payload, "s": "" if symbol in SYMBOLS else symbol}, wrap)
    if what == "control":
        return Case(CONTROL, {"result": rand_json(rng), "id": rand_int(rng, 0)})
    if what == "error_reply":
        reply = {"code": rng.randint(-5, 5), "msg": rand_text(rng, 30)}
        if rng.random() < 0.5:
            reply["id"] = rng.choice((rand_int(rng, 0), None))
        return Case(ERROR_REPLY, reply)
    if what == "drop":
        field = rng.choice(REQUIRED[kind])
        return Case("missing_field", {k: v for k, v in payload.items() if k != field}, wrap)
    if what == "event":
        if rng.random() < 0.5:
            return Case("unknown_event", {k: v for k, v in payload.items() if k != "e"}, wrap)
        event = _not_json(rng, lambda v: v not in ("aggTrade", "trade"))
        return Case("unknown_event", {**payload, "e": event}, wrap)
    if what == "decimal":
        return Case("bad_number", {**payload, rng.choice("pq"): rand_bad_decimal(rng)}, wrap)
    if what == "zero_price":
        zero = rng.choice(["0", "0.0", "0.00000000"])
        return Case("bad_price", {**payload, "p": zero}, wrap)
    if what == "int":
        field = rng.choice([id_key, "T"] + (["E"] if "E" in payload else []))
        return Case("bad_number", {**payload, field: rand_bad_int(rng)}, wrap)
    if what == "side":
        side = _not_json(rng, lambda v: not isinstance(v, bool))
        return Case("bad_side", {**payload, "m": side}, wrap)
    if what == "data":  # a combined frame whose data is not an object
        value = _not_json(rng, lambda v: not isinstance(v, dict))
        return Case("not_object", value, rand_text(rng, 20))
    if what == "top":  # JSON, but not an object
        return Case("not_object", _not_json(rng, lambda v: not isinstance(v, dict)))
    if what == "no_data":  # a combined-stream wrapper without its data
        return Case("unknown_event", {"stream": wrap if wrap is not None else "x@aggTrade"})
    if what == "truncated":
        return Case("malformed_json", payload, wrap, cut=rng.random())
    if what == "garbage":
        head = rng.choice([*"x<}]),:#@!'", "\x00", "\u2028", "nulx", "trux"])
        return Case("malformed_json", raw=(head + rand_text(rng, 60)).encode())
    if what == "deep":  # nesting beyond the decoder's depth limit
        depth = rng.randint(1100, 3000)
        return Case("malformed_json", raw=b"[" * depth + b"]" * depth)
    if what == "nan":
        token = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"undefined"])
        return Case("malformed_json", raw=b'{"e":"aggTrade","p":' + token + b"}")
    if what == "trailing":
        text = Case(TICK, payload, wrap).render(1, 1)
        return Case("malformed_json", raw=text + rng.choice([b"x", b"}", b",{}", b" 1"]))
    # binary: not UTF-8 at all (only the parser sees it: a text frame must be UTF-8)
    return Case("malformed_json", raw=b"\xff" + rng.randbytes(rng.randint(0, 60)))


def cases(*, fixed_ids: bool = False, binary: bool = True) -> st.SearchStrategy[Case]:
    whats = WHATS if binary else tuple(w for w in WHATS if w != "binary")
    return st.builds(
        lambda what, seed: make_case(what, seed, fixed_ids=fixed_ids),
        st.sampled_from(whats),
        st.integers(0, 2**32 - 1),
    )


# ---- the parser ----------------------------------------------------------------------------
def _check_parsed(case: Case, frame: bytes, outcome: Any) -> None:
    """``outcome`` is parse_frame's result or the FrameError it raised."""
    shown = frame[:300]
    if case.outcome in NOT_MALFORMED:
        assert not isinstance(outcome, FrameError), f"{shown!r}: refused as {outcome.reason}"
    else:
        assert isinstance(outcome, FrameError), f"{shown!r}: not refused ({outcome!r})"
        assert outcome.reason == case.outcome, f"{shown!r}: {outcome.reason}, {outcome}"
        return
    if case.outcome == SKIPPED:
        assert isinstance(outcome, Skipped), shown
    elif case.outcome in (CONTROL, ERROR_REPLY):
        assert isinstance(outcome, ControlReply), shown
        assert outcome.is_error == (case.outcome == ERROR_REPLY), shown
        assert outcome.id == case.payload.get("id")
    else:
        assert isinstance(outcome, Tick), shown
        data = case.fill(0, 0)
        if case.outcome == UNSUBSCRIBED:
            assert outcome.symbol not in SYMBOLS
            return
        assert outcome.symbol == data["s"]
        assert outcome.trade_id == data["a" if data["e"] == "aggTrade" else "t"]
        assert (outcome.price, outcome.qty) == (data["p"], data["q"])
        assert outcome.side == ("sell" if data["m"] else "buy")
        assert outcome.trade_ts == data["T"]
        assert outcome.event_ts == data.get("E", data["T"])
        assert (outcome.recv_ts, outcome.source) == (1234.5, "fuzz")


def test_parser_sorts_every_fuzzed_frame_into_its_outcome() -> None:
    """10,000+ frames: each valid one parses to exactly the trade sent, each broken one raises
    FrameError with the reason of its one defect, and nothing else escapes."""
    seen: Counter[str] = Counter()

    @fuzz(560)
    @given(st.lists(cases(fixed_ids=True), min_size=10, max_size=30))
    def run(batch: list[Case]) -> None:
        for case in batch:
            frame = case.render(0, 0)
            try:
                outcome: Any = parse_frame(frame, 1234.5, "fuzz")
            except FrameError as exc:
                outcome = exc
            _check_parsed(case, frame, outcome)
            seen[case.outcome] += 1
            seen["frames"] += 1

    run()
    print(f"\nparser fuzz: {dict(seen)}")
    assert seen["frames"] >= 10_000
    assert sum(n for k, n in seen.items() if k not in NOT_MALFORMED | {"frames"}) >= 3_000
    assert seen[TICK] >= 2_000


# ---- through the Binance server into a running gateway --------------------------------------
def _collect(strategy: st.SearchStrategy[list[Case]], examples: int) -> list[list[Case]]:
    """Batches drawn by hypothesis (derandomized), for the gateway test to send in order."""
    batches: list[list[Case]] = []

    @fuzz(examples)
    @given(strategy)
    def collect(batch: list[Case]) -> None:
        batches.append(batch)

    collect()
    return batches


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)


COUNTED = ("frames", "skipped", "unsubscribed", "error_replies", "malformed", "published")


def _rows(entries: list[Any], symbol: str) -> list[tuple[Any, ...]]:
    ticks = [decode(fields, entry_id, symbol) for entry_id, fields in entries]
    return [(t.trade_id, t.price, t.qty, t.side, t.trade_ts, t.event_ts) for t in ticks]


class Feed:
    """What the test sent: per symbol, consecutive trade ids and times (no gap, no backfill),
    every valid trade as the stream must hold it, and every frame by outcome."""

    def __init__(self, server: BinanceServer, start_ms: int) -> None:
        self.server = server
        self.next_id = dict.fromkeys(SYMBOLS, 1)
        self.next_ms = dict.fromkeys(SYMBOLS, start_ms)
        self.trades: dict[str, list[tuple[Any, ...]]] = {s: [] for s in SYMBOLS}
        self.sent: Counter[str] = Counter()

    def send(self, case: Case) -> str | None:
        """Send one frame; for a valid trade, the stream id it must land under."""
        self.sent[case.outcome] += 1
        self.sent["frames"] += 1
        if case.outcome != TICK:
            self.server.send_to_all(case.render(10**9, 10**12))  # their ids reach no stream
            return None
        symbol = case.payload["s"]
        trade_id, trade_ms = self.next_id[symbol], self.next_ms[symbol]
        self.next_id[symbol] += 1
        self.next_ms[symbol] += 1
        data = case.fill(trade_id, trade_ms)
        side = "sell" if data["m"] else "buy"
        self.trades[symbol].append((trade_id, data["p"], data["q"], side, trade_ms, trade_ms))
        self.server.send_to_all(case.render(trade_id, trade_ms))
        return f"{trade_ms}-{trade_id}"


async def _check_batch(gw: Gateway, feed: Feed, client: aioredis.Redis, batch: list[Case]) -> None:
    """Send one batch; every frame is counted under its outcome and its valid trades (only
    those) are appended to their streams, in order."""
    counters, malformed = gw.ingest.counters, gw.ingest.malformed
    before = {name: counters[name] for name in COUNTED}
    malformed_before = Counter(malformed)
    first: dict[str, str] = {}
    count = dict.fromkeys(SYMBOLS, 0)
    for case in batch:
        stream_id = feed.send(case)
        if stream_id is not None:
            first.setdefault(case.payload["s"], stream_id)
            count[case.payload["s"]] += 1
    want = Counter(case.outcome for case in batch)
    shown = [case.render(0, 0)[:200] for case in batch]
    await _until(lambda: counters["frames"] - before["frames"] == len(batch), "every frame read")
    await _until(
        lambda: (
            counters["published"] - before["published"] == want[TICK] and gw.ingest.buffered == 0
        ),
        f"{want[TICK]} trades published",
    )
    bad = Counter({k: n for k, n in want.items() if k not in NOT_MALFORMED})
    got = {name: counters[name] - before[name] for name in COUNTED}
    assert got == {
        "frames": len(batch), "skipped": want[SKIPPED], "unsubscribed": want[UNSUBSCRIBED],
        "error_replies": want[ERROR_REPLY], "malformed": bad.total(), "published": want[TICK],
    }, shown  # fmt: skip
    assert Counter(malformed) - malformed_before == bad, shown
    for symbol, start in first.items():
        rows = _rows(await client.xrange(keys.tick_stream(symbol), start, "+"), symbol)
        assert rows == feed.trades[symbol][-count[symbol] :], shown


@pytest.mark.slow
async def test_fuzzed_frames_through_the_server_are_counted_and_valid_trades_land_once(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    """10,000+ frames through the local Binance server into a gateway on the real Redis: each
    batch's frames are counted by outcome (malformed by reason) in the gateway's counters, the
    gateway stays connected, and its streams end up holding exactly the valid trades sent."""
    batches = _collect(st.lists(cases(binary=False), min_size=10, max_size=30), 600)
    opts = {
        "source": "binance", "pairs": ("ETHUSDT/BTCUSDT",), "ghost_delay_ms": 1.0,
        "ghost_delay_jitter_ms": 0.0,
    }  # fmt: skip
    async with BinanceServer(ping_interval=None) as server:
        opts |= {"binance_ws_url": server.ws_url, "binance_rest_url": server.rest_url}
        feed = Feed(server, int(time.time() * 1000))
        gw_settings = settings.model_copy(update=opts)
        async with running_service(Gateway, gw_settings, client=aredis, stop_timeout=15) as gw:
            for symbol in SYMBOLS:
                await server.wait_for_subscribers(stream_name(symbol))
            for batch in batches:
                await _check_batch(gw, feed, aredis, batch)
            health = dict(gw.health())
    for symbol in SYMBOLS:  # every valid trade exactly once, in order, and nothing else
        rows = _rows(await aredis.xrange(keys.tick_stream(symbol)), symbol)
        assert rows == feed.trades[symbol]
    sent = feed.sent
    bad_sent = sum(n for k, n in sent.items() if k not in NOT_MALFORMED | {"frames"})
    assert health["malformed"] == bad_sent
    assert health["published"] == sent[TICK]
    for name in (
        "duplicates",
        "gaps",
        "lost",
        "reconnects",
        "write_errors",
        "write_refused_samples",
    ):
        assert health.get(name, 0) == 0, (name, health[name])
    print(f"\ngateway fuzz: sent {dict(sent)}; malformed {health.get('malformed_by_reason')}")
    assert sent["frames"] >= 10_000


@pytest.mark.slow
async def test_frames_the_websocket_layer_refuses_cost_a_reconnect_and_no_trade(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    """Two frames no parser ever sees: a text frame that is not UTF-8 (the client closes with
    1007) and one above the client's 4 MiB limit (1009). Each costs one counted reconnect; the
    trades published while the connection was down come back from REST, so the stream holds
    every trade the server published, once, in order."""
    opts = {
        "source": "binance", "pairs": ("ETHUSDT/BTCUSDT",), "binance_stream": "aggTrade",
    }  # fmt: skip
    broken = [b"\xff\xfe\x00not utf-8", b'{"e":"aggTrade","p":"' + b"1" * (5 << 20) + b'"}']
    async with BinanceServer(ping_interval=None) as server:
        opts |= {"binance_ws_url": server.ws_url, "binance_rest_url": server.rest_url}
        gw_settings = settings.model_copy(update=opts)
        async with running_service(Gateway, gw_settings, client=aredis, stop_timeout=15) as gw:
            counters = gw.ingest.counters

            async def publish(n: int) -> None:
                for i in range(n):
                    server.publish_agg_trade("BTCUSDT", f"{100 + i * 0.01:.2f}", "0.5")
                await server.flush()

            await server.wait_for_subscribers("btcusdt@aggTrade")
            await publish(20)
            for reconnects, frame in enumerate(broken, 1):
                server.send_to_all(frame)
                await publish(10)  # behind the broken frame: never read on this connection
                await _until(lambda n=reconnects: counters["reconnects"] == n, "a reconnect")
                await server.wait_for_subscribers("btcusdt@aggTrade")
                await publish(10)  # the first of these shows the gap: back-filled from REST
            sent = [row["a"] for row in server.agg_trades("BTCUSDT")]

            async def landed() -> list[int]:
                entries = await aredis.xrange(keys.tick_stream("BTCUSDT"))
                return [decode(f, entry_id, "BTCUSDT").trade_id for entry_id, f in entries]

            for _ in range(300):  # up to 15 s
                if (got := await landed()) == sent:
                    break
                await asyncio.sleep(0.05)
            assert got == sent
            assert counters["reconnects"] == 2
            assert counters["gaps"] == 2 and counters["backfilled"] == counters["missed"] == 20
            assert counters["malformed"] == 0  # refused below the parser, counted as reconnects
    codes = [c.close_code for c in server.closed_connections]
    assert codes[:2] == [1007, 1009], codes


@pytest.mark.slow
async def test_a_trade_time_far_in_the_future_does_not_block_later_trades(
    settings: Settings, aredis: aioredis.Redis
) -> None:
    opts = {"source": "binance", "pairs": ("ETHUSDT/BTCUSDT",)}
    async with BinanceServer(ping_interval=None) as server:
        opts |= {"binance_ws_url": server.ws_url, "binance_rest_url": server.rest_url}
        gw_settings = settings.model_copy(update=opts)
        async with running_service(Gateway, gw_settings, client=aredis, stop_timeout=15) as gw:
            await server.wait_for_subscribers("btcusdt@aggTrade")
            for _ in range(20):
                server.publish_agg_trade("BTCUSDT", "100.5", "0.5")
            last = server.agg_trades("BTCUSDT")[-1]["a"]
            far = {"e": "aggTrade", "E": 2**63, "s": "BTCUSDT", "a": last + 1, "p": "100.6"}
            far |= {"q": "0.5", "f": 1, "l": 1, "T": 2**63, "m": True}
            server.send_to_all(json.dumps({"stream": "btcusdt@aggTrade", "data": far}))
            server.publish_agg_trade("BTCUSDT", "100.7", "0.5", agg_id=last + 2)
            for _ in range(19):
                server.publish_agg_trade("BTCUSDT", "100.5", "0.5")
            await server.flush()
            counters = gw.ingest.counters
            await _until(lambda: counters["frames"] == 41 and not gw.ingest.buffered, "frames")
            await asyncio.sleep(0.2)  # the last flush
            entries = await aredis.xrange(keys.tick_stream("BTCUSDT"))
    landed = [decode(f, entry_id, "BTCUSDT").trade_id for entry_id, f in entries]
    assert landed == [row["a"] for row in server.agg_trades("BTCUSDT")]
