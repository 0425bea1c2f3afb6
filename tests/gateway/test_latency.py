"""The rolling latency rings: what they keep, and their percentiles against numpy's."""

from types import FunctionType, ModuleType

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spreadbus.bus.codec import Tick
from spreadbus.gateway.latency import WINDOW, RollingLatency, SymbolLatency, percentiles

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


def _ticks(n: int, seed: int) -> list[Tick]:
    rng = np.random.default_rng(seed)
    trade = 1_795_314_900_000 + np.cumsum(rng.integers(0, 5, n))
    event = trade + rng.integers(0, 20, n)
    recv = event + rng.uniform(0.1, 80.0, n)
    return [
        Tick("BTCUSDT", i, "1.0", "1.0", "buy", int(t), int(e), float(r), "binance")
        for i, (t, e, r) in enumerate(zip(trade, event, recv, strict=True))
    ]


def _fields_of(ticks: list[Tick]) -> dict[str, float]:
    """The reference: numpy over the raw tick times, rounded as health shows them."""
    out = {}
    for name, values in (
        ("ingest", np.array([t.recv_ts - t.event_ts for t in ticks])),
        ("exchange", np.array([float(t.event_ts - t.trade_ts) for t in ticks])),
    ):
        p50, p99 = np.percentile(values, [50, 99]).tolist()
        out[f"latency_{name}_p50_ms"] = round(p50, 3)
        out[f"latency_{name}_p99_ms"] = round(p99, 3)
        out[f"latency_{name}_max_ms"] = round(float(values.max()), 3)
    return out


def test_a_symbols_latencies_are_those_of_the_last_window_of_its_ticks() -> None:
    """Batches handed over, more than a window in all, read now and then: the fields are
    numpy's percentiles and maximum, rounded to the microsecond, of receive - event and
    event - trade over the last WINDOW ticks handed over. One batch is a kept batch's list,
    which the retry extends with the next flushes' ticks (handed over on their own too):
    they count once. None of the ticks is kept (the collector would walk them)."""
    ticks = _ticks(3 * WINDOW + 77, seed=3)
    latency = SymbolLatency()
    given: list[Tick] = []
    kept: list[Tick] | None = None
    for start in range(0, len(ticks), 61):
        batch = ticks[start : start + 61]
        latency.add_ticks(batch)
        given += batch
        if kept is not None:
            kept.extend(batch)  # the retry merges the next flush's ticks into the kept list
        elif start >= len(ticks) - WINDOW // 2:
            kept = batch
        if start % (61 * 7) == 0 and kept is None:
            assert latency.fields() == _fields_of(given[-WINDOW:])
    assert kept is not None and len(kept) > 61
    assert not _reaches_a_tick(latency)  # ticks waiting: as floats, not as ticks
    assert latency.fields() == _fields_of(given[-WINDOW:])


def _reaches_a_tick(root: object) -> bool:
    """Whether ``root``'s own data holds a Tick: its attributes and, under them, containers
    and plain objects (not classes, modules or functions: through those every object of the
    process is reachable)."""
    todo, seen = list(vars(root).values()), set()
    while todo:
        item = todo.pop()
        if isinstance(item, Tick):
            return True
        if id(item) in seen or isinstance(item, type | ModuleType | FunctionType):
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            todo += item.values()
        elif isinstance(item, list | tuple | set):
            todo += item
        elif hasattr(item, "__dict__"):
            todo += vars(item).values()
    return False
