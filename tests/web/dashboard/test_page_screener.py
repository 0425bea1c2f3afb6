"""``/screener`` in a real Chromium: a dataset universe ranks its cointegrated pair first;
"watch" puts the pair into config:pairs and it appears on the overview."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from ._research import assert_dropdown_looks_like_select, csv_of, legs, upload
from .conftest import Console, Stack, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PAIRED = {"QYYUSDT", "QXXUSDT"}


def test_screener_ranks_then_watch_adds_to_the_overview(
    stack: Stack, page: tuple[Any, Console]
) -> None:
    tab, console = page
    y, x = legs(400, seed=51)
    rng = np.random.default_rng(52)
    walk = np.round(50 * np.exp(np.cumsum(rng.normal(0, 1e-3, 400))), 2)
    upload(stack.url, "universe.csv", csv_of({"QYYUSDT": y, "QXXUSDT": x, "QZZUSDT": walk}))
    before = httpx.get(f"{stack.url}/api/pairs", timeout=10).json()["pairs"]
    try:
        tab.goto(stack.url + "/screener")
        tab.wait_for_selector("#sc-run", timeout=45_000)
        tab.fill("#sc-symbols", "btcusdt")  # one symbol makes no pair: said in words
        tab.click("#sc-run")
        tab.wait_for_selector("#sc-problem", timeout=30_000)
        assert "at least 2 symbols" in tab.inner_text("#sc-problem")
        tab.fill("#sc-symbols", "")
        tab.click("text=dataset")
        wait_for(lambda: "universe.csv" in tab.inner_text("#sc-dataset"), 20, "the dataset")
        assert_dropdown_looks_like_select(tab, "#sc-dataset", "#sc-hours")  # a dbc.Input
        tab.click("#sc-run")
        tab.wait_for_selector("#sc-results tbody tr[data-pair]", timeout=30_000)
        shown = tab.eval_on_selector_all(
            "#sc-results tr[data-pair]", "r => r.map(e => e.dataset.pair)"
        )
        assert len(shown) == 3
        best = shown[0]
        assert set(best.split("/")) == PAIRED
        screenshot(tab, "screener")
        tab.click(f'tr[data-pair="{best}"] >> text=watch')
        tab.wait_for_selector("#sc-watched", timeout=45_000)
        assert best in httpx.get(f"{stack.url}/api/pairs", timeout=10).json()["pairs"]
        tab.click("#sc-watched a")
        tab.wait_for_selector(f'tr[data-pair="{best}"]', timeout=45_000)
        screenshot(tab, "screener-watched-overview")
        assert console.errors == []
    finally:
        httpx.put(f"{stack.url}/api/pairs", json=before, timeout=10)
