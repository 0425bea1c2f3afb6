"""CPU time of the processes a benchmark runs, for costs per tick that a loaded machine moves
much less than wall-clock rates."""

from __future__ import annotations

import os
from pathlib import Path

import redis

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def redis_cpu_s(client: redis.Redis) -> float:
    """CPU seconds of Redis's main thread (where commands and functions run)."""
    info = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])
