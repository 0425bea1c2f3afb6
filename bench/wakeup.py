"""How late this machine wakes a sleeping process while a benchmark runs.

A latency target in milliseconds assumes a process gets a core within microseconds of its data
arriving. On a shared 2-core machine running Redis, a producer and a consumer at once, that is
not so: a process that sleeps 1 ms is woken late by however long the others hold both cores.
This probe, a separate process doing nothing but that, measures it in the same run, so the
latency rows can be read against it: every hop between processes (socket to gateway, gateway to
Redis, Redis to engine) can pay such a delay.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson

_PROBE = """
import json, sys, time
end = time.monotonic() + float(sys.argv[1])
late = []
while time.monotonic() < end:
    start = time.monotonic()
    time.sleep(0.001)
    late.append((time.monotonic() - start - 0.001) * 1000)
late.sort()
print(json.dumps({"p50": late[len(late) // 2], "p99": late[int(len(late) * 0.99)],
                  "max": late[-1], "n": len(late)}))
"""


class WakeupProbe:
    """``with WakeupProbe(seconds) as probe: ...`` then ``probe.rows(case)``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.result: dict[str, Any] = {}
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WakeupProbe:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _PROBE, str(self.seconds)], stdout=subprocess.PIPE
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        out, _ = self._process.communicate(timeout=self.seconds + 30)
        self.result = orjson.loads(out) if out.strip() else {}

    def rows(self, case: str) -> list[dict[str, Any]]:
        """The probe's wake-up delay as benchmark rows (empty if it did not report)."""
        return [
            {"case": case, "metric": f"OS wake-up delay {name} (probe)",
             "value": float(self.result[name]), "unit": "ms"}
            for name in ("p50", "p99")
            if name in self.result
        ]  # fmt: skip
