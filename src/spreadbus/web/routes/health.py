"""``GET /api/health``: every service's heartbeat, and where the market data comes from."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from spreadbus.bus import keys
from spreadbus.bus.health import State, Status, judge
from spreadbus.bus.lease import group_view
from spreadbus.services import SERVICES
from spreadbus.web.deps import Client
from spreadbus.web.fields import Scalar, typed

# Shown as ``fields`` for dashboards: everything but the lifecycle's own bookkeeping.
_HIDDEN_FIELDS = ("pid", "started_ms", "last_beat_ms", "interval_s", "counters", "service")

GROUP_KINDS = ("engine", "gateway")  # the services that can split their work into shares

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
    shares: list[int] | None = Field(
        None, description="the shares this process holds now, by their leases (engines and "
        "gateways that split the work); null for a process that does not share",
    )  # fmt: skip


class ShareGroupHealth(BaseModel):
    shares: int = Field(description="how many shares the processes of this kind split into")
    held: dict[int, str] = Field(description="share -> the process holding its lease")
    unheld: list[int] = Field(description="shares nobody serves now (a takeover is due)")


class Health(BaseModel):
    healthy: bool  # every service beats freshly and is running (not degraded or failing)
    source: str | None  # the gateway's market source; "sim..." means simulated data
    simulated: bool
    time_ms: int
    services: dict[str, ServiceHealth]  # the five, and every other process of a share group
    groups: dict[str, ShareGroupHealth] = Field(
        default_factory=dict, description="engine / gateway share groups, when they split work"
    )


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
    """Heartbeats of gateway, engine, logger, archivist and web, and of every further engine
    and gateway process that splits the work (``engine-2``, a process started by hand with
    ``--shard auto``: the members of ``lease:{kind}:members``, listed for a minute after they
    stopped renewing). ``status``: ``healthy``, ``stale`` (no beat for 3 intervals, at least
    5 s) or ``down`` (no heartbeat key); ``state``: ``running``, ``degraded`` or ``failing``
    with a ``reason``. ``groups``: who holds which share; a share nobody holds makes the whole
    unhealthy. ``simulated`` is true while the gateway feeds simulated data (``source``
    starts with ``sim``)."""
    views = [v for kind in GROUP_KINDS if (v := await group_view(client, kind)) is not None]
    names = list(SERVICES)
    names += sorted({m for v in views for m in v.members} - set(names))
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.health(name))
        beats: list[dict[bytes, bytes]] = await pipe.execute()
    now = time.time()
    services = {n: service_health(b, now) for n, b in zip(names, beats, strict=True)}
    for view in views:
        for name in set(view.members) | set(view.held.values()):
            if name in services:
                held = sorted(s for s, holder in view.held.items() if holder == name)
                services[name].shares = held
    groups = {
        v.kind: ShareGroupHealth(shares=v.shards, held=v.held, unheld=v.unheld) for v in views
    }
    gateway = services.get("gateway")
    source = gateway.fields.get("source") if gateway else None
    source_text = str(source) if source is not None else None
    return Health(
        healthy=all(s.status == "healthy" and s.state == "running" for s in services.values())
        and not any(g.unheld for g in groups.values()),
        source=source_text,
        simulated=bool(source_text and source_text.startswith("sim")),
        time_ms=int(now * 1000),
        services=services,
        groups=groups,
    )
