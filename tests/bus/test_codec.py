import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spreadbus.bus.codec import (
    Alert,
    CodecError,
    LogEvent,
    alert_from_json,
    alert_to_json,
    log_event_from_json,
    log_event_to_json,
)


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
