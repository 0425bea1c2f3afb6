"""A real local Redis Cluster of the bundled server, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from spreadbus.bus.embedded import binary, server_env, setup_runtime
from spreadbus.proc import port_is_free, terminate


def _wait(port: int, node: subprocess.Popen[bytes], log: Path, timeout_s: float = 10.0) -> None:
    client = redis.Redis(port=port, socket_connect_timeout=1)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if node.poll() is not None:
                last = log.read_text().splitlines()[-1:]  # say why at once, not after a wait
                raise RuntimeError(f"cluster node {port} exited: {last}")
            with contextlib.suppress(redis.ConnectionError):
                client.ping()
                return
            time.sleep(0.05)
        raise RuntimeError(f"cluster node {port} did not answer within {timeout_s} s")
    finally:
        client.close()


@contextlib.contextmanager
def running_cluster(
    root: Path, first_port: int, *, replicas: int = 0, node_timeout_ms: int = 15_000
) -> Iterator[tuple[str, dict[int, subprocess.Popen[bytes]]]]:
    """Three primaries (and ``replicas`` replicas each) on loopback, TimeSeries loaded, files
    under ``root``; yields (``redis+cluster://`` URL, port -> node process). Ports are taken
    from ``first_port`` up, skipping any whose cluster bus port (+10000) is busy.
    ``node_timeout_ms``: how long a primary may be silent before its replica takes over."""
    setup_runtime(say=lambda _: None)
    module = binary("redis-server").parent.parent / "lib" / "redistimeseries.so"
    ports: list[int] = []
    port = first_port
    while len(ports) < 3 * (1 + replicas):
        if port_is_free(port) and port_is_free(port + 10_000):
            ports.append(port)
        port += 1
    nodes: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for port in ports:
            folder = root / str(port)
            folder.mkdir(parents=True)
            argv = [
                str(binary("redis-server")), "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(node_timeout_ms), "--save", "",
                "--appendonly", "no", "--loadmodule", str(module),
            ]  # fmt: skip
            with (folder / "node.log").open("w") as log:
                nodes[port] = subprocess.Popen(argv, cwd=folder, env=server_env(), stdout=log)
        for port, node in nodes.items():
            _wait(port, node, root / str(port) / "node.log")
        subprocess.run(
            [str(binary("redis-cli")), "--cluster", "create",
             *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", str(replicas),
             "--cluster-yes"],
            env=server_env(), check=True, capture_output=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = []
            for port in ports:
                client = redis.Redis(port=port)
                states.append(client.cluster("info")["cluster_state"])
                client.close()
            if all(state == "ok" for state in states):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the cluster did not reach state ok within 20 s")
        yield f"redis+cluster://127.0.0.1:{ports[0]}", nodes
    finally:
        for node in nodes.values():
            terminate(node, 5)
