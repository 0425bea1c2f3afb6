"""``GET /api/health``: every service's heartbeat, and where the market data comes from."""

from __future__ import annotations

import time
from typing import Any, Literal

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, Field

from spreadbus.bus import keys
from spreadbus.services import SERVICES
from spreadbus.web.deps import Client
from spreadbus.web.fields import Scalar, text, typed

Status = Literal["healthy", "stale", "down"]
_BEAT_FIELDS = ("pid", "started_ms", "last_beat_ms", "interval_s", "counters", "service")

router = APIRouter(tags=["health"])


class ServiceHealth(BaseModel):
    status: Status
    age_s: float | None = None
    pid: int | None = None
    started_ms: int | None = None
    last_beat_ms: int | None = None
    fields: dict[str, Scalar] = Field(default_factory=dict)
    counters: dict[str, Any] = Field(default_factory=dict)


class Health(BaseModel):
    healthy: bool  # every service beats freshly
    source: str | None  # the gateway's market source; "sim..." means simulated data
    simulated: bool
    time_ms: int
    services: dict[str, ServiceHealth]


def service_health(raw: dict[bytes, bytes], now_s: float) -> ServiceHealth:
    """One heartbeat hash as a status: stale once older than 3 beats (at least 5 s), as
    ``spreadbus <service> --check`` judges it."""
    if not raw:
        return ServiceHealth(status="down")
    beat = {text(k): text(v) for k, v in raw.items()}
    try:
        last_ms = int(beat["last_beat_ms"])
        interval = float(beat.get("interval_s", 2.0))
        counters = orjson.loads(beat.get("counters", "{}"))
    except (KeyError, ValueError, orjson.JSONDecodeError):
        return ServiceHealth(status="stale", fields={k: typed(v) for k, v in beat.items()})
    age = max(now_s - last_ms / 1000, 0.0)
    return ServiceHealth(
        status="healthy" if age <= max(3 * interval, 5.0) else "stale",
        age_s=round(age, 3),
        pid=int(beat["pid"]) if beat.get("pid", "").isdigit() else None,
        started_ms=int(beat["started_ms"]) if beat.get("started_ms", "").isdigit() else None,
        last_beat_ms=last_ms,
        fields={k: typed(v) for k, v in sorted(beat.items()) if k not in _BEAT_FIELDS},
        counters=counters if isinstance(counters, dict) else {},
    )


@router.get("/health", response_model=Health)
async def health(client: Client) -> Health:
    """Heartbeats of gateway, engine, logger, archivist and web: ``healthy``, ``stale`` (no
    beat for 3 intervals) or ``down`` (no heartbeat key). ``simulated`` is true while the
    gateway feeds simulated data (``source`` starts with ``sim``)."""
    names = list(SERVICES)
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.health(name))
        beats: list[dict[bytes, bytes]] = await pipe.execute()
    now = time.time()
    services = {n: service_health(b, now) for n, b in zip(names, beats, strict=True)}
    gateway = services.get("gateway")
    source = gateway.fields.get("source") if gateway else None
    source_text = str(source) if source is not None else None
    return Health(
        healthy=all(s.status == "healthy" for s in services.values()),
        source=source_text,
        simulated=bool(source_text and source_text.startswith("sim")),
        time_ms=int(now * 1000),
        services=services,
    )
