"""How each number is shown: one table of precision per snapshot field, used by every view.

A KPI's text is the snapshot's number in the snapshot's own unit, rounded for reading
(``data-kpi`` elements carry exactly this text, so a script can read the page); the unit
sits beside it. Absent, NaN or infinite values show as an em dash, never as "nan".
"""

from __future__ import annotations

import math
from typing import Final

from spreadbus.web.fields import Scalar

MISSING: Final = "—"

# field -> (format spec, unit shown beside the number)
FORMATS: Final[dict[str, tuple[str, str]]] = {
    "beta": (".4f", ""),
    "alpha": (".4f", ""),
    "r2": (".3f", ""),
    "kalman_beta": (".4f", ""),
    "kalman_alpha": (".4f", ""),
    "spread": (".4f", ""),
    "spread_bar": (".4f", ""),
    "spread_std": (".4f", ""),
    "zscore": (".2f", "σ"),
    "zscore_bar": (".2f", "σ"),
    "corr": (".3f", ""),
    "adf_stat": (".3f", ""),
    "adf_pvalue": (".4f", ""),
    "eg_stat": (".3f", ""),
    "eg_pvalue": (".4f", ""),
    "half_life": (".1f", "s"),
    "half_life_lo": (".1f", "s"),
    "half_life_hi": (".1f", "s"),
    "half_life_ar1": (".1f", "s"),
    "hurst": (".3f", ""),
    "spread_vol": (".4f", "/yr"),
    "var_95": (".3g", "of gross"),
    "cvar_95": (".3g", "of gross"),
    "last_price": ("", "USDT"),  # the exchange's own decimal text, as traded
    "last_price_y": (".6g", "USDT"),
    "last_price_x": (".6g", "USDT"),
    "tick_rate": (".1f", "/s"),
    "ghost_basis_bps": (".2f", "bps"),
    "basis_bps": (".2f", "bps"),
    "latency_ingest_p50_ms": (".2f", "ms"),
    "latency_ingest_p99_ms": (".2f", "ms"),
}


def number(value: Scalar) -> float | None:
    """A snapshot value as a finite float, or None."""
    if value is None or (isinstance(value, str) and not value):
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def text(field: str, value: Scalar) -> str:
    """The value as the dashboard shows it (without its unit)."""
    spec, _ = FORMATS.get(field, (".4g", ""))
    if spec == "" and isinstance(value, str):
        return value or MISSING
    result = number(value)
    if result is None:
        return MISSING
    return format(result, spec or ".8g")


def unit(field: str) -> str:
    return FORMATS.get(field, ("", ""))[1]


def age(seconds: float | None) -> str:
    """``0.4 s``, ``12 s``, ``3 m``, ``2 h``: how old a value is."""
    if seconds is None:
        return MISSING
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} m"
    return f"{seconds / 3600:.0f} h"
