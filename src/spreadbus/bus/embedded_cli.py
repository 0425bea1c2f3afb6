"""``spreadbus redis``: the embedded server in the foreground, until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading

from spreadbus.bus.embedded import EmbeddedRedis, setup_runtime
from spreadbus.config import Settings


def run_redis(settings: Settings, *, setup_only: bool) -> int:
    setup_runtime(say=lambda text: print(text, file=sys.stderr))
    if setup_only:
        print("embedded Redis is ready to run", file=sys.stderr)
        return 0
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    server = EmbeddedRedis(settings.data_dir, settings.redis_port)
    server.start()
    try:
        print(server.url, flush=True)  # on a line of its own, for scripts
        print(
            f"Redis 7.4 + timeseries on 127.0.0.1:{server.port}, files in {server.dir}; "
            "Ctrl-C stops",
            file=sys.stderr,
        )
        while not stop.wait(0.5):
            if server.process is not None and server.process.poll() is not None:
                print(
                    "redis-server exited unexpectedly; see " + str(server.log_path), file=sys.stderr
                )
                return 1
        return 0
    finally:
        server.stop()
