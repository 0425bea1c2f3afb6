"""Datasets for the research pages' browser tests, uploaded through the API."""

from __future__ import annotations

from typing import Any

import httpx

from spreadbus.testing.datafiles import cointegrated_cents as legs
from spreadbus.testing.datafiles import generic_minutes as csv_of

__all__ = ["assert_dropdown_looks_like_select", "csv_of", "dropdown_field", "legs", "upload"]


def upload(url: str, name: str, data: bytes) -> dict[str, object]:
    answer = httpx.post(f"{url}/api/datasets", files={"file": (name, data)}, timeout=60)
    assert answer.status_code == 201, answer.text
    body: dict[str, object] = answer.json()
    return body


def dropdown_field(dropdown: str) -> str:
    """The clickable field of the ``dcc.Dropdown`` with CSS selector ``dropdown`` (Dash 4 puts
    the id on it or on a wrapper)."""
    return f":is({dropdown}.dash-dropdown, {dropdown} .dash-dropdown)"


def assert_dropdown_looks_like_select(tab: Any, dropdown: str, select: str) -> None:
    """The ``dcc.Dropdown`` ``dropdown`` is dressed as the ``dbc.Select`` ``select`` of the
    same page (the pair page's control): same field and text colours, same height within 2
    px. Unthemed, the dropdown's text was the page's grey on white."""
    script = """([a, b]) => [a, b].map(sel => {
        const el = document.querySelector(sel);
        const s = getComputedStyle(el);
        return [s.backgroundColor, s.color, el.getBoundingClientRect().height];
    })"""
    field = dropdown_field(dropdown)
    (bg_d, fg_d, h_d), (bg_s, fg_s, h_s) = tab.evaluate(script, [field, select])
    assert (bg_d, fg_d) == (bg_s, fg_s)
    assert abs(h_d - h_s) <= 2, (h_d, h_s)
