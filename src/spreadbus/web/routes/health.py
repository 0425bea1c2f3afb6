"""``GET /api/health``: every service's heartbeat, and where the market data comes from."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from spreadbus.bus import keys
from spreadbus.bus.health import State, Status, judge
from spreadbus.services import SERVICES
from spreadbus.web.deps import Client
from spreadbus.web.fields import Scalar, typed

# Shown as ``fields`` for dashboards: everything but the lifecycle's own bookkeeping.
_HIDDEN_FIELDS = ("pid", "started_ms", "last_beat_ms", "interval_s", "counters", "service")

router = APIRouter(tags=["health"])


class ServiceHealth(BaseModel):
    status: Status = Field(description="healthy (fresh heartbeat), stale or down (none)")
    state: State = Field(
        "failing",
        description="running | degraded | failing, derived from the service's own tasks; "
        "a stale or missing heartbeat is failing",
    )
    reason: str = Field("", description="why the state is not running")
    age_s: float | None = None
    pid: int | None = None
    started_ms: int | None = None
    last_beat_ms: int | None = None
    fields: dict[str, Scalar] = Field(default_factory=dict)
    counters: dict[str, Any] = Field(default_factory=dict)


class Health(BaseModel):
    healthy: bool  # every service beats freshly and is running (not degraded or failing)
    source: str | None  # the gateway's market source; "sim..." means simulated data
    simulated: bool
    time_ms: int
    services: dict[str, ServiceHealth]


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def service_health(raw: dict[bytes, bytes], now_s: float) -> ServiceHealth:
    """One heartbeat hash as a status, judged by :func:`spreadbus.bus.health.judge` (the same
    rule as ``spreadbus <service> --check`` and ``spreadbus up``)."""
    seen = judge(raw, now_s)
    beat = seen.beat
    return ServiceHealth(
        status=seen.status,
        state=seen.state,
        reason=seen.reason,
        age_s=seen.age_s,
        pid=seen.pid if seen.age_s is not None else None,
        started_ms=_int(beat.get("started_ms")) if seen.age_s is not None else None,
        last_beat_ms=_int(beat.get("last_beat_ms")),
        fields={k: typed(v) for k, v in sorted(beat.items()) if k not in _HIDDEN_FIELDS},
        counters=dict(seen.counters),
    )


@router.get("/health", response_model=Health)
async def health(client: Client) -> Health:
    """Heartbeats of gateway, engine, logger, archivist and web. ``status``: ``healthy``,
    ``stale`` (no beat for 3 intervals, at least 5 s) or ``down`` (no heartbeat key);
    ``state``: ``running``, ``degraded`` or ``failing`` with a ``reason``. ``simulated`` is
    true while the gateway feeds simulated data (``source`` starts with ``sim``)."""
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
        healthy=all(s.status == "healthy" and s.state == "running" for s in services.values()),
        source=source_text,
        simulated=bool(source_text and source_text.startswith("sim")),
        time_ms=int(now * 1000),
        services=services,
    )
