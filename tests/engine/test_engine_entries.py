"""Decoding stream entries: the fast paths accept and reject exactly what the codec does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.bus.codec import TICK_FIELDS, CodecError, tick_from_fields
from spreadbus.engine.entries import decode, decode_many

GOOD = {
    b"symbol": b"BTCUSDT", b"id": b"77", b"price": b"98000.10", b"qty": b"0.012",
    b"side": b"sell", b"T": b"1795314919485", b"E": b"1795314919487",
    b"recv": b"1795314919490.125", b"src": b"binance",
}  # fmt: skip
VALUES = st.sampled_from(
    [b"1", b"0", b"-1", b"98000.10", b"abc", b"", b"nan", b"inf", b"1e3", b" 5 ", b"buy",
     b"sell", b"\xff"]
)  # fmt: skip


def flat(fields: dict[bytes, bytes]) -> list[bytes]:
    return [item for pair in fields.items() for item in pair]


def codec_says(fields: dict[bytes, bytes]) -> tuple[int, float, float, float, int] | str:
    try:
        tick = tick_from_fields(fields)
    except (CodecError, UnicodeDecodeError) as exc:
        return type(exc).__name__
    return (tick.trade_ts, tick.price_f, tick.qty_f, tick.recv_ts, tick.event_ts)


def ours(fields: dict[bytes, bytes] | list[bytes]) -> tuple[int, float, float, float, int] | str:
    points, bad = decode_many([(b"1-1", fields)])
    if bad:
        return type(bad[0][1]).__name__
    return tuple(points.last())  # type: ignore[return-value]


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(sorted(GOOD)), VALUES, max_size=3),
    dropped=st.sets(st.sampled_from(sorted(GOOD)), max_size=1),
    shuffle=st.booleans(),
)
def test_same_verdict_as_the_codec(
    changes: dict[bytes, bytes], dropped: set[bytes], shuffle: bool
) -> None:
    fields = {k: v for k, v in (GOOD | changes).items() if k not in dropped}
    if shuffle:  # not the gateway's field order: the positional path must not be used
        fields = dict(reversed(list(fields.items())))
    want = repr(codec_says(fields))  # repr: a NaN field compares equal to itself
    assert repr(ours(fields)) == want
    assert repr(ours(flat(fields))) == want


def test_the_gateways_order_is_read_by_position() -> None:
    assert [k.decode() for k in GOOD] == list(TICK_FIELDS)  # the order the Lua writes
    assert ours(flat(GOOD)) == (1795314919485, 98000.1, 0.012, 1795314919490.125, 1795314919487)
    assert decode(flat(GOOD)) == decode(GOOD)
    with pytest.raises(CodecError, match="non-numeric"):
        decode(flat(GOOD | {b"price": b"abc"}))


def test_latency_histogram_ignores_unusable_stamps() -> None:
    from spreadbus.engine.diagnostics import Report, percentile

    report = Report()
    report.add_latencies(1000.0, [999.0, float("nan"), float("inf"), 990.0])
    assert sum(report.latency.values()) == 2 and report.latency_max_ms == 10.0
    assert 9.5 < percentile(report.latency, 0.99) <= 10.0 * 1.05
