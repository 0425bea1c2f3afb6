"""Alert rules: validation when written, once per crossing, hysteresis, cooldown, scopes."""

from __future__ import annotations

import orjson
import pytest

from spreadbus.engine.alerts import (
    DEFAULT_RULES,
    AlertBook,
    Rule,
    RuleError,
    rule_to_json,
    state_field,
    validate_rule,
)

PAIR = "ETHUSDT/BTCUSDT"


def rule(**fields: object) -> Rule:
    base: dict[str, object] = {"metric": "zscore", "op": "abs>", "threshold": 2.0}
    return validate_rule(base | fields, "r1")


def feed(
    book: AlertBook, values: list[float], step_ms: int = 1000, subject: str = PAIR
) -> list[int]:
    """Times (ms) at which an alert fired, one value per step."""
    fired = []
    for i, value in enumerate(values):
        for alert in book.evaluate(subject, "pair", {"zscore": value}, i * step_ms):
            fired.append(alert.time_ms)
    return fired


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"metric": "nope"}, "unknown metric"),
        ({"op": "=="}, "op"),
        ({"threshold": "NaN"}, "finite"),
        ({"threshold": "x"}, "threshold"),
        ({"cooldown_s": -1}, "cooldown_s"),
        ({"hysteresis": -0.1}, "hysteresis"),
        ({"pair": "BTCUSDT"}, "pair metric"),
        ({"pair": "ETH/ETH"}, "same symbol"),
        ({"metric": "basis_bps", "pair": PAIR}, "symbol metric"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(fields: dict[str, object], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        rule(**fields)


def test_rule_json_round_trip_and_id_checks() -> None:
    r = rule(pair="ethusdt/btcusdt", hysteresis=0.5)
    assert r.pair == PAIR  # normalized
    assert validate_rule(rule_to_json(r), "r1") == r
    with pytest.raises(RuleError, match="does not match"):
        validate_rule(b'{"id": "other", "metric": "zscore", "op": ">", "threshold": 1}', "r1")
    with pytest.raises(RuleError, match="rule id"):
        validate_rule({"metric": "zscore", "op": ">", "threshold": 1}, "has space")
    with pytest.raises(RuleError, match="not JSON"):
        validate_rule("{oops", "r1")
    assert [r.id for r in DEFAULT_RULES] == ["zscore-2", "adf-lost", "basis-10bps"]


def test_fires_once_per_crossing_not_while_beyond() -> None:
    book = AlertBook([rule(cooldown_s=0)])
    values = [0.0, 2.5, 3.0, 4.0, 2.1, 1.0, -2.5, -3.0, 0.0, 2.01]
    assert feed(book, values) == [1000, 6000, 9000]


def test_hysteresis_needs_the_value_back_inside_by_the_margin() -> None:
    book = AlertBook([rule(cooldown_s=0, hysteresis=0.5)])
    # 1.8 is inside the threshold but not by 0.5: no re-arm, so 2.2 does not fire again
    values = [2.1, 1.8, 2.2, 1.4, 2.2]
    assert feed(book, values) == [0, 4000]


def test_cooldown_swallows_a_new_crossing_that_comes_too_soon() -> None:
    book = AlertBook([rule(cooldown_s=10)])
    values = [3.0, 0.0, 3.0, 0.0] + [0.0] * 8 + [3.0]
    assert feed(book, values) == [0, 12_000]
    state = book.states[state_field("r1", PAIR)]
    assert state.suppressed == 1 and book.fired == 2 and book.suppressed == 1


@pytest.mark.parametrize(
    ("op", "threshold", "values", "fires"),
    [
        (">", 0.05, [0.01, 0.06, 0.07, 0.04, 0.051], [1000, 4000]),
        (">=", 1.0, [0.5, 1.0, 1.0, 0.9, 1.0], [1000, 4000]),
        ("<", -1.0, [0.0, -1.5, -0.5, -1.01], [1000, 3000]),
        ("<=", 0.0, [1.0, 0.0, 1.0, -1.0], [1000, 3000]),
    ],
)
def test_operators(op: str, threshold: float, values: list[float], fires: list[int]) -> None:
    book = AlertBook([rule(op=op, threshold=threshold, cooldown_s=0)])
    assert feed(book, values) == fires


def test_scopes_subjects_and_unknown_values() -> None:
    basis = validate_rule({"metric": "basis_bps", "op": "abs>", "threshold": 10}, "b")
    only_sol = validate_rule({"metric": "zscore", "op": ">", "threshold": 1,
                              "pair": "SOLUSDT/ETHUSDT"}, "s")  # fmt: skip
    book = AlertBook([basis, only_sol])
    assert book.evaluate(PAIR, "pair", {"zscore": 5.0, "basis_bps": 50.0}, 0) == []
    [alert] = book.evaluate("BTCUSDT", "symbol", {"basis_bps": -12.5}, 7)
    assert (alert.rule_id, alert.pair, alert.value, alert.time_ms) == ("b", "BTCUSDT", -12.5, 7)
    assert book.evaluate("SOLUSDT/ETHUSDT", "pair", {}, 0) == []  # unknown: no change
    assert len(book.evaluate("SOLUSDT/ETHUSDT", "pair", {"zscore": 2.0}, 0)) == 1


def test_states_persist_and_are_cleaned() -> None:
    book = AlertBook([rule(cooldown_s=60)])
    assert feed(book, [3.0]) == [0]
    changes = book.take_changes()
    assert set(changes) == {state_field("r1", PAIR)}
    # a restarted engine loads the states and does not fire again for the same crossing
    again = AlertBook([rule(cooldown_s=60)])
    again.load_states({k.encode(): v for k, v in changes.items() if v is not None})
    assert feed(again, [3.0, 3.5]) == []
    # a rule that changed forgets its states; a removed pair's states are deleted
    again.set_rules([rule(threshold=3.0)])
    assert again.take_changes() == {state_field("r1", PAIR): None}
    assert feed(again, [3.5]) == [0]
    again.forget(PAIR)
    assert again.take_changes() == {state_field("r1", PAIR): None}
    orphan = AlertBook([rule()])
    orphan.load_states({b"gone|X/Y": b"{}", b"r1|BAD": b"not json"})
    assert orphan.take_changes() == {"gone|X/Y": None, "r1|BAD": None}
    assert orjson.loads(changes[state_field("r1", PAIR)] or b"")["active"] is True
