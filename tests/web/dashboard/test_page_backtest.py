"""``/backtest`` in a real Chromium: a run on a dataset shows the API's stats and one marker
per trade on the z-score chart; a sweep fills its heatmap."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ._research import assert_dropdown_looks_like_select, csv_of, dropdown_field, legs, upload
from .conftest import Console, Stack, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _trace_points(tab: Any, graph: str, meta: str) -> int:
    script = f"""() => {{
        const plot = document.querySelector('#{graph} .js-plotly-plot');
        return plot.data.filter(t => t.meta === '{meta}').map(t => t.x.length)
            .reduce((a, b) => a + b, 0);
    }}"""
    return int(tab.evaluate(script))


def test_backtest_run_shows_stats_and_trade_markers(
    stack: Stack, page: tuple[Any, Console]
) -> None:
    tab, console = page
    y, x = legs(500, seed=41)
    dataset = upload(stack.url, "bt.csv", csv_of({"BAAUSDT": y, "BBBUSDT": x}))
    expected = httpx.post(
        f"{stack.url}/api/backtest",
        json={"dataset": dataset["id"], "y": "BAAUSDT", "x": "BBBUSDT", "window": 60,
              "entry_z": 2.0, "exit_z": 0.5, "fee_bps": 1.0, "slippage_bps": 0.5,
              "capital": 10000},
        timeout=60,
    ).json()  # fmt: skip
    n_trades = expected["stats"]["n_trades"]
    assert n_trades >= 3
    tab.goto(stack.url + "/backtest")
    tab.wait_for_selector("#bt-run", timeout=45_000)
    wait_for(lambda: dataset["id"] in tab.inner_text("#bt-dataset"), 20, "the new dataset chosen")
    for dropdown in ("#bt-pair", "#bt-dataset", "#bt-y", "#bt-x"):
        assert_dropdown_looks_like_select(tab, dropdown, "#bt-hedge")
    tab.click(dropdown_field("#bt-y"))
    menu = tab.wait_for_selector(".dash-dropdown-content", timeout=10_000)
    assert menu is not None
    assert "BAAUSDT" in menu.inner_text()
    screenshot(tab, "backtest-dropdown-open")
    tab.keyboard.press("Escape")
    tab.click("#bt-run")
    kpi = '[data-kpi="n_trades"][data-pair="BAAUSDT/BBBUSDT"]'
    tab.wait_for_selector(kpi, timeout=30_000)
    assert tab.inner_text(kpi) == f"{n_trades:.0f}"
    sharpe = tab.inner_text('[data-kpi="sharpe"][data-pair="BAAUSDT/BBBUSDT"]')
    assert sharpe == format(expected["stats"]["sharpe"], ".3f")
    tab.wait_for_selector("#bt-z .main-svg", timeout=10_000)
    entries = _trace_points(tab, "bt-z", "z-entries")
    exits = _trace_points(tab, "bt-z", "z-exits")
    assert entries == exits == n_trades
    assert _trace_points(tab, "bt-spread", "spread-entries") == n_trades
    assert tab.locator("#bt-trade-table tbody tr").count() == n_trades
    csv_href = tab.get_attribute("#bt-trades-csv", "href")
    lines = tab.request.get(stack.url + str(csv_href)).text().splitlines()
    assert len(lines) == n_trades + 1
    tab.wait_for_timeout(500)
    screenshot(tab, "backtest")
    assert console.errors == []


def test_sweep_fills_the_heatmap_and_the_page_stays_responsive(
    stack: Stack, page: tuple[Any, Console]
) -> None:
    tab, console = page
    y, x = legs(2000, seed=42)
    dataset = upload(stack.url, "sweep.csv", csv_of({"SAAUSDT": y, "SBBUSDT": x}))
    tab.goto(stack.url + "/backtest")
    tab.wait_for_selector("#sw-run", timeout=45_000)
    wait_for(lambda: dataset["id"] in tab.inner_text("#bt-dataset"), 20, "the new dataset chosen")
    tab.fill("#sw-entries", "1, 1.5, 2, 2.5")
    tab.fill("#sw-windows", "30, 60, 120")
    tab.click("#sw-run")
    tab.wait_for_selector("#sw-progress .progress-bar", timeout=10_000)
    # while it runs, the page still answers: a backtest run comes back
    tab.click("#bt-run")
    tab.wait_for_selector('[data-kpi="sharpe"][data-pair="SAAUSDT/SBBUSDT"]', timeout=60_000)
    wait_for(lambda: "12/12 done" in tab.inner_text("#sw-progress"), 120, "the sweep's end")
    cells = tab.evaluate(
        "() => document.querySelector('#sw-heatmap .js-plotly-plot').data[0].z.flat()"
        ".filter(v => v !== null).length"
    )
    assert cells == 12
    tab.wait_for_timeout(500)
    screenshot(tab, "backtest-sweep")
    assert console.errors == []
