"""The record the CentralLogger writes for one ``channel:logs`` payload.

Every record has ``time``, ``level``, ``service``, ``event`` and ``fields``. A payload that is
not a valid :class:`~spreadbus.bus.codec.LogEvent` still becomes a record (``event`` is
``"unparsed"``, ``raw`` holds the text, ``parse_error`` says why): a log that silently loses the
one odd message is a log nobody can trust when something odd is happening.
"""

from __future__ import annotations

from typing import Any

from spreadbus.bus.codec import LEVELS, CodecError, log_event_from_json, now_iso

Record = dict[str, Any]

UNPARSED_EVENT = "unparsed"
UNKNOWN_SERVICE = "unknown"
# A single runaway publisher must not write megabytes per line; the prefix shows what it was.
RAW_TEXT_LIMIT = 16 * 1024

_RANK: dict[str, int] = {level: rank for rank, level in enumerate(LEVELS)}


def level_rank(level: object) -> int:
    """Order of severity (DEBUG lowest); an unknown level counts as INFO."""
    return _RANK.get(str(level).upper(), _RANK["INFO"])


def parse_level(text: str) -> str:
    """A user's ``--level`` value, upper-cased; :class:`ValueError` when it is not a level."""
    level = text.strip().upper()
    if level not in _RANK:
        raise ValueError(f"unknown level {text!r}: use {', '.join(LEVELS)}")
    return level


def to_record(payload: bytes | str) -> tuple[Record, bool]:
    """``(record, ok)``; ``ok`` is False when the payload was kept as raw text."""
    try:
        event = log_event_from_json(payload)
    except CodecError as exc:
        return unparsed_record(payload, str(exc)), False
    record: Record = {
        "time": event.time,
        "level": event.level,
        "service": event.service,
        "event": event.event,
        "fields": event.fields,
    }
    return record, True


def unparsed_record(payload: bytes | str, error: str) -> Record:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    record: Record = {
        "time": now_iso(),
        "level": "WARNING",
        "service": UNKNOWN_SERVICE,
        "event": UNPARSED_EVENT,
        "fields": {},
        "raw": text[:RAW_TEXT_LIMIT],
        "parse_error": error,
    }
    if len(text) > RAW_TEXT_LIMIT:
        record["raw_truncated"] = len(text)
    return record
