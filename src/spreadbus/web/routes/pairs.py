"""``/api/pairs``: what the engine analyses (``config:pairs``); a PUT announces the change."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel

from spreadbus.bus.configstore import set_pairs
from spreadbus.config import parse_pair
from spreadbus.web import read
from spreadbus.web.deps import AppSettings, Client
from spreadbus.web.names import BODY_PAIR_PATTERN

MAX_PAIRS: Final = 200

router = APIRouter(tags=["config"])


class Pairs(BaseModel):
    pairs: list[str]
    from_defaults: bool = False  # nothing configured yet: the process's SPREADBUS_PAIRS


@router.get("/pairs", response_model=Pairs)
async def get_pairs(client: Client, settings: AppSettings) -> Pairs:
    """The configured pairs ``Y/X`` (y regressed on x), sorted."""
    pairs, from_defaults = await read.configured_pairs(client, settings.pairs)
    return Pairs(pairs=pairs, from_defaults=from_defaults)


@router.put(
    "/pairs",
    response_model=Pairs,
    openapi_extra={  # each item as the check below reads it
        "requestBody": {
            "content": {"application/json": {"schema": {"items": {"pattern": BODY_PAIR_PATTERN}}}}
        }
    },
)
async def put_pairs(
    client: Client,
    pairs: Annotated[
        list[str],
        Body(
            min_length=1,
            max_length=MAX_PAIRS,
            openapi_examples={"two": {"value": ["ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT"]}},
        ),
    ],
) -> Pairs:
    """Replace the pair set (every pair ``Y/X``; 422 names the bad ones); the services pick
    the change up from ``channel:config``."""
    problems: list[str] = []
    for pair in pairs:
        try:
            parse_pair(pair)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise HTTPException(422, detail=problems)
    return Pairs(pairs=await set_pairs(client, pairs))
