"""Shared input checks: every public function fails fast with one message naming the problem.

The engine feeds these functions from live windows, where a NaN from a missing bar or a flat
window from an idle market is routine. Letting such input reach numpy would yield a NaN (or a
statsmodels error several frames deep) that surfaces as a blank dashboard tile minutes later.
A single exception type lets callers tell "the data cannot support this statistic" apart from
a programming error, which stays a plain exception.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]

T = TypeVar("T")

_API_NOTICES = (DeprecationWarning, FutureWarning, PendingDeprecationWarning)


class AnalyticsInputError(ValueError):
    """The input cannot support the requested statistic (too short, NaN, constant, ...)."""


def as_float_array(values: ArrayLike, name: str, *, min_len: int = 1) -> FloatArray:
    """Return ``values`` as a finite 1-D float64 array of at least ``min_len`` points."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalyticsInputError(f"{name}: not a numeric series ({exc})") from None
    if array.ndim != 1:
        raise AnalyticsInputError(f"{name}: expected a 1-D series, got shape {array.shape}")
    if array.size < min_len:
        raise AnalyticsInputError(
            f"{name}: too few points, needs at least {min_len}, got {array.size}"
        )
    finite = np.isfinite(array)
    if not finite.all():
        first = int(np.argmin(finite))
        raise AnalyticsInputError(
            f"{name}: contains NaN or inf (first at position {first}: {array[first]})"
        )
    return array


def as_float_matrix(
    values: ArrayLike, name: str, *, min_rows: int, min_cols: int, max_cols: int
) -> FloatArray:
    """Return ``values`` as a finite 2-D float64 array, one column per series."""
    try:
        matrix = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AnalyticsInputError(f"{name}: not a numeric table ({exc})") from None
    if matrix.ndim != 2:
        raise AnalyticsInputError(
            f"{name}: expected a 2-D array (observations x series), got shape {matrix.shape}"
        )
    rows, cols = matrix.shape
    if not min_cols <= cols <= max_cols:
        raise AnalyticsInputError(
            f"{name}: needs between {min_cols} and {max_cols} series (columns), got {cols}"
        )
    if rows < min_rows:
        raise AnalyticsInputError(
            f"{name}: too few points, needs at least {min_rows} rows, got {rows}"
        )
    if not np.isfinite(matrix).all():
        row, col = np.argwhere(~np.isfinite(matrix))[0]
        raise AnalyticsInputError(f"{name}: contains NaN or inf (row {row}, column {col})")
    for col in range(cols):
        require_not_constant(matrix[:, col], f"{name} column {col}")
    return matrix


def as_pair(
    y: ArrayLike, x: ArrayLike, *, min_len: int, names: tuple[str, str] = ("y", "x")
) -> tuple[FloatArray, FloatArray]:
    """Return two finite series of equal length (at least ``min_len``)."""
    y_name, x_name = names
    y_arr = as_float_array(y, y_name, min_len=min_len)
    x_arr = as_float_array(x, x_name, min_len=min_len)
    if y_arr.size != x_arr.size:
        raise AnalyticsInputError(
            f"{y_name} and {x_name}: mismatched lengths ({y_arr.size} vs {x_arr.size})"
        )
    return y_arr, x_arr


def require_not_constant(array: FloatArray, name: str) -> None:
    """Reject a series without variation: slopes, z-scores and correlations are 0/0 on it."""
    if array.size and float(np.ptp(array)) == 0.0:
        raise AnalyticsInputError(f"{name}: is constant (every value is {array[0]!r})")


def require_measurable(sum_of_squares: float, name: str) -> float:
    """Reject variation so small its sum of squares underflows to zero (values ~1e-160)."""
    if sum_of_squares == 0.0:
        raise AnalyticsInputError(f"{name}: variation too small to measure (underflows to 0)")
    return sum_of_squares


def require_positive(array: FloatArray, name: str) -> None:
    """Reject prices at or below zero: returns and basis points are undefined on them."""
    if array.size and float(array.min()) <= 0.0:
        first = int(np.argmax(array <= 0.0))
        raise AnalyticsInputError(
            f"{name}: prices must be > 0 (position {first} is {array[first]!r})"
        )


def require_window(window: int, *, minimum: int, name: str = "window") -> int:
    """Return ``window`` if it is an int of at least ``minimum``."""
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise AnalyticsInputError(f"{name}: must be an integer, got {window!r}")
    if window < minimum:
        raise AnalyticsInputError(f"{name}: must be at least {minimum}, got {window}")
    return int(window)


def require_finite_number(value: float, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AnalyticsInputError(f"{name}: must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise AnalyticsInputError(f"{name}: must be finite, got {number!r}")
    return number


def require_choice(value: str, name: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise AnalyticsInputError(f"{name}: must be one of {choices}, got {value!r}")
    return value


@contextmanager
def _capture_warnings() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught


def call_quietly(what: str, compute: Callable[[], T]) -> T:
    """Run a statsmodels/scipy computation, turning its numerical alarms into input errors.

    statsmodels reports degenerate designs (a straight-line series, perfectly collinear legs,
    failed convergence) as warnings and then returns a meaningless number. Here such a warning
    means the input cannot support the statistic, so it becomes an ``AnalyticsInputError``.
    Deprecation notices about statsmodels' own API are not about the data and are dropped.
    Not thread-safe (``warnings.catch_warnings`` is process-global), like statsmodels itself.
    """
    with _capture_warnings() as caught:
        try:
            result = compute()
        except AnalyticsInputError:
            raise
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise AnalyticsInputError(f"{what}: {exc}") from None
    for record in caught:
        if issubclass(record.category, _API_NOTICES):
            continue
        raise AnalyticsInputError(f"{what}: degenerate input ({record.message})")
    return result
