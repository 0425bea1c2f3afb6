"""The floor under the gateway's flush delay: the least any Python forwarder can do.

Run as ``python -m bench.floor REDIS_URL WS_URL SECONDS``: it subscribes (the gateway's own
WebSocket client, picows) to the streams named in ``WS_URL`` and, for ``SECONDS``, forwards
every frame to Redis as received, raw, with no parsing, no checks, no ghost and no series: each
write is one round trip of ``XADD floor * f <frame>`` per frame (packed by hiredis), sent as
soon as the previous one is acknowledged. It prints JSON: the p50 and p99 of the same delay the
gateway reports (from the oldest frame's receipt to its write acknowledged), over every write.

``bench gateway`` runs it on the paced feed the gateway's flush delay is measured on, in the
same run: what that delay would be for a forwarder that does nothing but forward, on this
machine, beside this server and this Redis.
"""

from __future__ import annotations

import asyncio
import sys
import time

import numpy as np
import orjson
import redis.asyncio as aioredis

from spreadbus.bus.codec import epoch_ms
from spreadbus.bus.connect import pipelined
from spreadbus.gateway.wsclient import open_socket

STREAM = "bench:floor"


async def forward(url: str, ws_url: str, seconds: float) -> dict[str, float]:
    client = aioredis.Redis.from_url(url)
    socket = await open_socket(ws_url, 30.0)
    pending: list[tuple[bytes | str, float]] = []
    arrived = asyncio.Event()

    def on_frame(frame: bytes | str) -> None:
        pending.append((frame, epoch_ms()))
        arrived.set()

    reader = asyncio.create_task(socket.read(on_frame))
    delays: list[float] = []
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if not pending:
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), 0.25)
                except TimeoutError:
                    continue
            batch = pending[:]
            del pending[:]
            await pipelined(client, [("XADD", STREAM, "*", "f", frame) for frame, _ in batch])
            delays.append(epoch_ms() - batch[0][1])
    finally:
        reader.cancel()
        await socket.close()
        await client.aclose()
    p50, p99 = np.percentile(delays, [50, 99]) if delays else (float("nan"), float("nan"))
    return {"p50": float(p50), "p99": float(p99), "writes": len(delays)}


if __name__ == "__main__":
    redis_url, socket_url, duration = sys.argv[1], sys.argv[2], float(sys.argv[3])
    print(orjson.dumps(asyncio.run(forward(redis_url, socket_url, duration))).decode())
