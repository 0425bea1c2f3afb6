"""Failover on a real 3 primaries + 3 replicas cluster: SIGKILL the primary that holds a
symbol's slot while a gateway (sim) and an engine run; the replica is promoted, both carry on
without a restart, and the acknowledged writes lost with the primary are counted as gaps in the
sim's consecutive trade ids. The gateway counts them itself (``acked_lost`` in its heartbeat,
gateway/ackaudit.py): its count must equal the test's. Twice: a plain kill (the loss measured
is whatever replication had not delivered), and a kill once the gateway wrote 20 more ticks
after the primary's link to its replica was cut (with the replica paused, so nothing in flight
reaches it), which must lose acknowledged writes: so the equality is tested on a loss that is
not zero."""

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from redis.crc import key_slot

from spreadbus.bus import keys
from spreadbus.proc import terminate
from spreadbus.testing.cluster import running_cluster

pytestmark = pytest.mark.slow
T = TypeVar("T")
PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/BNBUSDT")
SYMBOLS = ("ETHUSDT", "BTCUSDT", "SOLUSDT", "BNBUSDT")
NODE_TIMEOUT_MS = 1000  # a replica starts its election after this much silence


def wait_for(predicate: Callable[[], T], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (redis.RedisError, OSError):
            value = None  # mid-failover: ask again
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[tuple[str, dict[int, subprocess.Popen[bytes]]]]:
    """Six nodes of the bundled server, ``--cluster-replicas 1``; (url, port -> process)."""
    with running_cluster(
        tmp_path / "cluster", 24_000 + os.getpid() % 5_000, replicas=1,
        node_timeout_ms=NODE_TIMEOUT_MS,
    ) as cluster:  # fmt: skip
        yield cluster


def _start(name: str, env: dict[str, str], data_dir: Path) -> subprocess.Popen[bytes]:
    with (data_dir / f"{name}.log").open("wb") as log:  # the child keeps its copy
        return subprocess.Popen(
            [sys.executable, "-m", "spreadbus", name], env=env, stdout=log, stderr=log
        )


def _trade_ids(client: redis.RedisCluster, symbol: str) -> list[int]:
    entries: Any = client.xrange(keys.tick_stream(symbol))
    return [int(entry_id.decode().split("-")[1]) for entry_id, _ in entries]


def _replica(primary: redis.Redis) -> dict[str, Any]:
    """The primary's one replica, as INFO replication describes it (port, state, offset)."""
    info: Any = primary.info("replication")
    return dict(info["slave0"])


@pytest.mark.parametrize("replication", ["running", "cut"])
def test_a_killed_primary_fails_over_and_the_loss_is_counted(
    replicated_cluster: tuple[str, dict[int, subprocess.Popen[bytes]]],
    data_dir: Path,
    replication: str,
) -> None:
    url, nodes = replicated_cluster
    env = {
        **os.environ,
        "SPREADBUS_REDIS_URL": url,
        "SPREADBUS_DATA_DIR": str(data_dir),
        "SPREADBUS_SOURCE": "sim",
        "SPREADBUS_PAIRS": ",".join(PAIRS),
        "SPREADBUS_HEARTBEAT_INTERVAL": "0.5",
        "SPREADBUS_WINDOW": "20",
    }
    processes = {name: _start(name, env, data_dir) for name in ("gateway", "engine")}
    client = redis.RedisCluster.from_url(url.replace("+cluster", ""))
    try:
        wait_for(lambda: all(client.xlen(keys.tick_stream(s)) > 200 for s in SYMBOLS), 90,
                 "ticks of every symbol")  # fmt: skip
        wait_for(lambda: client.hget(keys.analytics_state(PAIRS[0]), "zscore"), 60,
                 "a first snapshot")  # fmt: skip
        # the primary holding BTCUSDT (and so ETHUSDT/BTCUSDT's leg) dies without a word
        slot = key_slot(keys.tick_stream("BTCUSDT").encode())
        victim = client.nodes_manager.get_node_from_slot(slot).port
        lengths = {s: client.xlen(keys.tick_stream(s)) for s in SYMBOLS}
        paused = None
        if replication == "cut":  # what the primary acknowledges from here never replicates
            primary = redis.Redis(port=victim)
            wait_for(lambda: _replica(primary)["state"] == "online", 30, "the replica in sync")
            paused = int(_replica(primary)["port"])
            nodes[paused].send_signal(signal.SIGSTOP)
            assert primary.client_kill_filter(_type="replica") == 1
            cut_at = primary.xlen(keys.tick_stream("BTCUSDT"))
            # the gateway writes on, acknowledged by the primary alone
            wait_for(lambda: primary.xlen(keys.tick_stream("BTCUSDT")) >= cut_at + 20, 10,
                     "writes the replica never gets")  # fmt: skip
            primary.close()
        killed_ms = int(time.time() * 1000)
        nodes[victim].kill()
        nodes[victim].wait(5)
        if paused is not None:
            nodes[paused].send_signal(signal.SIGCONT)
        began = time.monotonic()
        survivor = redis.RedisCluster.from_url(
            f"redis://127.0.0.1:{next(p for p in nodes if p != victim)}"
        )

        def promoted() -> bool:
            info: Any = survivor.cluster_info()
            return info["cluster_state"] == "ok" and survivor.xlen(keys.tick_stream("BTCUSDT")) > 0

        wait_for(promoted, 30, "the replica's promotion")
        failover_s = time.monotonic() - began

        def moved_on() -> bool:  # new ticks and a new snapshot, from the running processes
            grown = survivor.xlen(keys.tick_stream("BTCUSDT")) > lengths["BTCUSDT"] + 50
            snap = survivor.hget(keys.analytics_state(PAIRS[0]), "updated_ms")
            return grown and snap is not None and int(snap) > killed_ms + 1000

        wait_for(moved_on, 30, "ingest and analytics to carry on after the failover")
        carried_on_s = time.monotonic() - began
        assert all(p.poll() is None for p in processes.values()), "a service died"
        # Loss: the sim's trade ids are consecutive per symbol, and the gateway keeps and
        # retries a batch whose write failed; so a gap is an acknowledged write that the
        # killed primary had not yet replicated.
        report = {}
        for symbol in SYMBOLS:
            ids = _trade_ids(survivor, symbol)
            missing = sum(b - a - 1 for a, b in itertools.pairwise(ids) if b > a + 1)
            assert ids == sorted(set(ids))  # no duplicate, no reordering
            report[symbol] = (len(ids), missing)
        print(
            f"failover: promoted after {failover_s:.2f} s, ingest and analytics moving again "
            f"after {carried_on_s:.2f} s; per symbol (entries, lost acknowledged): {report}"
        )
        lost = sum(m for _, m in report.values())
        if replication == "cut":
            assert lost > 0, "the cut replication lost nothing: the count below proves nothing"
        else:
            assert lost <= 0.01 * sum(n for n, _ in report.values())  # a window's worth

        def audited() -> dict[bytes, bytes] | None:  # the gateway's own count, once it ran
            beat: Any = survivor.hgetall(keys.health("gateway"))
            ran = int(beat.get(b"acked_audits", 0)) and not int(beat.get(b"acked_audit_errors", 0))
            return beat if ran and int(beat.get(b"acked_lost", 0)) == lost else None

        try:
            wait_for(audited, 20, f"the gateway's own count of lost acknowledged ticks: {lost}")
        finally:
            seen: Any = survivor.hgetall(keys.health("gateway"))
            runs, lost_seen = seen.get(b"acked_audits"), seen.get(b"acked_lost")
            print(f"the gateway's audit: {runs!r} run(s), {lost_seen!r} lost")
        survivor.close()
    finally:
        client.close()
        for process in processes.values():
            terminate(process, 20)
