"""analytics.carry against numbers worked out by hand (each line's arithmetic in a comment)."""

from __future__ import annotations

import math

import pytest

from spreadbus import analytics as an

H = 3_600_000
NOW = 1_795_305_600_000  # 2026-11-22 16:00 UTC, a funding time for 8 h and 4 h symbols


def leg(mark: float, index: float, rate: float, next_ms: int, interval_h: int) -> an.LegFunding:
    return an.LegFunding(mark, index, rate, next_ms, interval_h * H)


Y = leg(3500.0, 3498.25, 0.0001, NOW + 30_000, 8)  # ETH: funds in 30 s
X = leg(98000.0, 98049.0, -0.00005, NOW + 2 * H, 4)  # BTC: in 2 h, every 4 h


def test_hand_computed_carry() -> None:
    out = an.carry(Y, X, beta=0.035, half_life_s=40.0, now_ms=NOW)
    # (0.0001 - (-0.00005)) * 1e4 = 1.5 bps per interval
    assert out["funding_diff_bps"] == pytest.approx(1.5, rel=1e-12)
    # 0.0001 * 1095 - (-0.00005) * 2190 = 0.1095 + 0.1095 = 0.219 -> 21.9 % a year
    assert out["funding_diff_ann_pct"] == pytest.approx(21.9, rel=1e-12)
    # 3500 / 3498.25 - 1 = 5.00250...e-4 -> 5.0025 bps; 98000 / 98049 - 1 = -4.99750...e-4
    assert out["mark_index_y_bps"] == pytest.approx((3500 / 3498.25 - 1) * 1e4, rel=1e-12)
    assert out["mark_index_y_bps"] == pytest.approx(5.0025, abs=1e-4)
    assert out["mark_index_x_bps"] == pytest.approx(-4.9975, abs=1e-4)
    # gross = 3500 + 0.035 * 98000 = 6930; long 1 ETH pays 0.0001 * 3500 = 0.35;
    # short 3.43 BTC-notional receives -0.00005 * 3430 = -0.1715 (i.e. pays 0.1715)
    # -> (-0.35 - 0.1715) / 6930 * 1e4 = -0.752525... bps
    assert out["carry_next_long_bps"] == pytest.approx(-0.5215 / 6930 * 1e4, rel=1e-12)
    assert out["carry_next_short_bps"] == pytest.approx(0.5215 / 6930 * 1e4, rel=1e-12)
    # within one 40 s half-life only ETH's event (in 30 s) falls: -0.35 / 6930 * 1e4
    assert out["carry_half_life_long_bps"] == pytest.approx(-0.35 / 6930 * 1e4, rel=1e-12)
    assert out["carry_half_life_short_bps"] == pytest.approx(0.35 / 6930 * 1e4, rel=1e-12)


def test_half_life_decides_which_events_count() -> None:
    short = an.carry(Y, X, beta=0.035, half_life_s=10.0, now_ms=NOW)
    assert short["carry_half_life_long_bps"] == 0.0  # no event within 10 s
    endless = an.carry(Y, X, beta=0.035, half_life_s=math.inf, now_ms=NOW)
    assert endless["carry_half_life_long_bps"] == endless["carry_next_long_bps"]
    unknown = an.carry(Y, X, beta=0.035, half_life_s=math.nan, now_ms=NOW)
    assert math.isnan(unknown["carry_half_life_long_bps"])
    assert not math.isnan(unknown["carry_next_long_bps"])


def test_a_stale_funding_time_rolls_forward_by_the_interval() -> None:
    """ETH's T passed 10 s ago (a stale update): its next event is T + 8 h, not now."""
    stale = leg(3500.0, 3500.0, 0.0001, NOW - 10_000, 8)
    out = an.carry(stale, X, beta=0.035, half_life_s=40.0, now_ms=NOW)
    assert out["carry_half_life_long_bps"] == 0.0


def test_without_a_hedge_only_the_rates_and_basis() -> None:
    out = an.carry(Y, X, beta=math.nan, half_life_s=40.0, now_ms=NOW)
    assert out["funding_diff_bps"] == pytest.approx(1.5)
    assert all(math.isnan(out[f]) for f in an.CARRY_FIELDS if f.startswith("carry_"))


@pytest.mark.parametrize(
    ("args", "message"),
    [((0.0, 1.0, 0.0, 0, H), "must be > 0"), ((1.0, 1.0, math.nan, 0, H), "funding rate")],
)
def test_bad_legs_are_named(args: tuple[float, float, float, int, int], message: str) -> None:
    with pytest.raises(an.AnalyticsInputError, match=message):
        an.LegFunding(*args)
