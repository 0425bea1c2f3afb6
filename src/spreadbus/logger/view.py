"""``spreadbus logs``: the central log, readable in a terminal.

One line per event: time (UTC, as written), level in colour, service, event, then the fields
as ``key=value``. ``--service`` keeps one service, ``--level`` that level and above. Without
``--follow`` every file is printed, oldest first; with it, the last few events of the live
file and then new ones as they arrive, across rotations (like ``tail -F``: the old file is
read to its end before the new one is opened, so an event written just before a rotation is
not skipped).
"""

from __future__ import annotations

import collections
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from rich.console import Console
from rich.text import Text

from spreadbus.config import Settings
from spreadbus.logger.record import Record, level_rank, parse_level, unparsed_record
from spreadbus.logger.sink import LOG_FILE_NAME, log_dir, log_files

FOLLOW_HISTORY = 20
FOLLOW_POLL_INTERVAL = 0.25
LEVEL_STYLES = {
    "DEBUG": "dim",
    "INFO": "green",
    "WARNING": "yellow",
    "ERROR": "bold red",
    "CRITICAL": "bold white on red",
}


@dataclass(frozen=True, slots=True)
class LogFilter:
    service: str | None = None
    min_level: str = "DEBUG"

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.service is not None and record.get("service") != self.service:
            return False
        return level_rank(record.get("level")) >= level_rank(self.min_level)


def parse_line(line: bytes) -> Record:
    """A record from one file line; a torn or foreign line is shown, not hidden."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        error = f"not JSON: {exc}"
    else:
        if isinstance(value, dict):
            return value
        error = "not a JSON object"
    record = unparsed_record(line, error)
    record["time"] = ""  # unknown: not the time we happen to read it
    return record


def _value_text(value: Any) -> str:
    if isinstance(value, str) and value and not any(c.isspace() for c in value):
        return value
    return orjson.dumps(value, default=str).decode()


def render(record: Mapping[str, Any]) -> Text:
    """One terminal line. Built from Text parts, so ``[red]`` inside a field stays literal."""
    level = str(record.get("level", "INFO"))
    text = Text(no_wrap=False)
    text.append(str(record.get("time", "")).replace("T", " ").removesuffix("Z"), style="dim")
    text.append(" ")
    text.append(f"{level:<8}", style=LEVEL_STYLES.get(level, ""))
    text.append(" ")  # a separator of its own: CRITICAL or a long service name fill the column
    text.append(f"{record.get('service', '?')!s:<9}", style="cyan")
    text.append(" ")
    text.append(str(record.get("event", "")), style="bold")
    fields = record.get("fields") or {}
    # a hand-edited or foreign line may hold anything here; show it rather than fail
    extras: dict[str, Any] = dict(fields) if isinstance(fields, dict) else {"fields": fields}
    for key in ("raw", "parse_error"):
        if key in record:
            extras[key] = record[key]
    for key, value in extras.items():
        text.append(f" {key}=", style="dim")
        text.append(_value_text(value))
    return text


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as file:
            for line in file:
                if line.strip():
                    yield line
    except FileNotFoundError:  # rotated away between listing and opening
        return


class LogTail:
    """New complete lines of a file that may be renamed away (rotated) and recreated."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None
        self._inode = 0
        self._partial = b""

    def read_new(self) -> list[bytes]:
        if self._file is None and not self._open():
            return []
        lines = self._drain()
        if self._replaced():
            lines += self._drain()  # what the writer added before it rotated
            if self._partial.strip():
                lines.append(self._partial)
            self.close()
            if self._open():
                lines += self._drain()
        return lines

    def _open(self) -> bool:
        try:
            self._file = self.path.open("rb")
        except FileNotFoundError:  # between the rotation's rename and the new file
            return False
        self._inode = os.fstat(self._file.fileno()).st_ino
        self._partial = b""
        return True

    def _drain(self) -> list[bytes]:
        assert self._file is not None  # callers opened it
        chunk = self._file.read()
        if not chunk:
            return []
        *complete, self._partial = (self._partial + chunk).split(b"\n")
        return [line for line in complete if line.strip()]

    def _replaced(self) -> bool:
        assert self._file is not None
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False  # the new file is not there yet; keep reading the old one
        return current.st_ino != self._inode or current.st_size < self._file.tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def follow_file(
    path: Path,
    show: Callable[[Record], None],
    log_filter: LogFilter,
    stop: threading.Event,
    poll_interval: float | None = None,
) -> None:
    poll_interval = poll_interval or FOLLOW_POLL_INTERVAL  # read late: tests shorten it
    tail = LogTail(path)
    try:
        history: collections.deque[Record] = collections.deque(maxlen=FOLLOW_HISTORY)
        history.extend(_matching(tail.read_new(), log_filter))
        for record in history:
            show(record)
        while not stop.is_set():
            lines = tail.read_new()
            for record in _matching(lines, log_filter):
                show(record)
            if not lines:
                stop.wait(poll_interval)
    finally:
        tail.close()


def _matching(lines: Iterable[bytes], log_filter: LogFilter) -> Iterator[Record]:
    return (record for record in map(parse_line, lines) if log_filter.matches(record))


def run_logs(
    settings: Settings,
    *,
    follow: bool = False,
    service: str | None = None,
    level: str | None = None,
    stop: threading.Event | None = None,
) -> int:
    """``spreadbus logs``; ``stop`` ends ``--follow`` (tests; users press Ctrl-C)."""
    try:
        min_level = parse_level(level) if level else "DEBUG"
    except ValueError as exc:
        print(f"spreadbus logs: {exc}", file=sys.stderr)
        return 2
    log_filter = LogFilter(service=service, min_level=min_level)
    directory = log_dir(settings.data_dir)
    console = Console(highlight=False, soft_wrap=True)

    def show(record: Record) -> None:
        console.print(render(record))

    if follow:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a user ends --follow
            follow_file(directory / LOG_FILE_NAME, show, log_filter, stop or threading.Event())
        return 0
    files = log_files(directory)
    if not files:
        print(
            f"spreadbus logs: no log files in {directory} (is the logger running?)", file=sys.stderr
        )
        return 1
    for path in files:
        for record in _matching(_lines(path), log_filter):
            show(record)
    return 0
