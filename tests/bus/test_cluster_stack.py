"""The whole stack (``spreadbus up``: gateway on sim, engine, logger, archivist, web) as real
processes on a real three-primary Redis Cluster."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd
import pytest
import redis

from spreadbus.bus import keys
from spreadbus.bus.lease import share_of
from spreadbus.proc import free_port

pytestmark = pytest.mark.slow
T = TypeVar("T")
SERVICES = ("gateway", "engine", "logger", "archivist", "web")
PROCESSES = (*SERVICES, "engine-2", "gateway-2")  # up --engines 2 --gateways 2
PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT")


def wait_for(
    predicate: Callable[[], T], timeout_s: float, what: str, up: subprocess.Popen[str] | None = None
) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if up is not None and up.poll() is not None:
            raise AssertionError(f"spreadbus up exited ({up.returncode}) before {what}")
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def cluster(redis_cluster_url: str) -> Iterator[redis.RedisCluster]:
    """A client of the session's cluster, every primary emptied first."""
    client = redis.RedisCluster.from_url(redis_cluster_url.replace("+cluster", ""))
    client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
    yield client
    client.close()


def _health(client: redis.RedisCluster, service: str) -> dict[str, str]:
    raw: Any = client.hgetall(keys.health(service))
    return {k.decode(): v.decode() for k, v in raw.items()}


def _api_equals_redis(base: str, client: redis.RedisCluster, pids: list[int]) -> None:
    """With the engines paused (SIGSTOP, well under the lease TTL), the API's snapshot of
    every pair equals its hash."""
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)  # a write already on its way lands
        for pair in PAIRS:
            got = httpx.get(f"{base}/api/analytics/{pair}", timeout=10)
            assert got.status_code == 200, got.text
            stored: Any = client.hgetall(keys.analytics_state(pair))
            fields = got.json()["fields"]
            for name in ("beta", "alpha", "zscore", "corr", "updated_ms"):
                assert fields[name] == pytest.approx(float(stored[name.encode()]), rel=1e-12)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def _stream_ids(client: redis.RedisCluster, stream: str) -> set[str]:
    entries: Any = client.xrange(stream)
    return {entry_id.decode() for entry_id, _ in entries}


def test_the_whole_stack_runs_on_a_cluster(
    redis_cluster_url: str, cluster: redis.RedisCluster, data_dir: Path
) -> None:
    """Ingest (two gateways splitting the symbols), analytics (two engines splitting the
    pairs), an alert rule set through the API, logs, the archive and the API, all on a
    cluster; the archive is compared with the streams it was made from."""
    port = free_port()
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": redis_cluster_url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_SOURCE": "sim",
        "SPREADBUS_PAIRS": ",".join(PAIRS),
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
        "SPREADBUS_ARCHIVE_INTERVAL": "2",
        "SPREADBUS_WINDOW": "20",
        "SPREADBUS_WEB_PORT": str(port),
    }
    up = subprocess.Popen(
        [sys.executable, "-m", "spreadbus", "up", "--duration", "150",
         "--engines", "2", "--gateways", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        for service in PROCESSES:
            wait_for(
                lambda s=service: _health(cluster, s).get("status") == "running",  # type: ignore[misc]
                60,
                f"{service} running on the cluster",
                up,
            )
        # a rule that holds for any pair with a correlation: it must fire once per pair
        rule = {"metric": "corr", "op": ">", "threshold": -2, "pair": "*", "cooldown_s": 3600}
        put = httpx.put(f"{base}/api/alerts/rules/cluster-test", json=rule, timeout=10)
        assert put.status_code == 200, put.text
        for pair in PAIRS:
            wait_for(
                lambda p=pair: cluster.hget(keys.analytics_state(p), "zscore"),  # type: ignore[misc]
                60,
                f"a snapshot of {pair}",
                up,
            )

        def fired() -> set[str]:
            alerts = httpx.get(f"{base}/api/alerts", timeout=10).json()["alerts"]
            pairs = {a["pair"] for a in alerts if a["rule_id"] == "cluster-test"}
            return pairs if pairs == set(PAIRS) else set()

        wait_for(fired, 30, "the API's rule to fire for every pair", up)
        # each engine holds one of the two shares (one pair each: crc32 mod 2 is 1 and 0)
        assert {share_of(p, 2) for p in PAIRS} == {0, 1}
        owners: Any = wait_for(
            lambda: (o := [cluster.get(keys.lease("engine", s)) for s in (0, 1)])[0] != o[1] and o,
            10, "the two engines to hold one share each", up,
        )  # fmt: skip
        pids = [int(_health(cluster, name)["pid"]) for name in ("engine", "engine-2")]
        assert {int(o.decode().split(":")[1]) for o in owners} == set(pids)
        _api_equals_redis(base, cluster, pids)

        def split_health() -> dict[str, Any] | None:
            """/api/health once each engine and each gateway process holds one share."""
            body: dict[str, Any] = httpx.get(f"{base}/api/health", timeout=10).json()
            groups = body["groups"]
            for kind in ("engine", "gateway"):
                held = groups.get(kind, {}).get("held", {})
                if sorted(held.values()) != sorted((kind, f"{kind}-2")):
                    return None
            return body

        # each process of a share group under its own name, with its own state and shares
        health = wait_for(split_health, 30, "one share per engine and gateway process", up)
        assert health is not None  # for mypy: wait_for returns only a true value
        assert health["healthy"] and health["simulated"], health
        assert sorted(health["services"]) == sorted(PROCESSES)
        for kind in ("engine", "gateway"):
            group = health["groups"][kind]
            assert (group["shares"], group["unheld"]) == (2, []), group
            for name in (kind, f"{kind}-2"):
                service = health["services"][name]
                assert service["state"] == "running", (name, service)
                assert [group["held"][str(s)] for s in service["shares"]] == [name], service
                assert service["pid"] == int(_health(cluster, name)["pid"])
        wait_for(lambda: list((data_dir / "archive" / "ticks").rglob("*.parquet")), 30,
                 "a first tick archive", up)  # fmt: skip
    finally:
        up.terminate()
        try:
            output, _ = up.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            up.kill()
            output, _ = up.communicate()
    assert up.returncode == 0, output
    assert "restarting" not in output, output  # nothing crashed on the cluster
    # every service's log events reached the logger's file through stream:logs
    events = [
        json.loads(x) for x in (data_dir / "logs" / "spreadbus.jsonl").read_text().splitlines()
    ]
    assert {e["service"] for e in events} >= set(SERVICES)
    assert not [e for e in events if e["level"] == "ERROR"], [
        e for e in events if e["level"] == "ERROR"
    ]
    # the archive (flushed on stop) holds exactly the streams' entries, real and ghost
    archive = pd.read_parquet(data_dir / "archive" / "ticks")
    symbols = sorted({s for pair in PAIRS for s in pair.split("/")})
    for symbol in symbols:
        rows = archive[archive["symbol"] == symbol]
        real = rows[rows["venue"] != "ghost"]["stream_id"]
        ghost = rows[rows["venue"] == "ghost"]["stream_id"]
        assert not real.duplicated().any() and not ghost.duplicated().any()
        assert set(real) == _stream_ids(cluster, keys.tick_stream(symbol)), symbol
        assert set(ghost) == _stream_ids(cluster, keys.ghost_stream(symbol)), symbol
        assert len(real) > 50, symbol
        entries: Any = cluster.xrange(keys.tick_stream(symbol))
        trade_ids = [int(e[0].decode().split("-")[1]) for e in entries]
        assert trade_ids == sorted(set(trade_ids)), f"{symbol}: a trade written twice"
