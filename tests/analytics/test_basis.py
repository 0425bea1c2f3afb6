"""Real-vs-ghost basis: as-of matching on time, never using a later real price."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spreadbus.analytics import AnalyticsInputError, arbitrage_basis


def _series(ms: list[int], prices: list[float]) -> pd.Series:
    return pd.Series(prices, index=pd.Index(ms, dtype="int64"))


def test_each_ghost_print_meets_the_latest_real_price_at_or_before_it() -> None:
    real = _series([1_000, 2_000, 3_000], [100.0, 101.0, 102.0])
    ghost = _series([500, 1_000, 1_999, 2_500, 9_000], [99.0, 100.1, 100.2, 101.0, 102.51])
    basis = arbitrage_basis(real, ghost)
    # 500 has no real price yet: dropped; 1_999 still sees 100.0 (the 2_000 print is future)
    assert list(basis.index) == [1_000, 1_999, 2_500, 9_000]
    expected = [(100.1 / 100 - 1) * 1e4, (100.2 / 100 - 1) * 1e4, 0.0, (102.51 / 102 - 1) * 1e4]
    np.testing.assert_allclose(basis.to_numpy(), expected, rtol=1e-12, atol=1e-12)
    assert basis.name == "basis_bps"


def test_equals_pandas_merge_asof_reference() -> None:
    """Relative 1e-12 against an independent merge_asof on randomly interleaved venues."""
    rng = np.random.default_rng(0)
    real_ms = np.sort(rng.integers(0, 60_000, 500))
    ghost_ms = np.sort(rng.integers(0, 60_000, 400))
    real = pd.Series(98_000 + rng.normal(0, 5, 500), index=real_ms)
    ghost = pd.Series(98_000 + rng.normal(0, 5, 400), index=ghost_ms)
    merged = pd.merge_asof(
        pd.DataFrame({"t": ghost_ms, "g": ghost.to_numpy()}),
        pd.DataFrame({"t": real_ms, "r": real.to_numpy()}),
        on="t",
    ).dropna()
    basis = arbitrage_basis(real, ghost)
    np.testing.assert_array_equal(basis.index.to_numpy(), merged["t"].to_numpy())
    np.testing.assert_allclose(basis, (merged["g"] - merged["r"]) / merged["r"] * 1e4, rtol=1e-12)


def test_tolerance_drops_stale_matches() -> None:
    real = _series([0, 10_000], [100.0, 100.0])
    ghost = _series([100, 5_000, 10_050], [100.01, 100.02, 100.03])
    basis = arbitrage_basis(real, ghost, tolerance_ms=200)
    assert list(basis.index) == [100, 10_050]


def test_datetime_indexes_and_equal_timestamps() -> None:
    times = pd.to_datetime([0, 1_000, 1_000, 2_000], unit="ms")  # naive = UTC
    real = pd.Series([100.0, 101.0, 102.0, 103.0], index=times)
    ghost = pd.Series([100.5], index=pd.DatetimeIndex([pd.Timestamp(1_500, unit="ms", tz="UTC")]))
    basis = arbitrage_basis(real, ghost)
    # two real prints at 1_000 ms: the later one in input order (102.0) is the latest known
    assert basis.iloc[0] == pytest.approx((100.5 / 102.0 - 1) * 1e4, rel=1e-12)
    assert isinstance(basis.index, pd.DatetimeIndex)
    assert str(basis.index.tz) == "UTC"


def test_plain_arrays_are_matched_pairwise() -> None:
    basis = arbitrage_basis(np.array([100.0, 200.0]), np.array([100.5, 199.0]))
    np.testing.assert_allclose(basis.to_numpy(), [50.0, -50.0], rtol=1e-12)
    assert isinstance(basis.index, pd.RangeIndex)


@pytest.mark.parametrize(
    ("real", "ghost", "message"),
    [
        (_series([0], [100.0]), np.array([1.0]), "not one of each"),
        (np.array([1.0, 2.0]), np.array([1.0]), "mismatched lengths"),
        (np.array([0.0]), np.array([1.0]), "real: prices must be > 0"),
        (_series([5_000], [100.0]), _series([1_000], [100.0]), "no ghost observation"),
        (_series([0], [np.nan]), _series([0], [1.0]), "real: contains NaN"),
        (
            pd.Series([1.0], index=["a"]),
            _series([0], [1.0]),
            "index must be datetimes or epoch milliseconds",
        ),
    ],
)
def test_bad_input(real: object, ghost: object, message: str) -> None:
    with pytest.raises(AnalyticsInputError, match=message):
        arbitrage_basis(real, ghost)  # type: ignore[arg-type]
