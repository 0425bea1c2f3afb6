"""A Pub/Sub payload becomes exactly one record, parsed or kept raw with the reason."""

from __future__ import annotations

import pytest

from spreadbus.bus.codec import LogEvent, log_event_to_json
from spreadbus.logger.record import RAW_TEXT_LIMIT, level_rank, parse_level, to_record

REQUIRED = {"time", "level", "service", "event", "fields"}


def test_a_log_event_keeps_its_own_time_and_fields() -> None:
    event = LogEvent("ERROR", "engine", "refit failed", {"pair": "ETHUSDT/BTCUSDT"}, time="T1")
    record, parsed = to_record(log_event_to_json(event))
    assert parsed
    assert record == {
        "time": "T1",
        "level": "ERROR",
        "service": "engine",
        "event": "refit failed",
        "fields": {"pair": "ETHUSDT/BTCUSDT"},
    }


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"plain text, not json", "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'{"level": "INFO", "event": "x"}', "misses field 'service'"),
        (b'{"service": "web", "event": "x", "fields": "oops"}', "malformed"),
        (b"\xff\xfe broken utf-8", "not JSON"),
    ],
)
def test_a_bad_payload_is_kept_raw_with_the_reason(payload: bytes, reason: str) -> None:
    record, parsed = to_record(payload)
    assert not parsed
    assert record.keys() >= REQUIRED
    assert (record["level"], record["service"], record["event"]) == (
        "WARNING",
        "unknown",
        "unparsed",
    )
    assert record["raw"] == payload.decode("utf-8", "replace")
    assert reason in record["parse_error"]


def test_a_huge_bad_payload_is_cut_and_says_so() -> None:
    record, _ = to_record(b"x" * (RAW_TEXT_LIMIT + 10))
    assert len(record["raw"]) == RAW_TEXT_LIMIT
    assert record["raw_truncated"] == RAW_TEXT_LIMIT + 10


def test_levels() -> None:
    assert parse_level(" warning ") == "WARNING"
    assert (
        level_rank("CRITICAL") > level_rank("ERROR") > level_rank("WARNING") > level_rank("DEBUG")
    )
    assert level_rank("nonsense") == level_rank("INFO")
    with pytest.raises(ValueError, match="unknown level 'LOUD'"):
        parse_level("LOUD")
