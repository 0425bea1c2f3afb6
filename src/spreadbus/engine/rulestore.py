"""Alert rules in Redis: the hash ``config:alerts`` (rule id -> rule JSON).

Writers (the web API, scripts) use :func:`put_rule` / :func:`delete_rule`: the rule is
validated first (:func:`~spreadbus.engine.alerts.validate_rule`), then written, then the
change is announced on ``channel:config`` so the engine applies it without a restart. The
engine reads with :func:`load_rules`, which seeds the default rules when the hash does not
exist at all (a user who deletes a default keeps it deleted) and skips, with the reason, any
entry someone wrote by hand that is not a valid rule.
"""

from __future__ import annotations

from typing import Any

from spreadbus.bus import keys
from spreadbus.bus.connect import AsyncRedis
from spreadbus.engine.alerts import DEFAULT_RULES, Rule, RuleError, rule_to_json, validate_rule


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def load_rules(client: AsyncRedis, seed: bool = True) -> tuple[list[Rule], dict[str, str]]:
    """The valid rules, and ``rule id -> reason`` for the entries that are not."""
    raw: Any = await client.hgetall(keys.CONFIG_ALERTS)
    if not raw and seed and not await client.exists(keys.CONFIG_ALERTS):
        for rule in DEFAULT_RULES:
            await client.hsetnx(keys.CONFIG_ALERTS, rule.id, rule_to_json(rule))
        raw = await client.hgetall(keys.CONFIG_ALERTS)
    rules: list[Rule] = []
    invalid: dict[str, str] = {}
    for key, value in sorted(raw.items()):
        rule_id = _text(key)
        try:
            rules.append(validate_rule(value, rule_id))
        except RuleError as exc:
            invalid[rule_id] = str(exc)
    return rules, invalid


async def put_rule(client: AsyncRedis, data: str | bytes | dict[str, Any], rule_id: str) -> Rule:
    """Validate and store a rule, then announce it; :class:`RuleError` if it is not valid."""
    rule = validate_rule(data, rule_id)
    await client.hset(keys.CONFIG_ALERTS, rule.id, rule_to_json(rule))
    await client.publish(keys.CHANNEL_CONFIG, b"alerts")
    return rule


async def delete_rule(client: AsyncRedis, rule_id: str) -> bool:
    """Remove a rule (and announce it); False if there was none."""
    removed = bool(await client.hdel(keys.CONFIG_ALERTS, rule_id))
    if removed:
        await client.publish(keys.CHANNEL_CONFIG, b"alerts")
    return removed
