"""Sliding-window sums kept *exactly*, as fixed-point Python integers: O(1) per update.

Why not floating-point running sums: ``sum(x*x) - n*mean**2`` cancels catastrophically on prices
such as BTC at 98,000 moving by a few dollars (both terms ~1e13, their difference ~1e4), and
even Welford's centred updates leave rounding residue from every point that has passed
through the window. The residue is relative to the *history's* dispersion, so after a volatile
hour a quiet window's variance can be wrong in its leading digits, and a flat window does not
come out as exactly zero.

Every finite double is an integer multiple of a power of two, so with a common scale ``2**S``
(the finest bit any value uses, typically ``S`` ~ 40-70 for prices and returns) ``x * 2**S``
is an exact integer. The window's sums ``X = sum x``, ``XX = sum x^2``, ``XY = sum x y`` are
kept as exact integers: adding and removing points is exact, so the state after any sequence
of updates is exactly the state of the current window alone. Centred moments come out exact
too (``n * XX - X**2 = n * Sxx * 2**(2S)``, no cancellation possible) and only the last step,
turning them into a statistic, rounds (a few ulps). Integers of ~60-130 bits keep an update
around a microsecond in CPython.

``S`` only grows, when a value with finer bits arrives (shifting the sums and the held integers,
O(window) but rare); ``recompute()`` rebuilds everything at the smallest scale the current
window needs, which is all a periodic "refit" has to do.
"""

from __future__ import annotations

import math

import numpy as np

from spreadbus.analytics._validate import AnalyticsInputError, FloatArray

_MAX_FLOAT_EXPONENT = 1023


def _fraction_bits(value: float) -> int:
    """How many binary digits ``value`` has after the point (0 for integers)."""
    return value.as_integer_ratio()[1].bit_length() - 1


def _scaled_int(value: float, bits: int) -> int:
    """``value * 2**bits`` as an exact integer (``bits`` must cover the value's fraction)."""
    numerator, denominator = value.as_integer_ratio()
    return numerator << (bits - denominator.bit_length() + 1)


def _scale_for(bits: int) -> float:
    # beyond 2**1023 the float scale is unusable: every conversion then takes the exact path
    return 2.0**bits if bits <= _MAX_FLOAT_EXPONENT else math.inf


def ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator`` to a few ulps: fast in floats, exact when they overflow."""
    try:
        return float(numerator) / float(denominator)
    except OverflowError:
        return numerator / denominator


class ExactWindow:
    """Exact count, sum and sum of squares of the last ``window`` values."""

    __slots__ = (
        "_bits",
        "_head",
        "_ints",
        "_scale",
        "_sum",
        "_sum_sq",
        "_values",
        "count",
        "window",
    )

    def __init__(self, window: int) -> None:
        self.window = window
        self._values = [0.0] * window
        self._ints = [0] * window  # the same values times 2**bits
        self._head = 0  # next write position; the oldest value once the window is full
        self.count = 0
        self._bits = 0
        self._scale = 1.0
        self._sum = 0
        self._sum_sq = 0

    def _grow(self, value: float) -> None:
        shift = _fraction_bits(value) - self._bits
        if shift <= 0:
            return
        self._sum <<= shift
        self._sum_sq <<= 2 * shift
        self._ints = [i << shift for i in self._ints]
        self._bits += shift
        self._scale = _scale_for(self._bits)

    def push(self, value: float) -> None:
        """Add ``value``, dropping the oldest once full; nan/inf raise before any change."""
        scaled = value * self._scale
        try:
            new = int(scaled)
        except (OverflowError, ValueError):  # no usable float scale (inf, nan): exact path
            new = 0
            scaled = math.nan
        if new != scaled:  # the value has bits below 2**-S (or no float scale): exact path
            self._grow(value)
            new = _scaled_int(value, self._bits)
        head = self._head
        ints = self._ints
        if self.count == self.window:
            old = ints[head]
            change = new - old
            self._sum += change
            self._sum_sq += change * (new + old)
        else:
            self.count += 1
            self._sum += new
            self._sum_sq += new * new
        ints[head] = new
        self._values[head] = value
        head += 1
        self._head = 0 if head == self.window else head

    def latest(self) -> float:
        return self._values[self._head - 1]

    def values(self) -> FloatArray:
        """The held values, oldest first."""
        if self.count < self.window:
            return np.array(self._values[: self.count], dtype=np.float64)
        head = self._head
        return np.array(self._values[head:] + self._values[:head], dtype=np.float64)

    def recompute(self) -> None:
        """Rebuild the sums at the smallest scale the current window needs."""
        held = self._values if self.count == self.window else self._values[: self.count]
        self._bits = max((_fraction_bits(v) for v in held), default=0)
        self._scale = _scale_for(self._bits)
        self._ints = [_scaled_int(v, self._bits) for v in self._values]
        ints = self._ints if self.count == self.window else self._ints[: self.count]
        self._sum = sum(ints)
        self._sum_sq = sum(i * i for i in ints)

    def mean(self) -> float:
        return ratio(self._sum, self.count << self._bits)

    def _centred(self, name: str) -> int:
        """``n * sum((v - mean)^2) * 2**(2S)``, exactly; raises if the window is flat."""
        centred = self.count * self._sum_sq - self._sum * self._sum
        if centred == 0:
            raise AnalyticsInputError(
                f"{name}: the last {self.count} values are constant ({self.latest()!r})"
            )
        return centred

    def std(self, name: str) -> float:
        """Sample standard deviation (ddof=1)."""
        n = self.count
        return math.sqrt(ratio(self._centred(name), (n * (n - 1)) << (2 * self._bits)))

    def zscore_of_latest(self, name: str) -> float:
        """``(latest - mean) / std`` with ddof=1, to a few ulps."""
        n = self.count
        total = self._sum
        centred = n * self._sum_sq - total * total  # n * M2 * 2**(2S)
        if centred == 0:
            self._centred(name)  # raises with the message
        numerator = n * self._ints[self._head - 1] - total  # n * (v - mean) * 2**S
        # z = numerator / sqrt(centred * n / (n - 1)): the 2**S scales cancel
        try:
            return float(numerator) / math.sqrt(float(centred) * (n / (n - 1)))
        except OverflowError:
            squared = (numerator * numerator * (n - 1)) / (centred * n)
            return math.sqrt(squared) if numerator >= 0 else -math.sqrt(squared)


class ExactPairWindow:
    """Exact count, sums, sums of squares and cross products of the last ``window`` pairs."""

    __slots__ = (
        "_bits",
        "_head",
        "_scale",
        "_sx",
        "_sxx",
        "_sxy",
        "_sy",
        "_syy",
        "_x_ints",
        "_xs",
        "_y_ints",
        "_ys",
        "count",
        "window",
    )

    def __init__(self, window: int) -> None:
        self.window = window
        self._xs = [0.0] * window
        self._ys = [0.0] * window
        self._x_ints = [0] * window
        self._y_ints = [0] * window
        self._head = 0
        self.count = 0
        self._bits = 0
        self._scale = 1.0
        self._sx = self._sy = self._sxx = self._syy = self._sxy = 0

    def _grow(self, value: float) -> None:
        shift = _fraction_bits(value) - self._bits
        if shift <= 0:
            return
        self._sx <<= shift
        self._sy <<= shift
        self._sxx <<= 2 * shift
        self._syy <<= 2 * shift
        self._sxy <<= 2 * shift
        self._x_ints = [i << shift for i in self._x_ints]
        self._y_ints = [i << shift for i in self._y_ints]
        self._bits += shift
        self._scale = _scale_for(self._bits)

    def push(self, x: float, y: float) -> None:
        """Add a pair, dropping the oldest once full; nan/inf raise before a point is added."""
        scale = self._scale
        scaled_x = x * scale
        scaled_y = y * scale
        try:
            new_x = int(scaled_x)
            new_y = int(scaled_y)
        except (OverflowError, ValueError):  # no usable float scale (inf, nan): exact path
            new_x = new_y = 0
            scaled_x = math.nan
        if new_x != scaled_x or new_y != scaled_y:  # bits below 2**-S: exact path
            self._grow(x)
            self._grow(y)
            new_x = _scaled_int(x, self._bits)
            new_y = _scaled_int(y, self._bits)
        head = self._head
        x_ints = self._x_ints
        y_ints = self._y_ints
        if self.count == self.window:
            old_x = x_ints[head]
            old_y = y_ints[head]
            change_x = new_x - old_x
            change_y = new_y - old_y
            self._sx += change_x
            self._sy += change_y
            self._sxx += change_x * (new_x + old_x)
            self._syy += change_y * (new_y + old_y)
            self._sxy += new_x * new_y - old_x * old_y
        else:
            self.count += 1
            self._sx += new_x
            self._sy += new_y
            self._sxx += new_x * new_x
            self._syy += new_y * new_y
            self._sxy += new_x * new_y
        x_ints[head] = new_x
        y_ints[head] = new_y
        self._xs[head] = x
        self._ys[head] = y
        head += 1
        self._head = 0 if head == self.window else head

    def arrays(self) -> tuple[FloatArray, FloatArray]:
        """The held (x, y) values, oldest first."""
        if self.count < self.window:
            return (
                np.array(self._xs[: self.count], dtype=np.float64),
                np.array(self._ys[: self.count], dtype=np.float64),
            )
        head = self._head
        return (
            np.array(self._xs[head:] + self._xs[:head], dtype=np.float64),
            np.array(self._ys[head:] + self._ys[:head], dtype=np.float64),
        )

    def recompute(self) -> None:
        """Rebuild the sums at the smallest scale the current window needs."""
        n = self.count
        xs, ys = self._xs[:n], self._ys[:n]  # order is irrelevant to the sums
        self._bits = max((_fraction_bits(v) for v in xs + ys), default=0)
        self._scale = _scale_for(self._bits)
        self._x_ints = [_scaled_int(v, self._bits) for v in self._xs]
        self._y_ints = [_scaled_int(v, self._bits) for v in self._ys]
        ix, iy = self._x_ints[:n], self._y_ints[:n]
        self._sx = sum(ix)
        self._sy = sum(iy)
        self._sxx = sum(i * i for i in ix)
        self._syy = sum(i * i for i in iy)
        self._sxy = sum(i * j for i, j in zip(ix, iy, strict=True))

    def centred(self, x_name: str, y_name: str) -> tuple[int, int, int]:
        """``n * (Sxx, Sxy, Syy) * 2**(2S)`` exactly; raises if either side is flat."""
        n = self.count
        sx = self._sx
        sy = self._sy
        cxx = n * self._sxx - sx * sx
        cyy = n * self._syy - sy * sy
        last = self._head - 1
        if cxx == 0:
            raise AnalyticsInputError(
                f"{x_name}: the last {n} values are constant ({self._xs[last]!r})"
            )
        if cyy == 0:
            raise AnalyticsInputError(
                f"{y_name}: the last {n} values are constant ({self._ys[last]!r})"
            )
        return cxx, n * self._sxy - sx * sy, cyy

    def means(self) -> tuple[float, float]:
        denominator = self.count << self._bits
        return ratio(self._sx, denominator), ratio(self._sy, denominator)

    @property
    def bits(self) -> int:
        return self._bits


def correlation(cxx: int, cxy: int, cyy: int) -> float:
    """``cxy / sqrt(cxx * cyy)`` from exact centred sums, clipped to [-1, 1]."""
    try:
        value = float(cxy) / (math.sqrt(float(cxx)) * math.sqrt(float(cyy)))
    except OverflowError:
        magnitude = math.sqrt((cxy * cxy) / (cxx * cyy))
        value = magnitude if cxy >= 0 else -magnitude
    return max(-1.0, min(1.0, value))
