"""A full archive disk: reported as a full disk (not as Redis), the cursor stays where the
spool ends, and when space returns every tick is archived exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from spreadbus.config import Settings
from spreadbus.testing.tmpfs import TmpfsUnavailableError, small_tmpfs

if TYPE_CHECKING:
    from conftest import ArchiveView, Market

SYMBOLS = ("ETHUSDT", "BTCUSDT")


async def test_full_disk_keeps_the_cursor_and_resumes_when_space_returns(
    arch_settings: Settings,
    market: Market,
    archive: ArchiveView,
    run_archivist: Any,
    wait_for: Any,
    data_dir: Path,
) -> None:
    try:
        mount = small_tmpfs(archive.root, "160k")
        resize = mount.__enter__()
    except TmpfsUnavailableError as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        async with run_archivist(arch_settings) as service:
            # the spool (where ticks wait for Parquet) sits on the same small disk
            while "disk:spool" not in service.health_state.conditions:
                for symbol in SYMBOLS:
                    market.publish(symbol, 200, step_ms=50)
                await asyncio.sleep(0.2)
                assert len(market.published) < 200_000, "the disk never filled"
            verdict = service.health_state.verdict()
            assert verdict.state == "failing"  # not reading any more: the cursor waits
            assert "spool: disk full (No space left on device)" in verdict.reason
            assert "redis" not in service.health_state.conditions
            for symbol in SYMBOLS:  # more while the disk is full
                market.publish(symbol, 100, step_ms=50)
            resize("64m")
            total = len(market.published)
            await wait_for(
                lambda: service.counters["ticks_archived"] == total, 30, "the archive to catch up"
            )
            await wait_for(lambda: service.health_state.verdict().state == "running", 10)
        archive.assert_exactly_once(market)
    finally:
        mount.__exit__(None, None, None)
