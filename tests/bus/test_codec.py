import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spreadbus.bus.codec import (
    TICK_FIELDS,
    Alert,
    CodecError,
    LogEvent,
    Tick,
    alert_from_json,
    alert_to_json,
    log_event_from_json,
    log_event_to_json,
    tick_from_fields,
    tick_from_json,
    tick_to_fields,
    tick_to_json,
)
from spreadbus.bus.ticks import tick_row

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
    trade_ts=st.integers(0, 2**42),
    event_ts=st.integers(0, 2**42),
    recv_ts=st.integers(0, 2**42 * 1000).map(lambda us: us / 1000),
    source=st.sampled_from(["binance", "sim", "replay", "ghost"]),
)


@given(ticks)
def test_tick_stream_fields_round_trip(tick: Tick) -> None:
    fields = tick_to_fields(tick)
    as_bytes = {k.encode(): v.encode() for k, v in fields.items()}
    assert tick_from_fields(as_bytes) == tick
    assert tick_from_fields(fields) == tick
    assert tick_from_fields(dict(zip(TICK_FIELDS, tick_row(tick), strict=True))) == tick


@given(ticks)
def test_tick_json_round_trip(tick: Tick) -> None:
    assert tick_from_json(tick_to_json(tick)) == tick


def test_price_text_is_kept_exactly() -> None:
    tick = Tick("BTCUSDT", 1, "98231.40", "0.010", "buy", 1, 2, 3.5, "binance")
    assert tick_from_fields(tick_to_fields(tick)).price == "98231.40"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"price": None}, "misses field 'price'"),
        ({"price": "abc"}, "non-numeric"),
        ({"price": "-1"}, "out of range"),
        ({"price": "0"}, "out of range"),
        ({"side": "up"}, "side"),
        ({"T": "soon"}, "non-numeric"),
    ],
)
def test_bad_tick_entries_raise_codec_error(change: dict[str, str | None], message: str) -> None:
    fields = tick_to_fields(Tick("BTCUSDT", 1, "1.5", "2", "buy", 1, 2, 3.0, "sim"))
    for key, value in change.items():
        if value is None:
            del fields[key]
        else:
            fields[key] = value
    with pytest.raises(CodecError, match=message):
        tick_from_fields(fields)


@given(
    st.builds(
        Alert,
        rule_id=st.text(min_size=1),
        pair=st.just("ETHUSDT/BTCUSDT"),
        metric=st.sampled_from(["zscore", "adf_pvalue"]),
        op=st.sampled_from([">", "abs>"]),
        value=st.floats(allow_nan=False, allow_infinity=False),
        threshold=st.floats(allow_nan=False, allow_infinity=False),
        time_ms=st.integers(0, 2**42),
        message=st.text(),
    )
)
def test_alert_round_trip(alert: Alert) -> None:
    assert alert_from_json(alert_to_json(alert)) == alert


@given(
    st.builds(
        LogEvent,
        level=st.sampled_from(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
        service=st.sampled_from(["gateway", "engine"]),
        event=st.text(min_size=1),
        fields=st.dictionaries(
            st.text(), st.integers(-(2**63), 2**63 - 1) | st.text() | st.booleans()
        ),
    )
)
def test_log_event_round_trip(event: LogEvent) -> None:
    decoded = log_event_from_json(log_event_to_json(event))
    assert decoded == event
    raw = orjson.loads(log_event_to_json(event))
    assert {"time", "level", "service", "event", "fields"} <= raw.keys()


@pytest.mark.parametrize("payload", [b"not json", b"[1,2]", b'{"level":"INFO"}'])
def test_bad_log_event_raises_codec_error(payload: bytes) -> None:
    with pytest.raises(CodecError):
        log_event_from_json(payload)


def test_log_event_with_unencodable_fields_is_still_written() -> None:
    event = LogEvent("INFO", "engine", "x", {"huge": 2**70, "path": object()})
    decoded = log_event_from_json(log_event_to_json(event))
    assert decoded.event == "x"
    assert decoded.fields["huge"] == pytest.approx(2**70)
