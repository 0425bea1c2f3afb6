"""``/api/alerts``: recent alert events, and the alert rules (``config:alerts``) to edit.

Rules are validated by the engine's own :func:`~spreadbus.engine.alerts.validate_rule`, and
every write is announced on ``channel:config`` (:mod:`spreadbus.engine.rulestore`), so the
engine applies it without a restart.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, HTTPException, Query, Response
from pydantic import BaseModel, ValidationError

from spreadbus.bus.codec import Alert
from spreadbus.engine.alerts import PAIR_METRICS, RULE_ID_RE, SYMBOL_METRICS, Rule, RuleError
from spreadbus.engine.rulestore import delete_rule, load_rules, put_rule
from spreadbus.web import read
from spreadbus.web.deps import Client
from spreadbus.web.names import BODY_PAIR_PATTERN, SYMBOL_PATTERN

MAX_RECENT: Final = 500
RULE_EXAMPLE: Final = {
    "metric": "zscore", "op": "abs>", "threshold": 2.5, "pair": "ETHUSDT/BTCUSDT",
    "cooldown_s": 60, "hysteresis": 0.5, "message": "spread beyond 2.5 sigma",
}  # fmt: skip

router = APIRouter(tags=["alerts"])


class Alerts(BaseModel):
    alerts: list[Alert]  # the bus's own Alert (a dataclass pydantic validates); newest first


class Rules(BaseModel):
    rules: list[Rule]
    invalid: dict[str, str]  # rule id -> why the stored entry is not a usable rule


def _strict_types(rule: dict[str, Any], rule_id: str) -> None:
    """422 when a field has another JSON type than the document says: ``true`` or ``"2.5"``
    where a number goes. The engine's :class:`Rule` reads leniently (``false`` became a
    hysteresis of 0); a request must mean what it says. Other problems are left to
    :func:`validate_rule`, which names them."""
    try:
        Rule.model_validate({**rule, "id": rule_id}, strict=True)
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"].endswith("_type"):
                where = ".".join(str(p) for p in error["loc"])
                raise HTTPException(
                    422, detail=f"{where}: {error['msg']}, got {error['input']!r}"
                ) from None


def _rule_id(rule_id: str) -> str:
    if not RULE_ID_RE.match(rule_id):
        raise HTTPException(422, detail="rule id must be 1-64 letters, digits or _ . : -")
    return rule_id


@router.get("/alerts", response_model=Alerts)
async def recent_alerts(
    client: Client, limit: Annotated[int, Query(ge=1, le=MAX_RECENT)] = 100
) -> Alerts:
    """The latest alert events the engine sent, newest first."""
    return Alerts(alerts=await read.recent_alerts(client, limit))


@router.get("/alerts/rules", response_model=Rules)
async def rules(client: Client) -> Rules:
    """Every alert rule. Until the engine has run once (it seeds the default rules), none."""
    valid, invalid = await load_rules(client, seed=False)  # a GET never writes
    return Rules(rules=valid, invalid=invalid)


def _rule_body() -> dict[str, Any]:
    """The rule body as :func:`validate_rule` reads it (the id comes from the path): a pair
    metric watches ``*`` or a pair Y/X, a symbol metric ``*`` or a symbol. (The group around
    the subject does not capture: the pair pattern's back-reference stays group 1.)"""
    pair, symbol = BODY_PAIR_PATTERN.strip("^$"), SYMBOL_PATTERN.strip("^$")

    def scope(metrics: frozenset[str], subject: str) -> dict[str, Any]:
        return {
            "properties": {
                "metric": {"enum": sorted(metrics)},
                "pair": {"type": "string", "pattern": f"^(?:\\*|{subject})$"},
            }
        }

    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["metric", "op", "threshold"],
        "properties": {
            "metric": {"type": "string"},
            "op": {"enum": [">", "<", ">=", "<=", "abs>"]},
            "threshold": {"type": "number"},
            "pair": {"type": "string", "default": "*"},
            "cooldown_s": {"type": "number", "minimum": 0},
            "hysteresis": {"type": "number", "minimum": 0},
            "message": {"type": "string", "maxLength": 200},
        },
        "oneOf": [scope(PAIR_METRICS, pair), scope(SYMBOL_METRICS, symbol)],
    }


@router.put(
    "/alerts/rules/{rule_id}",
    response_model=Rule,
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": _rule_body()}}}},
)
async def put_alert_rule(
    rule_id: str,
    client: Client,
    rule: Annotated[dict[str, Any], Body(openapi_examples={"zscore": {"value": RULE_EXAMPLE}})],
) -> Rule:
    """Create or replace a rule: ``metric``, ``op`` (``>``, ``<``, ``>=``, ``<=``, ``abs>``),
    ``threshold``, optional ``pair`` (``*``, ``Y/X`` or a symbol), ``cooldown_s``,
    ``hysteresis``, ``message``. 422 says what is wrong with it."""
    _strict_types(rule, _rule_id(rule_id))
    try:
        return await put_rule(client, rule, rule_id)
    except RuleError as exc:
        raise HTTPException(422, detail=str(exc)) from None


@router.delete("/alerts/rules/{rule_id}", status_code=204, response_class=Response)
async def delete_alert_rule(rule_id: str, client: Client) -> Response:
    """Remove a rule; 404 if there is none by that id."""
    if not await delete_rule(client, _rule_id(rule_id)):
        raise HTTPException(404, detail=f"no alert rule {rule_id!r}")
    return Response(status_code=204)
