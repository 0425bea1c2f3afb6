"""Alert rules: the rule model (validated when written), and evaluation that fires once per
crossing. Pure: no Redis, no clock (times come in as arguments).

A rule lives in the hash ``config:alerts`` as ``rule id -> JSON``::

    {"metric": "zscore", "op": "abs>", "threshold": 2, "pair": "*",
     "cooldown_s": 60, "hysteresis": 0.5}

- ``metric``: a pair snapshot field (``zscore``, ``adf_pvalue``, ``corr``, ...) or a symbol
  field (``basis_bps``, ...); see :data:`PAIR_METRICS` and :data:`SYMBOL_METRICS`.
- ``op``: ``>``, ``<``, ``>=``, ``<=`` or ``abs>`` (absolute value above the threshold).
- ``pair``: ``*`` (every pair, or every symbol for a symbol metric), one pair ``Y/X``, or one
  symbol for a symbol metric.
- ``hysteresis`` (>= 0, default 0): after firing, the rule re-arms only once the value is back
  inside the threshold by this margin, so a value hovering at the threshold does not fire on
  every wiggle.
- ``cooldown_s`` (>= 0, default 60): a new crossing this soon after the last alert of the same
  rule and subject is suppressed (counted, not sent).

Once per crossing: the rule fires when the value goes beyond the threshold and then stays
quiet, however long the value stays beyond it, until it has re-armed. Times are *data* times
(the trade time the value describes), so a replay at any speed alerts the same way.

Writers (the web API, scripts) call :func:`validate_rule` before writing a rule;
:func:`rule_to_json` gives the canonical text to store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from spreadbus.bus.codec import Alert
from spreadbus.config import SYMBOL_RE, parse_pair
from spreadbus.engine.pairstate import STATISTIC_FIELDS

Op = Literal[">", "<", ">=", "<=", "abs>"]
Scope = Literal["pair", "symbol"]

# every numeric statistic of the pair snapshot (the fields are defined once, in pairstate)
PAIR_METRICS: Final = frozenset(STATISTIC_FIELDS)
SYMBOL_METRICS: Final = frozenset(
    {"basis_bps", "basis_bps_mean", "price", "trade_rate_10s", "volume_60s"}
)
RULE_ID_RE: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class RuleError(ValueError):
    """A rule that cannot be used; the message says why in one line."""


class Rule(BaseModel):
    """One alert rule (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    metric: str
    op: Op
    threshold: float = Field(allow_inf_nan=False)
    pair: str = "*"
    cooldown_s: float = Field(60.0, ge=0, allow_inf_nan=False)
    hysteresis: float = Field(0.0, ge=0, allow_inf_nan=False)
    message: str = Field("", max_length=200)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RULE_ID_RE.match(value):
            raise ValueError("rule id must be 1-64 letters, digits or _ . : -")
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value not in PAIR_METRICS | SYMBOL_METRICS:
            known = ", ".join(sorted(PAIR_METRICS | SYMBOL_METRICS))
            raise ValueError(f"unknown metric {value!r} (known: {known})")
        return value

    @field_validator("pair")
    @classmethod
    def _pair(cls, value: str) -> str:
        value = value.strip().upper()
        if value == "*":
            return value
        if "/" in value:
            return "/".join(parse_pair(value))
        if not SYMBOL_RE.match(value):
            raise ValueError(f"pair must be '*', Y/X or a symbol, got {value!r}")
        return value

    @model_validator(mode="after")
    def _subject_fits_metric(self) -> Rule:
        if self.pair != "*" and (self.scope == "pair") != ("/" in self.pair):
            wanted = "'*' or Y/X" if self.scope == "pair" else "'*' or a symbol"
            raise ValueError(
                f"metric {self.metric} is a {self.scope} metric; pair must be {wanted}"
            )
        return self

    @property
    def scope(self) -> Scope:
        return "symbol" if self.metric in SYMBOL_METRICS else "pair"

    def applies_to(self, subject: str) -> bool:
        return self.pair in ("*", subject)

    def beyond(self, value: float) -> bool:
        """Is ``value`` past the threshold (the alert condition)?"""
        t = self.threshold
        if self.op == ">":
            return value > t
        if self.op == ">=":
            return value >= t
        if self.op == "<":
            return value < t
        if self.op == "<=":
            return value <= t
        return abs(value) > t

    def rearmed(self, value: float) -> bool:
        """Is ``value`` back inside the threshold by the hysteresis margin?"""
        t, h = self.threshold, self.hysteresis
        if self.op in (">", ">="):
            return value < t - h or (h == 0 and not self.beyond(value))
        if self.op in ("<", "<="):
            return value > t + h or (h == 0 and not self.beyond(value))
        return abs(value) < t - h or (h == 0 and not self.beyond(value))


def validate_rule(data: str | bytes | Mapping[str, Any], rule_id: str | None = None) -> Rule:
    """A :class:`Rule` from its JSON (or a mapping); :class:`RuleError` if it is not valid.

    ``rule_id`` is the hash field the rule is stored under; the JSON may repeat it as ``id``.
    """
    try:
        raw = orjson.loads(data) if isinstance(data, str | bytes) else dict(data)
    except orjson.JSONDecodeError as exc:
        raise RuleError(f"rule is not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise RuleError("rule must be a JSON object")
    if rule_id is not None:
        if raw.get("id", rule_id) != rule_id:
            raise RuleError(f"rule id {raw['id']!r} does not match its key {rule_id!r}")
        raw["id"] = rule_id
    try:
        return Rule.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "rule"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise RuleError(f"invalid rule {raw.get('id', '?')!r}: {where}: {message}") from None


def rule_to_json(rule: Rule) -> bytes:
    """The text to store under the rule's id (without the id itself)."""
    return orjson.dumps(rule.model_dump(exclude={"id"}))


DEFAULT_RULES: Final[tuple[Rule, ...]] = (
    Rule(id="zscore-2", metric="zscore", op="abs>", threshold=2.0, hysteresis=0.5,
         cooldown_s=60, message="spread stretched beyond 2 sigma"),
    Rule(id="adf-lost", metric="adf_pvalue", op=">", threshold=0.05, hysteresis=0.01,
         cooldown_s=300, message="spread lost stationarity (ADF p-value above 5%)"),
    Rule(id="basis-10bps", metric="basis_bps", op="abs>", threshold=10.0, hysteresis=3.0,
         cooldown_s=30, message="real vs ghost venue basis beyond 10 bps"),
)  # fmt: skip


@dataclass(slots=True)
class AlertState:
    """Firing state of one rule for one subject (pair or symbol)."""

    active: bool = False  # beyond the threshold and not re-armed yet
    last_fired_ms: int | None = None
    suppressed: int = 0  # crossings swallowed by the cooldown

    def to_json(self) -> bytes:
        return orjson.dumps(
            {"active": self.active, "last": self.last_fired_ms, "suppressed": self.suppressed}
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> AlertState:
        raw = orjson.loads(data)
        last = raw.get("last")
        return cls(bool(raw.get("active")), None if last is None else int(last),
                   int(raw.get("suppressed", 0)))  # fmt: skip


def state_field(rule_id: str, subject: str) -> str:
    """Field of the alert-state hash (``keys.alert_state()``) for one rule and subject."""
    return f"{rule_id}|{subject}"


class AlertBook:
    """Rules plus their firing states; collects what changed for the next write."""

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        self.rules: dict[str, Rule] = {}
        self.states: dict[str, AlertState] = {}
        self._changed: dict[str, AlertState | None] = {}  # field -> new state (None: delete)
        self.fired = 0
        self.suppressed = 0
        self.set_rules(rules)

    def set_rules(self, rules: Iterable[Rule]) -> None:
        """Replace the rules; states of removed or redefined rules are forgotten."""
        new = {rule.id: rule for rule in rules}
        stale = {rid for rid, rule in self.rules.items() if new.get(rid) != rule}
        self.rules = new
        for name in [f for f in self.states if f.split("|", 1)[0] in stale]:
            del self.states[name]
            self._changed[name] = None

    def load_states(self, raw: Mapping[bytes | str, bytes | str]) -> None:
        """States as persisted (``field -> JSON``); unreadable or orphaned ones are dropped."""
        for key, value in raw.items():
            name = key.decode() if isinstance(key, bytes) else key
            if name.split("|", 1)[0] not in self.rules:
                self._changed[name] = None
                continue
            try:
                self.states[name] = AlertState.from_json(value)
            except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
                self._changed[name] = None

    def forget(self, subject: str) -> None:
        """A pair or symbol is no longer analysed: drop its states."""
        for name in [f for f in self.states if f.split("|", 1)[1] == subject]:
            del self.states[name]
            self._changed[name] = None

    def evaluate(
        self, subject: str, scope: Scope, metrics: Mapping[str, float | int], time_ms: int
    ) -> list[Alert]:
        """Alerts fired by the current ``metrics`` of one subject at data time ``time_ms``
        (values that are missing or NaN change nothing)."""
        fired: list[Alert] = []
        for rule in self.rules.values():
            if rule.scope != scope or not rule.applies_to(subject):
                continue
            value = metrics.get(rule.metric)
            if value is None or not math.isfinite(value):
                continue  # unknown now: no change either way
            name = state_field(rule.id, subject)
            state = self.states.get(name)
            if state is None:
                state = self.states[name] = AlertState()
            if state.active:
                if rule.rearmed(value):
                    state.active = False
                    self._changed[name] = state
                continue
            if not rule.beyond(value):
                continue
            state.active = True
            self._changed[name] = state
            cooldown_ms = rule.cooldown_s * 1000.0
            if state.last_fired_ms is not None and time_ms - state.last_fired_ms < cooldown_ms:
                state.suppressed += 1
                self.suppressed += 1
                continue
            state.last_fired_ms = time_ms
            self.fired += 1
            fired.append(
                Alert(
                    rule_id=rule.id,
                    pair=subject,
                    metric=rule.metric,
                    op=rule.op,
                    value=float(value),
                    threshold=rule.threshold,
                    time_ms=int(time_ms),
                    message=rule.message
                    or f"{subject} {rule.metric} {value:.6g} {rule.op} {rule.threshold:g}",
                )
            )
        return fired

    def take_changes(self) -> dict[str, bytes | None]:
        """Changed states since the last call: ``field -> JSON`` (None: delete the field)."""
        out = {k: (None if v is None else v.to_json()) for k, v in self._changed.items()}
        self._changed.clear()
        return out
