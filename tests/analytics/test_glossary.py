"""Every pair-snapshot field has a definition, and the README's table is the glossary's."""

from __future__ import annotations

from pathlib import Path

from spreadbus.analytics.glossary import GLOSSARY, markdown
from spreadbus.engine.pairstate import STATISTIC_FIELDS, PairState

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_snapshot_field_is_defined() -> None:
    state = PairState("ETHUSDT/BTCUSDT", window=300, stale_s=60, history_s=300)
    fields = {*state.values, *STATISTIC_FIELDS, "updated_ms"}
    assert sorted(fields - GLOSSARY.keys()) == []
    assert sorted(GLOSSARY.keys() - fields) == []  # no definition of a field that is gone
    assert all(text.strip() and "\n" not in text for text in GLOSSARY.values())


def test_readme_quotes_the_glossary() -> None:
    text = README.read_text()
    start = text.index("<!-- glossary:start -->\n") + len("<!-- glossary:start -->\n")
    end = text.index("\n<!-- glossary:end -->")
    assert text[start:end] == markdown()
