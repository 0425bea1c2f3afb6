"""A web process killed mid-upload (``kill -9``) leaves its temporary folders (``.upload-*``
while the file streams in, ``.incoming-*`` while it is checked and stored); the next web to
start removes them, and only them: complete datasets stay, and the folders of an upload still
in flight in another live web are left alone (``web.upload.claim_upload_space``)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from spreadbus.proc import free_port, terminate

from .served import Served, start

BOUNDARY = "spreadbus-crash-test"
ROW = b"1763719200000,BTCUSDT,1.5\n"


def _temp(root: Path, prefix: str) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.startswith(prefix))


def _wait(
    predicate: Callable[[], object], within_s: float, what: str, step_s: float = 0.05
) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not within {within_s} s"
        time.sleep(step_s)


def _body(csv: bytes) -> tuple[bytes, bytes]:
    """The multipart body around ``csv``: (head up to the file's bytes, tail after them)."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head, f"\r\n--{BOUNDARY}--\r\n".encode()


class SlowUpload:
    """An upload sent by hand over a socket: headers and the first part of the file now, the
    rest when :meth:`finish` is called (the web waits for it meanwhile)."""

    def __init__(self, web: Served, csv: bytes, first_bytes: int) -> None:
        head, tail = _body(csv)
        self.rest = csv[first_bytes:] + tail
        port = int(web.url.rsplit(":", 1)[1])
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        request = (
            f"POST /api/datasets HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(head) + len(csv) + len(tail)}\r\n\r\n"
        ).encode()
        self.sock.sendall(request + head + csv[:first_bytes])

    def finish(self) -> tuple[int, bytes]:
        self.sock.sendall(self.rest)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = self.sock.recv(65536)
            if not piece:
                break
            answer += piece
        self.sock.close()
        return int(answer.split(b" ", 2)[1]), answer

    def close(self) -> None:
        self.sock.close()


def _kill(web: Served) -> None:
    os.kill(web.process.pid, signal.SIGKILL)
    web.process.wait(30)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_web_killed_mid_upload_leaves_nothing_after_its_restart(
    redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    root = data_dir / "datasets"
    console = tmp_path / "web.err"
    csv = b"timestamp,symbol,price\n" + ROW * 2_000

    def web_on(port: int) -> Served:
        served = start(redis_url, data_dir, port, console)
        served.wait_ready()
        return served

    port = free_port()
    web = web_on(port)
    try:
        kept = httpx.post(f"{web.url}/api/datasets", files={"file": ("kept.csv", csv)})
        assert kept.status_code == 201, kept.text
        kept_id = kept.json()["id"]

        # 1. killed with one upload streaming in (part of its file written) and another being
        # checked and stored: their .upload-* and .incoming-* folders stay
        slow = SlowUpload(web, csv, len(csv) // 2)
        _wait(lambda: _temp(root, ".upload-"), 30, "an .upload-* folder")
        big = b"timestamp,symbol,price\n" + ROW * 2_500_000  # ~65 MB: a second or more of ingest

        def send() -> None:  # its server is killed under it: the error is the point
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(f"{web.url}/api/datasets", files={"file": ("big.csv", big)}, timeout=120)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        _wait(lambda: _temp(root, ".incoming-"), 120, "an .incoming-* folder", step_s=0.002)
        _kill(web)
        sender.join(30)
        slow.close()
        # the problem is real: the kill left both
        assert len(_temp(root, ".incoming-")) == 1 and len(_temp(root, ".upload-")) == 2
        web = web_on(port)
        assert _temp(root, ".incoming-") == [] and _temp(root, ".upload-") == []
        listed = httpx.get(f"{web.url}/api/datasets").json()["datasets"]
        assert [d["id"] for d in listed] == [kept_id]  # the complete dataset stays, alone
        assert "removed stale upload folders" in console.read_text()

        # 2. a second web starting beside a live one leaves the live one's upload alone
        slow = SlowUpload(web, csv, len(csv) // 2)
        _wait(lambda: _temp(root, ".upload-"), 30, "an .upload-* folder")
        in_flight = _temp(root, ".upload-")
        other = web_on(free_port())
        try:
            assert _temp(root, ".upload-") == in_flight
            status, answer = slow.finish()
            assert status == 201, answer
        finally:
            terminate(other.process, 30)
        listed = httpx.get(f"{web.url}/api/datasets").json()["datasets"]
        assert len(listed) == 2 and all(d["rows"] == 2_000 for d in listed)
        assert _temp(root, ".upload-") == [] and _temp(root, ".incoming-") == []
    finally:
        terminate(web.process, 30)
