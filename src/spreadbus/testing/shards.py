"""Test helpers for share groups: processes of one kind started with ``--shard auto``, and how
long a condition takes (the shard tests of engines, gateways and back-fill). ``until`` is
:func:`spreadbus.testing.poll.until`, re-exported for them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from spreadbus.testing.poll import until

Kind = Literal["engine", "gateway"]
# SPREADBUS_<this> says how many shares the group splits into
_COUNT_SETTING: dict[Kind, str] = {"engine": "SPREADBUS_ENGINES", "gateway": "SPREADBUS_GATEWAYS"}


async def takes_at_most(
    condition: Callable[[], Awaitable[Any]], limit_s: float, what: str
) -> float:
    """Seconds until ``condition`` held (printed), failing if that is more than ``limit_s``
    (it waits 5 s longer, so a miss says by how much)."""
    began = time.monotonic()
    await until(condition, limit_s + 5, what)
    took_s = time.monotonic() - began
    print(f"{what}: after {took_s:.2f} s")
    assert took_s <= limit_s, f"{what} took {took_s:.2f} s (at most {limit_s} s)"
    return took_s


def start_share_process(
    kind: Kind,
    redis_url: str,
    instance: str,
    data_dir: Path,
    shares: int = 2,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``spreadbus <kind> --shard auto`` as ``<kind>-<instance>`` among ``shares`` shares,
    its output in ``data_dir/<kind>-<instance>.log``."""
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": redis_url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_SHARD": "auto",
        _COUNT_SETTING[kind]: str(shares),
        "SPREADBUS_INSTANCE": instance,
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
        **(extra_env or {}),
    }
    with (data_dir / f"{kind}-{instance}.log").open("wb") as log:  # the child keeps its copy
        return subprocess.Popen(
            [sys.executable, "-m", "spreadbus", kind], env=env, stdout=log, stderr=log
        )


def stop_processes(processes: Mapping[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM each process still running (continued first, in case a test froze it); each
    must stop cleanly (exit code 0) within 20 s."""
    for name, process in processes.items():
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0, f"{name} did not stop cleanly"
