"""The dashboard in a real Chromium against the whole stack on the sim source."""

from __future__ import annotations

import math
from typing import Any

import pytest

from .conftest import PAIR, UI_MS, UI_S, Console, Stack, screenshot, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PAIR_PATH = "/pair/" + PAIR.replace("/", "-")


def _half_unit(text: str) -> float:
    """Half a unit of the last digit shown: ``0.0123`` -> 0.00005, ``5.63e-05`` -> 5e-08."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def _matches(text: str, value: str | None) -> bool:
    """Does the KPI text show ``value`` (the Redis hash's text) to its displayed precision?"""
    if value is None or not math.isfinite(float(value)):
        return text == "—"
    if text == "—":
        return False
    return abs(float(text) - float(value)) <= _half_unit(text) * (1 + 1e-9)


@pytest.mark.parametrize(
    ("path", "name", "ready"),
    [
        ("/", "overview", f'tr[data-pair="{PAIR}"]'),
        (PAIR_PATH, "pair", '#pair-z .main-svg'),
        ("/alerts", "alerts", "#alerts-rules table"),
        ("/system", "system", "#sys-services table"),
    ],
)  # fmt: skip
def test_every_view_loads_without_console_errors(
    stack: Stack, page: tuple[Any, Console], path: str, name: str, ready: str
) -> None:
    tab, console = page
    tab.goto(stack.url + path)
    tab.wait_for_selector(ready, timeout=UI_MS)
    banner = tab.locator("#source-banner")
    wait_for(lambda: "SIMULATED" in banner.inner_text(), UI_S, "the simulated-data banner")
    tab.wait_for_timeout(2500)  # a few live updates
    screenshot(tab, name)
    assert console.errors == []


def test_overview_has_a_row_per_pair_and_a_click_opens_the_pair(
    stack: Stack, page: tuple[Any, Console]
) -> None:
    tab, console = page
    tab.goto(stack.url + "/")
    tab.wait_for_selector(f'tr[data-pair="{PAIR}"]', timeout=UI_MS)
    configured = set(stack.redis().smembers("config:pairs"))
    shown = set(tab.eval_on_selector_all("tr[data-pair]", "rows => rows.map(r => r.dataset.pair)"))
    assert shown == configured
    tab.click(f'tr[data-pair="{PAIR}"]')
    tab.wait_for_url(f"**{PAIR_PATH}", timeout=UI_MS)
    tab.wait_for_selector(f'[data-kpi="beta"][data-pair="{PAIR}"]', timeout=UI_MS)
    assert console.errors == []


# What a snapshot holds, written by the test into a pair the engine does not compute, so the
# page must show exactly these (to its displayed precision); NaN must show as a dash.
PROBE_PAIR = "PROBEYUSDT/PROBEXUSDT"
PROBE_SNAPSHOT = {
    "zscore": "-1.23456", "spread": "0.000123456", "beta": "1.234567891", "alpha": "-512.98765",
    "kalman_beta": "0.98765", "corr": "0.876543", "adf_stat": "-3.45678", "adf_pvalue": "0.01234",
    "eg_pvalue": "0.04321", "half_life": "17.25", "hurst": "0.4321", "spread_vol": "0.123456",
    "var_95": "5.6789e-05", "cvar_95": "nan", "n": "300", "window": "300",
}  # fmt: skip
# fields that change at most once a second (bars, window tests), for the engine's own pair
SLOW_FIELDS = (
    "beta", "alpha", "kalman_beta", "corr", "adf_stat", "adf_pvalue", "eg_pvalue",
    "half_life", "hurst", "spread_vol", "var_95", "cvar_95",
)  # fmt: skip
SHOWN = "els => els.filter(e => !e.dataset.symbol).map(e => [e.dataset.kpi, e.innerText])"


def test_kpi_text_equals_a_written_snapshot(stack: Stack, page: tuple[Any, Console]) -> None:
    tab, _ = page
    client = stack.redis()
    key = f"state:analytics:{{{PROBE_PAIR}}}"
    client.hset(key, mapping=PROBE_SNAPSHOT)
    try:
        tab.goto(stack.url + "/pair/" + PROBE_PAIR.replace("/", "-"))
        wait_for(lambda: tab.inner_text('[data-kpi="beta"]') == "1.2346", UI_S, "the KPIs")
        shown = dict(tab.eval_on_selector_all("[data-kpi]", SHOWN))
        assert set(shown) >= set(PROBE_SNAPSHOT) - {"n", "window"}
        wrong = {f: (t, PROBE_SNAPSHOT.get(f)) for f, t in shown.items()
                 if not _matches(t, PROBE_SNAPSHOT.get(f))}  # fmt: skip
        assert not wrong, wrong
        assert shown["cvar_95"] == "—"
    finally:
        client.delete(key)


def test_kpi_text_equals_the_engines_snapshot(stack: Stack, page: tuple[Any, Console]) -> None:
    tab, _ = page
    tab.goto(stack.url + PAIR_PATH)
    key = f"state:analytics:{{{PAIR}}}"
    client = stack.redis()
    wait_for(
        lambda: tab.inner_text('[data-kpi="adf_pvalue"]') != "—", UI_S, "the KPIs' first values"
    )
    mismatched: dict[str, tuple[str, Any]] = {}
    for _attempt in range(3):
        # The page polls once a second: what it shows is the hash as it was a second or so
        # ago. Sample the hash for 3 s; each slow field must equal one of the samples.
        samples = []
        for _ in range(30):
            samples.append(client.hgetall(key))
            tab.wait_for_timeout(100)
        shown = dict(tab.eval_on_selector_all("[data-kpi]", SHOWN))
        samples.append(client.hgetall(key))
        mismatched = {
            field: (shown[field], samples[-1].get(field))
            for field in SLOW_FIELDS
            if not any(_matches(shown[field], sample.get(field)) for sample in samples)
        }
        if not mismatched:
            break
    assert not mismatched, mismatched


def test_a_live_value_changes_without_a_reload(stack: Stack, page: tuple[Any, Console]) -> None:
    tab, _ = page
    tab.goto(stack.url + PAIR_PATH)
    kpi = tab.locator('[data-kpi="last_price"]').first
    first = wait_for(lambda: (t := kpi.inner_text()) != "—" and t, UI_S, "a leg price")
    navigations: list[str] = []
    tab.on("framenavigated", lambda frame: navigations.append(frame.url))
    wait_for(lambda: kpi.inner_text() != first, UI_S, "the price to move")
    points = "id => document.querySelector(id + ' .js-plotly-plot').data[0].x.length"
    charts = ("#pair-z", "#pair-spread", "#pair-prices", "#pair-beta")
    before = {chart: tab.evaluate(points, chart) for chart in charts}
    for chart in charts:
        wait_for(lambda c=chart: tab.evaluate(points, c) > before[c], UI_S, f"{chart} to grow")
    assert navigations == []  # no reload: the page updated itself


def test_changing_bar_and_window_changes_the_charts(
    stack: Stack, page: tuple[Any, Console]
) -> None:
    tab, console = page
    tab.goto(stack.url + PAIR_PATH)
    tab.wait_for_selector("#pair-corr .main-svg", timeout=UI_MS)
    spacing = """id => { const x = document.querySelector(id + ' .js-plotly-plot').data[0].x;
        return x.length > 1 ? x[x.length - 1] - x[x.length - 2] : null; }"""
    wait_for(lambda: tab.evaluate(spacing, "#pair-beta") == 1000, UI_S, "1 s bars")
    tab.check("#pair-bar input[value='1m']", force=True)
    wait_for(
        lambda: tab.evaluate(spacing, "#pair-beta") == 60_000, UI_S, "1 m bars after the switch"
    )
    tab.select_option("#pair-window", "5")
    first_x = "() => document.querySelector('#pair-prices .js-plotly-plot').data[0].x[0]"
    last_x = "() => { const x = document.querySelector('#pair-prices .js-plotly-plot').data[0].x;" \
        " return x[x.length - 1]; }"  # fmt: skip
    wait_for(
        lambda: tab.evaluate(last_x) - tab.evaluate(first_x) <= 5 * 60_000, UI_S, "a 5 min span"
    )
    screenshot(tab, "pair-1m")
    assert console.errors == []


def test_a_rule_added_in_the_page_lands_and_its_alert_is_a_toast(
    stack: Stack, page: tuple[Any, Console]
) -> None:
    tab, console = page
    client = stack.redis()
    tab.goto(stack.url + "/alerts")
    tab.wait_for_selector("#alerts-rules table", timeout=UI_MS)
    tab.fill("#rule-id", "ui_any_z")
    tab.fill("#rule-metric", "zscore")
    tab.select_option("#rule-op", "abs>")
    tab.fill("#rule-threshold", "-1")  # |z| > -1 holds for every finite z: fires at once
    tab.fill("#rule-pair", PAIR)
    tab.fill("#rule-message", "ui test rule")
    tab.click("#rule-save")
    tab.wait_for_selector("#rule-saved", timeout=UI_MS)
    stored = wait_for(lambda: client.hget("config:alerts", "ui_any_z"), 5, "the rule in Redis")
    assert '"threshold":-1.0' in stored.replace(" ", "")
    tab.wait_for_selector('.toast [data-alert="ui_any_z"]', timeout=UI_MS)
    tab.wait_for_selector('#alerts-feed tr[data-alert="ui_any_z"]', timeout=UI_MS)
    screenshot(tab, "alerts-toast")
    # a bad rule gets the API's own message, and nothing is stored
    tab.fill("#rule-id", "bad_rule")
    tab.fill("#rule-metric", "no_such_metric")
    tab.click("#rule-save")
    error = tab.wait_for_selector("#rule-error", timeout=UI_MS)
    assert "no_such_metric" in error.inner_text()
    assert client.hget("config:alerts", "bad_rule") is None
    client.hdel("config:alerts", "ui_any_z")
    client.publish("channel:config", "alerts")
    assert console.errors == []


def test_any_two_symbols_open_and_watch_adds_the_pair(
    stack: Stack, page: tuple[Any, Console]
) -> None:
    tab, console = page
    client = stack.redis()
    pair = "SOLUSDT/BTCUSDT"  # both legs trade in the sim; not a configured pair
    assert not client.sismember("config:pairs", pair)
    tab.goto(stack.url + "/pair/SOLUSDT-BTCUSDT")
    tab.wait_for_selector("#pair-prices .main-svg", timeout=UI_MS)
    tab.click("#pair-watch", timeout=UI_MS)
    wait_for(lambda: client.sismember("config:pairs", pair), UI_S, "the pair in config:pairs")
    tab.goto(stack.url + "/")
    tab.wait_for_selector(f'tr[data-pair="{pair}"]', timeout=UI_MS)
    client.srem("config:pairs", pair)
    client.publish("channel:config", "pairs")
    assert console.errors == []
