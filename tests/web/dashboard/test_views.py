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


def test_kpi_text_equals_the_redis_snapshot(stack: Stack, page: tuple[Any, Console]) -> None:
    tab, _ = page
    tab.goto(stack.url + PAIR_PATH)
    key = f"state:analytics:{{{PAIR}}}"
    client = stack.redis()
    wait_for(
        lambda: tab.inner_text('[data-kpi="adf_pvalue"]') != "—", UI_S, "the KPIs' first values"
    )
    script = "els => els.filter(e => !e.dataset.symbol).map(e => [e.dataset.kpi, e.innerText])"
    mismatched: dict[str, tuple[str, Any]] = {}
    for _attempt in range(3):
        # The page polls once a second, so what it shows is the hash as it was up to a second
        # ago: sample the hash for 1.5 s, then each KPI must equal one of those samples.
        samples = []
        for _ in range(30):
            samples.append(client.hgetall(key))
            tab.wait_for_timeout(50)
        shown = dict(tab.eval_on_selector_all("[data-kpi]", script))
        samples.append(client.hgetall(key))
        mismatched = {
            field: (text, samples[-1].get(field))
            for field, text in shown.items()
            if not any(_matches(text, sample.get(field)) for sample in samples)
        }
        if not mismatched:
            break
    assert len(shown) >= 14
    assert not mismatched, mismatched


def test_a_live_value_changes_without_a_reload(stack: Stack, page: tuple[Any, Console]) -> None:
    tab, _ = page
    tab.goto(stack.url + PAIR_PATH)
    kpi = tab.locator('[data-kpi="last_price"]').first
    first = wait_for(lambda: (t := kpi.inner_text()) != "—" and t, UI_S, "a leg price")
    navigations: list[str] = []
    tab.on("framenavigated", lambda frame: navigations.append(frame.url))
    wait_for(lambda: kpi.inner_text() != first, UI_S, "the price to move")
    points = "() => document.querySelector('#pair-z .js-plotly-plot').data[0].x.length"
    before = tab.evaluate(points)
    wait_for(lambda: tab.evaluate(points) > before, UI_S, "the z chart to grow by extendData")
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
