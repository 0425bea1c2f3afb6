"""Exactly once across crashes: a real process dies (os._exit / SIGKILL) at every step of a
batch and of a compaction, and a restart finishes the job with every tick once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
import pandas as pd
import pytest

from spreadbus.archivist.compaction import compact_archive
from spreadbus.archivist.layout import spool_dir
from spreadbus.archivist.spool import ZERO_ID, Spool, parse_id
from spreadbus.archivist.writer import ArchiveWriter
from spreadbus.bus import keys, tickschema
from spreadbus.bus.codec import Tick
from spreadbus.config import Settings

if TYPE_CHECKING:
    from conftest import ArchiveView, Market

PAIR = "ETHUSDT/BTCUSDT"
BASE_MS = 1795305480000  # 2026-11-21 23:58 UTC

# The child appends 60% of the entries in several fsynced batches, seals, appends 10% more
# (the reader keeps going during a flush), then runs a batch (or a compaction) that dies at
# the chosen point with os._exit: no finally blocks, no flushing, like a SIGKILL.
# One "zygote" process imports the Archivist once and forks a child per crash point (in
# parallel). A child appends 60% of the entries in several fsynced batches, seals, appends 10%
# more (the reader keeps going during a flush), then runs a batch (or a compaction) that dies
# at the chosen point with os._exit: no finally blocks, no flushing, like a SIGKILL.
CHILD = r"""
import os, sys
from collections.abc import Iterator
from pathlib import Path
import orjson
from spreadbus.archivist import atomic, compaction, spool as spool_mod, writer as writer_mod
from spreadbus.archivist.layout import spool_dir

base, entries_file, points = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
entries = [tuple(e) for e in orjson.loads(Path(entries_file).read_bytes())]
die = lambda: os._exit(99)

def after(module, name, nth=1):
    original = getattr(module, name)
    calls = []
    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == nth:
            die()
        return result
    setattr(module, name, wrapper)

def before(module, name):
    setattr(module, name, lambda *a, **k: die())

def scenario(root, point):
    writer = writer_mod.ArchiveWriter(root)
    writer.recover()
    spool = spool_mod.Spool(spool_dir(root))
    spool.recover(writer.manifest.spool_seq)
    cut, more = int(len(entries) * 0.6), int(len(entries) * 0.7)
    if point.startswith("compaction"):
        # two committed batches (real ticks, then ghosts): every partition has two parts
        spool.append(entries[0::2]); writer.write_batch(spool, spool.seal())
        spool.append(entries[1::2]); writer.write_batch(spool, spool.seal())
        if point == "compaction-before-swap":
            before(compaction, "exchange_dirs")
        elif point == "compaction-after-swap":
            after(compaction, "exchange_dirs")
        elif point == "compaction-mid-write":
            before(atomic, "fsync_dir")
        compaction.compact_archive(root, 1, "2000-01-01")
        return
    for i in range(0, cut, 97):
        spool.append(entries[i:min(i + 97, cut)])
    if point == "spool-torn-append":
        spool.append(entries[cut:more])
        with open(spool.directory / spool_mod.segment_name(spool._active_seq), "ab") as handle:
            handle.write(spool_mod.encode_record(*entries[more])[:-7])  # a half-written line
        die()
    segments = spool.seal()
    spool.append(entries[cut:more])
    if point == "before-pending":
        before(writer_mod, "save_pending")
    elif point == "after-pending":
        after(writer_mod, "save_pending")
    elif point == "mid-parquet-write":
        atomic.pq.write_table = lambda table, handle, **kw: (handle.write(b"PAR1" * 999), die())
    elif point == "after-first-part":
        after(writer_mod, "write_part_file")
    elif point == "before-manifest":
        before(writer_mod, "save_manifest")
    elif point == "after-manifest":
        after(writer_mod, "save_manifest")
    elif point == "after-clear-pending":
        after(writer_mod, "clear_pending")
    elif point == "after-discard":
        after(spool_mod.Spool, "discard")
    writer.write_batch(spool, segments)

import gc
import pyarrow as pa
pa.array([0], type=pa.timestamp("ms", tz="UTC"))  # first tz use imports a lot: do it once
gc.freeze()  # children must not copy the parent's heap page by page (copy-on-write)
pids = {}
for point in points:
    pid = os.fork()
    if pid == 0:
        try:
            scenario(base / point / "archive", point)
        finally:
            os._exit(3)  # the crash point was not reached
    pids[pid] = point
status = {}
for _ in points:
    pid, code = os.wait()
    status[pids[pid]] = os.waitstatus_to_exitcode(code)
print(orjson.dumps(status).decode())
"""


BATCH_POINTS = (
    "spool-torn-append",
    "before-pending",
    "after-pending",
    "mid-parquet-write",
    "after-first-part",
    "before-manifest",
    "after-manifest",
    "after-clear-pending",
    "after-discard",
)
COMPACTION_POINTS = ("compaction-before-swap", "compaction-mid-write", "compaction-after-swap")


def make_entries() -> list[tuple[str, str, dict[str, str]]]:
    """Real and ghost entries of two symbols, across midnight, ids as the gateway makes them."""
    entries: list[tuple[str, str, dict[str, str]]] = []
    for s, symbol in enumerate(("ETHUSDT", "BTCUSDT")):
        for i in range(400):
            ms = BASE_MS + i * 500 + s
            tick = Tick(
                symbol, 5000 + i, f"{100 + i / 100:.2f}", "0.010", "buy", ms, ms, ms + 1.5, "sim"
            )
            entries.append((keys.tick_stream(symbol), tick.stream_id, tickschema.to_fields(tick)))
            ghost = Tick(symbol, 5000 + i, tick.price, "0.010", "buy", ms, ms, ms + 40.0, "ghost")
            entries.append(
                (keys.ghost_stream(symbol), f"{ms + 40}-0", tickschema.to_fields(ghost, ghost=True))
            )
    return entries


def archived_ids(root: Path) -> pd.DataFrame:
    frame = pd.read_parquet(root / "ticks")
    return frame[["symbol", "venue", "stream_id"]].astype(str)


def expected_ids(entries: list[tuple[str, str, dict[str, str]]]) -> pd.DataFrame:
    rows = []
    for stream, entry_id, fields in entries:
        symbol, ghost = keys.stream_symbol(stream)
        venue = "ghost" if ghost else tickschema.decode(fields, entry_id, symbol).source
        rows.append((symbol, venue, entry_id))
    return pd.DataFrame(rows, columns=["symbol", "venue", "stream_id"])


def resume_and_finish(root: Path, entries: list[tuple[str, str, dict[str, str]]]) -> int:
    """What a restarted Archivist does: recover, derive cursors from disk, read on from them
    (here: from the entry list instead of Redis), write a batch. Returns entries re-read."""
    writer = ArchiveWriter(root)
    writer.recover()
    spool = Spool(spool_dir(root))
    spooled = spool.recover(writer.manifest.spool_seq)
    cursors = dict(writer.manifest.streams)
    for stream, (last, _) in spooled.items():
        cursors[stream] = max(last, cursors.get(stream, ZERO_ID))
    rest = [e for e in entries if parse_id(e[1]) > cursors.get(e[0], ZERO_ID)]
    spool.append(rest)
    writer.write_batch(spool, spool.seal())
    spool.close()
    return len(rest)


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs folder when there is one: fsync is free there, and a process crash (unlike a
    power cut) does not depend on fsync. Twelve crashing children stay fast."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="spreadbus-test-") as folder:
        yield Path(folder)


def test_crash_at_every_step_loses_and_repeats_nothing(fast_dir: Path) -> None:
    tmp_path = fast_dir
    entries = make_entries()
    entries_file = tmp_path / "entries.json"
    entries_file.write_bytes(orjson.dumps(entries))
    points = BATCH_POINTS + COMPACTION_POINTS
    for point in points:
        (tmp_path / point / "archive").mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path), str(entries_file), *points],
        capture_output=True,
        timeout=60,
        check=True,
    )
    status = orjson.loads(done.stdout)
    assert status == dict.fromkeys(points, 99), done.stderr.decode()[-3000:]
    expected = expected_ids(entries).sort_values(["symbol", "venue", "stream_id"])
    for point in points:
        root = tmp_path / point / "archive"
        reread = resume_and_finish(root, entries)
        if point in ("after-manifest", "after-clear-pending", "after-discard"):
            assert reread == len(entries) - int(len(entries) * 0.7), point  # only the unread
        got = archived_ids(root).sort_values(["symbol", "venue", "stream_id"])
        assert not got.duplicated().any(), point
        assert got.reset_index(drop=True).equals(expected.reset_index(drop=True)), point
        leftovers = [p for p in root.rglob("*") if p.name.startswith(".") and p.name != ".spool"]
        assert not leftovers, (point, leftovers)
        assert not list(root.rglob("*.tmp")), point
        if point.startswith("compaction"):
            compact_archive(root, 1, "2000-01-01")  # finishing the compaction changes nothing
            parts = list((root / "ticks").rglob("*.parquet"))
            assert len(parts) == 4, point  # 2 symbols x 2 dates, one file each
            again = archived_ids(root).sort_values(["symbol", "venue", "stream_id"])
            assert again.reset_index(drop=True).equals(expected.reset_index(drop=True)), point


def _committed_batch(root: Path) -> int:
    try:
        return int(orjson.loads((root / ".spool" / "manifest.json").read_bytes())["batch"])
    except FileNotFoundError:
        return 0


def _spawn(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPREADBUS_")}
    env.update(
        SPREADBUS_REDIS_URL=settings.redis_url or "",
        SPREADBUS_DATA_DIR=str(settings.data_dir),
        SPREADBUS_ARCHIVE_INTERVAL="0.2s",
        SPREADBUS_ARCHIVE_COMPACT_PARTS="4",
        SPREADBUS_PAIRS=PAIR,
        SPREADBUS_HEARTBEAT_INTERVAL="0.5",
        SPREADBUS_LOG_LEVEL="INFO",
    )
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "spreadbus", "archivist"],
            env=env,
            stdout=handle,
            stderr=handle,
        )


@pytest.mark.slow
def test_sigkill_while_ticks_flow_then_restart_archives_each_tick_once(
    settings: Settings, market: Market, archive: ArchiveView, tmp_path: Path
) -> None:
    stop = threading.Event()
    published = 0
    streams = [keys.tick_stream(s) for s in ("ETHUSDT", "BTCUSDT")]
    streams += [keys.ghost_stream(s) for s in ("ETHUSDT", "BTCUSDT")]

    def produce() -> None:
        """Ticks keep flowing, and Redis keeps nothing the Archivist has spooled: every round
        trims each stream up to the id the Archivist reports as safely on disk."""
        nonlocal published
        while not stop.is_set():
            for symbol in ("ETHUSDT", "BTCUSDT"):
                market.publish(symbol, 10, step_ms=3)
            spooled = market.client.hgetall(keys.archivist_cursor())
            for key in streams:
                if key.encode() in spooled:
                    market.client.xtrim(key, minid=spooled[key.encode()], approximate=False)
            published = len(market.published)
            time.sleep(0.02)

    producer = threading.Thread(target=produce)
    producer.start()
    log = tmp_path / "archivist.log"
    rng = random.Random(7)
    try:
        for _ in range(3):
            batch = _committed_batch(archive.root)
            child = _spawn(settings, log)
            deadline = time.monotonic() + 20
            while _committed_batch(archive.root) <= batch and time.monotonic() < deadline:
                time.sleep(0.02)  # until this process has committed a batch of its own
            time.sleep(rng.uniform(0.0, 0.4))  # it writes every 0.2 s: often mid-write
            child.send_signal(signal.SIGKILL)
            assert child.wait(10) == -signal.SIGKILL
        child = _spawn(settings, log)
        time.sleep(0.5)
    finally:
        stop.set()
        producer.join()
    try:
        last = {
            key: market.client.xinfo_stream(key)["last-generated-id"].decode() for key in streams
        }

        def caught_up() -> bool:
            cursor = market.client.hgetall(keys.archivist_cursor())
            return all(cursor.get(k.encode(), b"").decode() == v for k, v in last.items())

        deadline = time.monotonic() + 20
        while not caught_up() and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        assert child.wait(20) == 0, log.read_text()[-3000:]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert published == len(market.published)
    # Redis trimmed most ticks (after they were spooled): the archive has every tick, once.
    info = [market.client.xinfo_stream(key) for key in streams]
    trimmed = sum(i["entries-added"] - i["length"] for i in info)
    assert trimmed > len(market.published) // 2
    archive.assert_exactly_once(market)
    text = log.read_text()
    assert "ticks lost" not in text
    assert "Traceback" not in text, text[-3000:]
    assert not list(archive.root.rglob("*.tmp"))
