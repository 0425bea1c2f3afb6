"""``/data`` in a real Chromium: upload a file, the offline analysis appears with the numbers
of statsmodels; a bad file shows the API's message naming line and column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm

from ._research import assert_dropdown_looks_like_select, csv_of, legs
from .conftest import Console, Stack, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]
PAIR = "DAAUSDT/DBBUSDT"  # Y sorts first: the page picks the first two symbols


def test_upload_then_the_analysis_appears(
    stack: Stack, page: tuple[Any, Console], tmp_path: Path
) -> None:
    """β and Engle-Granger p shown to their displayed precision (β to 4 decimals: 5e-5)."""
    tab, console = page
    y, x = legs(240, seed=31)
    path = tmp_path / "pair.csv"
    path.write_bytes(csv_of({"DAAUSDT": y, "DBBUSDT": x}))
    tab.goto(stack.url + "/data")
    tab.wait_for_selector("#data-upload", timeout=45_000)
    tab.set_input_files("#data-upload input[type=file]", str(path))
    tab.wait_for_selector("#data-upload-ok", timeout=30_000)
    assert "480 rows of DAAUSDT, DBBUSDT" in tab.inner_text("#data-upload-ok")
    beta = f'[data-kpi="beta"][data-pair="{PAIR}"]'
    tab.wait_for_selector(beta, timeout=30_000)
    wait_for(lambda: tab.inner_text(beta) != "—", 20, "the β KPI")
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    assert abs(float(tab.inner_text(beta)) - fit.params[1]) <= 5e-5 * (1 + 1e-9)
    assert tab.inner_text(f'[data-kpi="n"][data-pair="{PAIR}"]') == "240"
    tab.wait_for_selector("#data-johansen-table", timeout=10_000)
    tab.wait_for_selector("#data-z .main-svg", timeout=10_000)
    for dropdown in ("#data-dataset", "#data-y", "#data-x"):
        assert_dropdown_looks_like_select(tab, dropdown, "#data-hedge")
    tab.wait_for_timeout(500)
    screenshot(tab, "data-analysis")
    # another hedge: Huber's β, against statsmodels RLM on the same bars
    tab.select_option("#data-hedge", "huber")
    wait_for(lambda: tab.inner_text(beta) != f"{fit.params[1]:.4f}", 20, "the Huber β")
    huber = sm.RLM(y, sm.add_constant(x - x.mean()), M=sm.robust.norms.HuberT()).fit()
    assert abs(float(tab.inner_text(beta)) - huber.params[1]) <= 5e-5 * (1 + 1e-6)
    assert console.errors == []


def test_a_bad_file_shows_its_line_and_column(
    stack: Stack, page: tuple[Any, Console], tmp_path: Path
) -> None:
    tab, console = page
    path = tmp_path / "naive.csv"
    path.write_bytes(b"timestamp,symbol,price\n2026-11-18T10:00:00,BTCUSDT,1.5\n")
    tab.goto(stack.url + "/data")
    tab.wait_for_selector("#data-upload", timeout=45_000)
    tab.set_input_files("#data-upload input[type=file]", str(path))
    tab.wait_for_selector("#data-upload-error", timeout=30_000)
    text = tab.inner_text("#data-upload-error")
    assert "has no time zone" in text
    assert "line 2, column timestamp" in text
    screenshot(tab, "data-bad-upload")
    assert [e for e in console.errors if "422" not in e] == []  # the refused POST is logged


def test_downloads_link_and_archive(stack: Stack, page: tuple[Any, Console]) -> None:
    tab, console = page
    tab.goto(stack.url + "/data")
    tab.wait_for_selector("#dl-href", timeout=45_000)
    href = tab.get_attribute("#dl-href", "href")
    assert href is not None and href.startswith("/api/downloads/ticks?symbol=BTCUSDT")
    answer = tab.request.get(stack.url + href)
    assert answer.status == 200
    lines = answer.text().splitlines()
    assert lines[0].startswith("stream_id,symbol,trade_id,price")
    assert len(lines) > 1  # the sim has traded BTCUSDT this hour
    assert np.all([line.split(",")[1] == "BTCUSDT" for line in lines[1:]])
    assert console.errors == []
