"""The file side: size rotation with a bounded number of files, crash window, torn lines."""

from __future__ import annotations

from pathlib import Path

import orjson

from spreadbus.logger.sink import LOG_FILE_NAME, RotatingJsonlSink, log_files


def _record(number: int) -> dict[str, object]:
    return {
        "time": "t",
        "level": "INFO",
        "service": "gateway",
        "event": "tick",
        "fields": {"n": number},
    }


def _numbers(path: Path) -> list[int]:
    return [orjson.loads(line)["fields"]["n"] for line in path.read_bytes().splitlines()]


def test_rotation_keeps_exactly_the_configured_number_of_files(tmp_path: Path) -> None:
    sink = RotatingJsonlSink(tmp_path, max_bytes=1024, backups=3)
    sink.open()
    for number in range(400):  # ~80 bytes a line: ~30 rotations
        sink.write(_record(number))
    sink.close()

    files = log_files(tmp_path)
    names = [path.name for path in files]
    assert names == [
        f"{LOG_FILE_NAME}.3",
        f"{LOG_FILE_NAME}.2",
        f"{LOG_FILE_NAME}.1",
        LOG_FILE_NAME,
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # nothing else left
    assert all(path.stat().st_size <= 1024 for path in files)
    kept = [n for path in files for n in _numbers(path)]
    # the newest records, contiguous and in order across the files: nothing lost in a rotation
    assert kept == list(range(400 - len(kept), 400))
    assert sink.written == 400
    assert sink.rotated >= 25


def test_fewer_backups_than_before_removes_the_extra_files(tmp_path: Path) -> None:
    for backups in (4, 1):
        sink = RotatingJsonlSink(tmp_path, max_bytes=1024, backups=backups)
        sink.open()
        for number in range(200):
            sink.write(_record(number))
        sink.close()
    assert [p.name for p in log_files(tmp_path)] == [f"{LOG_FILE_NAME}.1", LOG_FILE_NAME]


def test_zero_backups_keeps_only_the_live_file(tmp_path: Path) -> None:
    sink = RotatingJsonlSink(tmp_path, max_bytes=1024, backups=0)
    sink.open()
    for number in range(100):
        sink.write(_record(number))
    sink.close()
    assert [p.name for p in tmp_path.iterdir()] == [LOG_FILE_NAME]
    assert _numbers(tmp_path / LOG_FILE_NAME)[-1] == 99


def test_buffered_lines_reach_the_file_within_the_flush_interval(tmp_path: Path) -> None:
    now = [100.0]
    sink = RotatingJsonlSink(
        tmp_path, max_bytes=1 << 20, backups=1, flush_interval=1.0, clock=lambda: now[0]
    )
    sink.open()
    path = tmp_path / LOG_FILE_NAME

    sink.write(_record(1))  # first write after a quiet spell: synced at once
    assert _numbers(path) == [1]
    now[0] += 0.4
    sink.write(_record(2))  # inside the interval: still in the buffer
    assert _numbers(path) == [1]
    now[0] += 0.6
    sink.sync_if_due()  # the listen loop calls this at least every 0.25 s
    assert _numbers(path) == [1, 2]
    sink.close()


def test_a_torn_last_line_from_a_crash_does_not_swallow_the_next_record(tmp_path: Path) -> None:
    path = tmp_path / LOG_FILE_NAME
    path.write_bytes(orjson.dumps(_record(1)) + b"\n" + b'{"time": "t", "lev')
    sink = RotatingJsonlSink(tmp_path, max_bytes=1 << 20, backups=1)
    sink.open()
    sink.write(_record(2))
    sink.close()
    lines = path.read_bytes().splitlines()
    assert lines[1] == b'{"time": "t", "lev'
    assert orjson.loads(lines[2])["fields"] == {"n": 2}


def test_a_record_larger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    sink = RotatingJsonlSink(tmp_path, max_bytes=1024, backups=2)
    sink.open()
    sink.write(_record(1))
    sink.write({**_record(2), "fields": {"n": 2, "blob": "x" * 3000}})
    sink.write(_record(3))
    sink.close()
    assert [_numbers(p) for p in log_files(tmp_path)] == [[1], [2], [3]]
