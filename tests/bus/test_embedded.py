"""The bundled Redis: starts with the timeseries module, is private, persists, fails clearly."""

import os
import socket
import stat
from pathlib import Path

import pytest
import redis

from spreadbus.bus import embedded
from spreadbus.bus.embedded import EmbeddedRedis, EmbeddedRedisError, url_file
from spreadbus.cli import main
from spreadbus.proc import free_port


def test_starts_private_persistent_and_stops(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path, port=free_port())
    url = server.start()
    try:
        assert url.startswith("redis://default:") and "@127.0.0.1:" in url
        client = redis.Redis.from_url(url)
        assert b"timeseries" in {m[b"name"] for m in client.module_list()}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        for private in ("password", "redis.conf", "url"):
            mode = stat.S_IMODE((tmp_path / "redis" / private).stat().st_mode)
            assert mode == 0o600, private
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port, password="wrong").ping()
        client.set("kept", "yes")
        client.close()
    finally:
        server.stop()
    assert server.process is None
    assert not url_file(tmp_path).exists()
    with socket.socket() as sock:  # the port is released
        sock.bind(("127.0.0.1", server.port))
    # the AOF brings data back, with the same password
    again = EmbeddedRedis(tmp_path, port=server.port)
    assert again.start() == url
    try:
        assert redis.Redis.from_url(url).get("kept") == b"yes"
    finally:
        again.stop()


def test_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(EmbeddedRedisError, match=f"port {port} on 127.0.0.1 is in use"):
            EmbeddedRedis(tmp_path, port=port).start()


def test_data_dir_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(EmbeddedRedisError, match="is not writable"):
        EmbeddedRedis(blocker, port=free_port()).start()


def test_missing_library_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The real failure on a fresh Debian 12: run the real binary without our libssl 1.1.
    monkeypatch.setattr(embedded, "RUNTIME_DIR", tmp_path / "nowhere")
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    if os.path.exists("/usr/lib/x86_64-linux-gnu/libssl.so.1.1"):
        pytest.skip("this system has libssl 1.1 installed")
    with pytest.raises(EmbeddedRedisError, match=r"library libssl\.so\.1\.1 is missing"):
        embedded.check_runnable()


def test_cli_prints_url_on_its_own_line_and_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        code = main(["redis", "--data-dir", str(tmp_path), "--port", str(sock.getsockname()[1])])
    err = capsys.readouterr().err
    assert code == 1
    assert "is in use" in err and "Traceback" not in err
