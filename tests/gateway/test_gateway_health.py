"""The gateway's health is derived from its own tasks: a dead flusher, state writer or config
watcher makes it failing, with the task named, while its event loop still runs fine."""

from __future__ import annotations

import asyncio
import time
from contextlib import nullcontext
from typing import Any

import pytest

from spreadbus.bus.configstore import ConfigWatcher
from spreadbus.bus.connect import AsyncRedis
from spreadbus.bus.service import EventLog
from spreadbus.config import Settings
from spreadbus.gateway.service import Gateway
from spreadbus.testing.services import running_service


async def _dies(*_: Any) -> None:
    await asyncio.sleep(0.5)
    raise RuntimeError("boom")


@pytest.mark.parametrize("task", ["flusher", "state writer", "config watcher"])
async def test_a_dead_essential_task_makes_the_gateway_failing(
    settings: Settings, task: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def factory(s: Settings, client: AsyncRedis, log: EventLog) -> Gateway:
        gateway = Gateway(s, client, log)
        if task == "flusher":
            monkeypatch.setattr(gateway.ingest, "run", _dies)
        elif task == "state writer":
            monkeypatch.setattr(gateway, "_state_loop", _dies)
        else:
            monkeypatch.setattr(ConfigWatcher, "run", _dies)
        return gateway

    sim = settings.model_copy(update={"source": "sim", "pairs": ("ETHUSDT/BTCUSDT",)})
    # the stop awaits the flusher, so its death is also the service's exit error (exit 1)
    ending = pytest.raises(RuntimeError, match="boom") if task == "flusher" else nullcontext()
    with ending:
        await _run_until_failing(factory, sim, task)


async def _run_until_failing(factory: Any, sim: Settings, task: str) -> None:
    async with running_service(factory, sim) as gateway:
        deadline = time.monotonic() + 20
        while task not in gateway.health_state.tasks:
            assert time.monotonic() < deadline, "the task never started"
            await asyncio.sleep(0.05)
        assert gateway.health_state.verdict().state == "running"  # alive for now
        await asyncio.wait({gateway.health_state.tasks[task]}, timeout=10)
        verdict = gateway.health_state.verdict()
        assert (verdict.state, verdict.reason) == ("failing", f"{task} died: RuntimeError('boom')")
