"""Decoding stream entries: the fast paths accept and reject exactly what the codec does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.bus import tickschema
from spreadbus.bus.codec import CodecError
from spreadbus.engine.entries import decode_many

GOOD = {
    b"symbol": b"BTCUSDT", b"id": b"77", b"price": b"98000.10", b"qty": b"0.012",
    b"side": b"sell", b"T": b"1795314919485", b"E": b"1795314919487",
    b"recv": b"1795314919490.125", b"src": b"binance",
}  # fmt: skip
PARTS = [b"98000.10", b"0.012", b"sell", b"1795314919487", b"1795314919490.125", b"binance"]
ENTRY_ID = b"1795314919485-77"
VALUES = st.sampled_from(
    [b"1", b"0", b"-1", b"98000.10", b"abc", b"", b"nan", b"inf", b"1e3", b" 5 ", b"buy",
     b"sell", b"\xff"]
)  # fmt: skip
Verdict = tuple[int, float, float, float, int] | str


def flat(fields: dict[bytes, bytes]) -> list[bytes]:
    return [item for pair in fields.items() for item in pair]


def schema_says(fields: dict[bytes, bytes], entry_id: bytes = ENTRY_ID) -> Verdict:
    try:
        tick = tickschema.decode(fields, entry_id, "BTCUSDT")
    except (CodecError, UnicodeDecodeError) as exc:
        return type(exc).__name__
    return (tick.trade_ts, tick.price_f, tick.qty_f, tick.recv_ts, tick.event_ts)


def ours(fields: dict[bytes, bytes] | list[bytes], entry_id: bytes = ENTRY_ID) -> Verdict:
    points, bad = decode_many([(entry_id, fields)])
    if bad:
        return type(bad[0][1]).__name__
    return tuple(points.last())  # type: ignore[return-value]


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(st.sampled_from(sorted(GOOD)), VALUES, max_size=3),
    dropped=st.sets(st.sampled_from(sorted(GOOD)), max_size=1),
    shuffle=st.booleans(),
)
def test_nine_field_entries_get_the_schemas_verdict(
    changes: dict[bytes, bytes], dropped: set[bytes], shuffle: bool
) -> None:
    """Older entries (nine fields) still in a user's Redis: same verdict as the schema."""
    fields = {k: v for k, v in (GOOD | changes).items() if k not in dropped}
    if shuffle:  # not the old gateway's field order: the positional path must not be used
        fields = dict(reversed(list(fields.items())))
    want = repr(schema_says(fields))  # repr: a NaN field compares equal to itself
    assert repr(ours(fields)) == want
    assert repr(ours(flat(fields))) == want


@settings(max_examples=300, deadline=None)
@given(
    changes=st.dictionaries(st.integers(0, 7), VALUES, max_size=3),
    ghost=st.booleans(),
)
def test_compact_entries_get_the_schemas_verdict(changes: dict[int, bytes], ghost: bool) -> None:
    parts = [*PARTS, b"1795314919485", b"77"] if ghost else list(PARTS)
    for index, value in changes.items():
        if index < len(parts):
            parts[index] = value
    fields = {b"t": b" ".join(parts)}
    entry_id = b"1795314919999-0" if ghost else ENTRY_ID
    want = repr(schema_says(fields, entry_id))
    assert repr(ours(fields, entry_id)) == want
    assert repr(ours(flat(fields), entry_id)) == want


def test_both_layouts_give_the_same_point() -> None:
    want = (1795314919485, 98000.1, 0.012, 1795314919490.125, 1795314919487)
    assert ours(flat(GOOD)) == want  # the nine fields, by position
    assert ours([b"t", b" ".join(PARTS)]) == want  # trade time from the entry id
    assert ours([b"t", b" ".join([*PARTS, b"1795314919485", b"77"])], b"9-9") == want  # a ghost
    assert ours(flat(GOOD | {b"price": b"abc"})) == "CodecError"


def test_latency_histogram_ignores_unusable_stamps() -> None:
    from spreadbus.engine.diagnostics import Report, percentile

    report = Report()
    report.add_latencies(1000.0, [999.0, float("nan"), float("inf"), 990.0])
    assert sum(report.latency.values()) == 2 and report.latency_max_ms == 10.0
    assert 9.5 < percentile(report.latency, 0.99) <= 10.0 * 1.05
