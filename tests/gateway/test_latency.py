"""The rolling latency rings: what they keep, and their percentiles against numpy's."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.gateway.latency import RollingLatency, percentiles

batches = st.lists(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=40), min_size=1, max_size=30
)


@settings(max_examples=200, deadline=None)
@given(batches=batches, window=st.integers(1, 64), one_by_one=st.booleans())
def test_a_ring_summarises_exactly_the_last_window_of_samples(
    batches: list[list[float]], window: int, one_by_one: bool
) -> None:
    """Batches of any size, wrapping the ring any number of times, added at once or one by
    one: the summary is numpy's percentiles and maximum of the last ``window`` samples."""
    ring = RollingLatency(window)
    for batch in batches:
        if one_by_one:
            for value in batch:
                ring.add(value)
        else:
            ring.add_many(batch)
    every = [value for batch in batches for value in batch]
    summary = ring.summary()
    if not every:
        assert summary is None
        return
    last = np.array(every[-window:])
    assert summary is not None
    assert summary.n == len(last)
    assert [summary.p50, summary.p99] == np.percentile(last, [50, 99]).tolist()
    assert summary.max == last.max()


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(0, 1e4, allow_nan=False), min_size=1, max_size=300))
def test_percentiles_are_numpys_to_the_last_bit(values: list[float]) -> None:
    qs = (0, 1, 25, 50, 90, 99, 99.9, 100)
    assert percentiles(np.array(values), qs) == np.percentile(values, qs).tolist()
