"""Redis stream entry ids, ``<ms>-<seq>``: parsed and formatted here and nowhere else.

A real tick's id is ``<trade time ms>-<trade id>`` (see :mod:`spreadbus.bus.tickschema`), so
these also read a trade's time and id out of its entry id.
"""

from __future__ import annotations

from typing import Final

StreamId = tuple[int, int]
ZERO: Final[StreamId] = (0, 0)
MAX_SEQ: Final = 2**64 - 1  # Redis's largest sequence number


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse(value: bytes | str) -> StreamId:
    """``"1795314919485-2871449921"`` -> ``(1795314919485, 2871449921)``; a bare ``"<ms>"``
    (an id Redis also accepts) has sequence 0. ``ValueError`` if it is not an id."""
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


def ms_of(value: bytes | str) -> int:
    """The millisecond part (a real tick's trade time)."""
    return int(_text(value).partition("-")[0])


def format_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def before(value: bytes | str) -> str:
    """The id just before ``value``: ``XREAD`` after it returns ``value`` itself."""
    ms, seq = parse(value)
    return f"{ms}-{seq - 1}" if seq > 0 else f"{ms - 1}-{MAX_SEQ}"
