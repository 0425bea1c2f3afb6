"""The tick's stream layout: both layouts decode, the writer's arguments match the entries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spreadbus.bus import streamid, tickschema
from spreadbus.bus.codec import CodecError, Tick, tick_from_json, tick_to_json

decimals = st.decimals(min_value="0.00000001", max_value="1000000", places=8).map(
    lambda d: format(d.normalize(), "f")
)
ticks = st.builds(
    Tick,
    symbol=st.sampled_from(["BTCUSDT", "ETHUSDT", "1000PEPEUSDT"]),
    trade_id=st.integers(0, 2**62),
    price=decimals,
    qty=decimals,
    side=st.sampled_from(["buy", "sell"]),
    trade_ts=st.integers(1, 2**42),
    event_ts=st.integers(0, 2**42),
    recv_ts=st.floats(0, 2**42, allow_nan=False, allow_infinity=False),
    source=st.sampled_from(["binance", "sim", "replay", "ghost"]),
)


def as_bytes(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in fields.items()}


@given(ticks)
def test_compact_entries_round_trip_with_the_id_and_the_key(tick: Tick) -> None:
    real = tickschema.to_fields(tick)
    assert list(real) == ["t"] and len(real["t"].split(" ")) == 6  # no symbol, id or T
    assert tickschema.decode(real, tick.stream_id, tick.symbol) == tick
    assert tickschema.decode(as_bytes(real), tick.stream_id.encode(), tick.symbol) == tick
    ghost = tickschema.to_fields(tick, ghost=True)  # Redis picks a ghost's id: T and id inside
    assert tickschema.decode(as_bytes(ghost), b"1-0", tick.symbol) == tick


@given(ticks)
def test_nine_field_entries_of_older_versions_still_decode(tick: Tick) -> None:
    old = tickschema.legacy_fields(tick)
    decoded = tickschema.decode(as_bytes(old), b"5-5", "IGNORED")  # all of it is in the entry
    assert decoded == tick._replace(recv_ts=float(f"{tick.recv_ts:.3f}"))


@given(ticks)
def test_tick_json_round_trip(tick: Tick) -> None:
    assert tick_from_json(tick_to_json(tick)) == tick


def test_writer_arguments_are_the_entries_values() -> None:
    """What the Lua library gets per tick (trade ms, id, price, qty, value) and per ghost."""
    a = Tick("BTCUSDT", 7, "98231.40", "0.010", "sell", 1795314919485, 1795314919490,
             1795314919491.125, "binance")  # fmt: skip
    b = a._replace(trade_id=8, price="98231.50", side="buy", recv_ts=1795314919492.0)
    value_a = "98231.40 0.010 sell 1795314919490 1795314919491.125 binance"
    value_b = "98231.50 0.010 buy 1795314919490 1795314919492.0 binance"
    assert tickschema.real_args([a, b]) == [
        1795314919485, 7, "98231.40", "0.010", value_a,
        1795314919485, 8, "98231.50", "0.010", value_b,
    ]  # fmt: skip
    assert tickschema.ghost_args([a]) == [
        "98231.40 0.010 sell 1795314919490 1795314919491.125 binance 1795314919485 7"
    ]
    assert tickschema.real_args([]) == [] and tickschema.ghost_args([]) == []


GOOD = Tick("BTCUSDT", 1, "1.5", "2", "buy", 10, 12, 13.0, "sim")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1.5 2 buy 12 13.0", "5 parts"),
        ("abc 2 buy 12 13.0 sim", "non-numeric"),
        ("-1 2 buy 12 13.0 sim", "out of range"),
        ("0 2 buy 12 13.0 sim", "out of range"),
        ("inf 2 buy 12 13.0 sim", "out of range"),
        ("1.5 -2 buy 12 13.0 sim", "out of range"),
        ("1.5 2 up 12 13.0 sim", "side"),
        ("1.5 2 buy soon 13.0 sim", "non-numeric"),
        ("1.5 2 buy 12 13.0 sim x 1", "non-numeric"),  # a ghost's trade time
    ],
)
def test_bad_compact_values_name_the_problem(value: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        tickschema.decode({"t": value}, "10-1", "BTCUSDT")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"price": None}, "misses field 'price'"),
        ({"price": "abc"}, "non-numeric"),
        ({"price": "0"}, "out of range"),
        ({"side": "up"}, "side"),
        ({"T": "soon"}, "non-numeric"),
    ],
)
def test_bad_nine_field_entries_name_the_problem(
    change: dict[str, str | None], message: str
) -> None:
    fields = tickschema.legacy_fields(GOOD)
    for key, value in change.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    with pytest.raises(CodecError, match=message):
        tickschema.decode(fields, "10-1", "BTCUSDT")


def test_an_entry_of_neither_layout_is_refused() -> None:
    with pytest.raises(CodecError, match="misses field"):
        tickschema.decode({"x": "1"}, "10-1", "BTCUSDT")
    with pytest.raises(CodecError, match="misses field"):  # the field plus another: not compact
        tickschema.decode({"t": "1.5 2 buy 12 13.0 sim", "y": "1"}, "10-1", "BTCUSDT")


def test_stream_ids() -> None:
    assert streamid.parse(b"1795314919485-2871449921") == (1795314919485, 2871449921)
    assert streamid.parse("17") == (17, 0)
    assert streamid.ms_of(b"1795314919485-3") == 1795314919485
    assert streamid.before("5-0") == f"4-{2**64 - 1}" and streamid.before("5-3") == "5-2"
    assert streamid.format_id((5, 3)) == "5-3"
    with pytest.raises(ValueError, match="invalid literal"):
        streamid.parse("abc-1")
