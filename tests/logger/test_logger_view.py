"""``spreadbus logs``: readable lines, service and level filters, rotated files in order, and
``--follow`` across rotations."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from spreadbus import cli
from spreadbus.config import Settings
from spreadbus.logger import view
from spreadbus.logger.sink import RotatingJsonlSink, log_dir
from spreadbus.logger.view import run_logs


def _sink(data_dir: Path, max_bytes: int = 1 << 20, backups: int = 3) -> RotatingJsonlSink:
    sink = RotatingJsonlSink(log_dir(data_dir), max_bytes=max_bytes, backups=backups)
    sink.open()
    return sink


def _record(service: str, level: str, event: str, **fields: Any) -> dict[str, Any]:
    return {
        "time": "2026-11-22T02:48:15.123Z",
        "level": level,
        "service": service,
        "event": event,
        "fields": fields,
    }


@pytest.fixture
def sample(data_dir: Path) -> Path:
    sink = _sink(data_dir)
    sink.write(_record("gateway", "INFO", "connected", url="wss://x", streams=6))
    sink.write(_record("engine", "DEBUG", "refit", pair="ETHUSDT/BTCUSDT"))
    sink.write(_record("engine", "WARNING", "slow batch", ms=120.5, note="two words"))
    sink.write(_record("web", "ERROR", "handler failed", path="/api/pairs"))
    sink.write(_record("engine", "CRITICAL", "out of memory"))
    sink.write(
        {**_record("unknown", "WARNING", "unparsed"), "raw": "garbage", "parse_error": "not JSON"}
    )
    sink.close()
    return data_dir


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_prints_every_event_readably(
    settings: Settings, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_logs(settings) == 0
    lines = _lines(capsys)
    assert len(lines) == 6
    assert lines[0].split() == [
        "2026-11-22",
        "02:48:15.123",
        "INFO",
        "gateway",
        "connected",
        "url=wss://x",
        "streams=6",
    ]
    assert lines[2].endswith('slow batch ms=120.5 note="two words"')
    assert lines[5].endswith('unparsed raw=garbage parse_error="not JSON"')


def test_filters_by_service_and_minimum_level(
    settings: Settings, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_logs(settings, service="engine") == 0
    assert [line.split()[4] for line in _lines(capsys)] == ["refit", "slow", "out"]

    assert run_logs(settings, level="warning") == 0
    assert [line.split()[2] for line in _lines(capsys)] == [
        "WARNING",
        "ERROR",
        "CRITICAL",
        "WARNING",
    ]

    assert run_logs(settings, service="engine", level="ERROR") == 0
    assert [line.split()[2:4] for line in _lines(capsys)] == [["CRITICAL", "engine"]]


def test_a_bad_level_is_one_line_and_exit_2(
    settings: Settings, sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_logs(settings, level="LOUD") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert "unknown level 'LOUD'" in captured.err


def test_no_log_files_yet_says_where_it_looked(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_logs(settings) == 1
    assert str(log_dir(settings.data_dir)) in capsys.readouterr().err


def test_markup_in_a_field_is_printed_literally(
    settings: Settings, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = _sink(data_dir)
    sink.write(_record("web", "INFO", "[bold]x[/bold]", q="[red]y[/red]"))
    sink.close()
    run_logs(settings)
    assert "[bold]x[/bold] q=[red]y[/red]" in capsys.readouterr().out


def test_rotated_files_are_printed_oldest_first(
    settings: Settings, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = _sink(data_dir, max_bytes=1024, backups=3)
    for number in range(60):
        sink.write(_record("engine", "INFO", "step", n=number))
    sink.close()
    assert sink.rotated >= 3
    run_logs(settings)
    numbers = [int(line.rsplit("n=", 1)[1]) for line in _lines(capsys)]
    assert numbers == list(range(60 - len(numbers), 60))


def test_follow_continues_across_rotations(
    settings: Settings,
    data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(view, "FOLLOW_POLL_INTERVAL", 0.02)
    sink = _sink(data_dir, max_bytes=1024, backups=5)
    sink.write(_record("engine", "INFO", "history"))
    sink.sync()
    stop = threading.Event()
    follower = threading.Thread(
        target=run_logs, args=(settings,), kwargs={"follow": True, "stop": stop, "level": "INFO"}
    )
    follower.start()
    output: list[str] = []

    def wait_for(text: str) -> None:
        deadline = time.monotonic() + 5
        while not any(text in line for line in output):
            assert time.monotonic() < deadline, f"{text!r} never printed; got {output[-3:]}"
            time.sleep(0.02)
            output.extend(capsys.readouterr().out.splitlines())

    try:
        wait_for("history")
        rotations = sink.rotated
        number = 0
        while sink.rotated < rotations + 3:  # write through three rotations
            sink.write(_record("engine", "INFO", "live", n=number))
            sink.write(_record("engine", "DEBUG", "hidden", n=number))  # below --level
            sink.sync()
            wait_for(f"n={number}")  # seen before the next write can rotate it away
            number += 1
    finally:
        stop.set()
        follower.join(5)
        sink.close()
    output.extend(capsys.readouterr().out.splitlines())
    live = [int(line.rsplit("n=", 1)[1]) for line in output if " live " in line]
    assert live == list(range(number))
    assert not any("hidden" in line for line in output)
    assert not follower.is_alive()


def test_the_cli_routes_logs_here(sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["logs", "--data-dir", str(sample), "--service", "web"]) == 0
    assert [line.split()[4:6] for line in _lines(capsys)] == [["handler", "failed"]]
    assert cli.main(["logs", "--data-dir", str(sample), "--level", "LOUD"]) == 2
    assert capsys.readouterr().err.startswith("spreadbus logs: unknown level 'LOUD'")


def test_lines_that_are_not_records_are_shown_not_fatal(
    settings: Settings, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = log_dir(data_dir)
    directory.mkdir()
    (directory / "spreadbus.jsonl").write_bytes(
        b'{"level": "INFO", "service": "web", "event": "odd", "fields": "not a map"}\n'
        b'{"time": "2026-11-22T02:48:15.123Z", "lev\n'  # torn by a crash
    )
    assert run_logs(settings) == 0
    first, second = _lines(capsys)
    assert first.endswith('odd fields="not a map"')
    assert "unparsed raw=" in second
    assert "not JSON" in second
