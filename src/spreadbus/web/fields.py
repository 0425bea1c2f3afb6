"""Redis hash and TimeSeries values (text) as typed JSON values."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Final

Scalar = int | float | str | None

_INT: Final = re.compile(r"^-?\d{1,18}$")
_FLOAT: Final = re.compile(
    r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?(nan|inf|infinity)$", re.I
)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def typed(value: bytes | str) -> Scalar:
    """``"42"`` -> 42, ``"0.5"`` -> 0.5, ``"nan"``/``"inf"`` -> None, anything else as text."""
    raw = text(value)
    if _INT.match(raw):
        return int(raw)
    if _FLOAT.match(raw):
        number = float(raw)
        return number if math.isfinite(number) else None
    return raw


def typed_fields(raw: Mapping[bytes | str, bytes | str]) -> dict[str, Scalar]:
    """A hash as ``{field: typed value}``, fields sorted by name."""
    return {text(k): typed(v) for k, v in sorted(raw.items(), key=lambda kv: text(kv[0]))}


def number(value: bytes | str) -> float | None:
    """A TimeSeries value as a float; None for NaN or infinity (JSON has neither)."""
    result = float(text(value))
    return result if math.isfinite(result) else None
