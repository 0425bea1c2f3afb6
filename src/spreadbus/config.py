"""One typed Settings object for every process.

Precedence: command-line flags > environment (``SPREADBUS_*``) > defaults. A bad value never
becomes a silent default: :func:`load_settings` raises :class:`SettingsError` with one line that
names the setting, and the CLI turns that into exit status 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}$")
DEFAULT_PAIRS = ("ETHUSDT/BTCUSDT", "SOLUSDT/ETHUSDT", "BNBUSDT/BTCUSDT")
FIXED_SOURCES = ("auto", "binance", "sim")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class SettingsError(ValueError):
    """A setting has a value we cannot use; the message names it in one line."""


def parse_pair(text: str) -> tuple[str, str]:
    """``"ethusdt/btcusdt"`` -> ``("ETHUSDT", "BTCUSDT")``: y regressed on x."""
    parts = text.strip().upper().split("/")
    if len(parts) != 2 or not all(SYMBOL_RE.match(p) for p in parts):
        raise ValueError(f"malformed pair {text.strip()!r}, expected Y/X such as ETHUSDT/BTCUSDT")
    if parts[0] == parts[1]:
        raise ValueError(f"pair {text.strip()!r} has the same symbol on both legs")
    return parts[0], parts[1]


def symbols_of(pairs: Iterable[str]) -> tuple[str, ...]:
    """Every symbol named by the pairs (``Y/X``), in first-seen order."""
    seen: dict[str, None] = {}
    for pair in pairs:
        for symbol in parse_pair(pair):
            seen.setdefault(symbol, None)
    return tuple(seen)


def parse_duration(value: Any) -> float:
    """Seconds from ``600``, ``"600"``, ``"10s"``, ``"10m"``, ``"1h"`` or ``"250ms"``."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION_RE.match(str(value))
        if not match:
            raise ValueError(f"cannot read {value!r} as a duration (use 30, 30s, 10m or 1h)")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration must be positive, got {value!r}")
    return seconds


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [item for item in re.split(r"[,\s]+", value) if item]
    return value


class Settings(BaseSettings):
    """Every knob of spreadbus. Environment variables are ``SPREADBUS_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="SPREADBUS_", extra="forbid", validate_default=True, frozen=True
    )

    # Where things live
    redis_url: str | None = Field(
        None, repr=False, description="External Redis; unset = embedded Redis"
    )
    redis_cluster: bool = Field(False, description="Treat redis_url as a Redis Cluster node")
    redis_port: int = Field(6379, ge=1, le=65535, description="Port of the embedded Redis")
    data_dir: Path = Field(Path("data"), description="Redis files, logs, Parquet archive")

    # What to watch
    pairs: Annotated[tuple[str, ...], NoDecode] = Field(
        DEFAULT_PAIRS, description="Pairs Y/X, comma separated (seeds config:pairs)"
    )
    pairs_override: bool = Field(
        False,
        description="Set by a typed --pairs: replace config:pairs at start (the environment "
        "only seeds it); not passed on to the services `up` starts",
    )
    source: str = Field("auto", description="auto | binance | sim | replay:PATH")
    speed: float = Field(1.0, ge=0, description="Replay speed: 1 real time, 0 as fast as possible")
    seed: int = Field(7, description="Random seed of the sim source and the ghost venue")

    # Binance
    binance_ws_url: str = Field("wss://fstream.binance.com", description="WebSocket host")
    binance_rest_url: str = Field("https://fapi.binance.com", description="REST host (backfill)")
    binance_stream: Literal["aggTrade", "trade"] = Field("aggTrade", description="Trade stream")
    binance_trade_route: str = Field("market", description="Route carrying @trade (unconfirmed)")
    binance_streams_per_connection: int = Field(200, ge=1, le=1024)
    binance_idle_timeout: float = Field(30.0, gt=0, description="Silence before reconnect (s)")
    binance_max_connection_age: float = Field(
        23 * 3600.0, gt=0, description="Planned reconnect before Binance's 24 h cut (s)"
    )
    auto_fallback_after: float = Field(10.0, gt=0, description="auto: seconds before sim")

    # Ghost venue
    ghost_noise_bps: float = Field(1.5, ge=0, description="Ghost price noise (bps, 1 sigma)")
    ghost_delay_ms: float = Field(
        40.0,
        ge=0,
        description="Mean ghost publication delay (ms), on a 10 ms beat",
    )
    ghost_delay_jitter_ms: float = Field(25.0, ge=0, description="Ghost delay spread (ms)")
    ghost_dislocation_prob: float = Field(0.002, ge=0, le=1)
    ghost_dislocation_bps: float = Field(25.0, ge=0)

    # Services
    web_host: str = Field("127.0.0.1", description="Dashboard/API bind address")
    web_port: int = Field(8050, ge=1, le=65535, description="Dashboard/API port")
    web_password: str | None = Field(
        None,
        repr=False,
        min_length=1,
        description="HTTP Basic auth password; required when web_host is not a loopback address",
    )
    web_allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (),
        description="Host names the web answers to, comma separated (default: loopback names "
        "and web_host; any when exposed with a password)",
    )
    upload_max_bytes: int = Field(
        500 * 1024 * 1024, ge=1, le=2**40, description="Largest dataset upload (bytes)"
    )
    heartbeat_interval: float = Field(2.0, gt=0, description="Seconds between heartbeats")

    # Scale-out (docs/scaling.md): shares held through lease:{kind}:{shard} keys
    engines: int = Field(1, ge=1, le=256, description="Shares the pairs are split into")
    gateways: int = Field(1, ge=1, le=256, description="Shares the symbols are split into")
    shard: Literal["none", "auto"] = Field(
        "none", description="auto: hold shares through leases and join the group"
    )
    instance: str = Field(
        "", pattern=r"^[A-Za-z0-9_.-]{0,32}$",
        description="Tells processes of one service apart (health key <service>-<instance>)",
    )  # fmt: skip
    stream_retention: float = Field(300.0, gt=0, description="Tick stream retention (s)")
    window: int = Field(300, ge=20, description="Engine rolling window (1 s bars)")
    archive_interval: float = Field(600.0, gt=0, description="Parquet write interval (s or 10m)")
    archive_compact_parts: int = Field(
        24, ge=2, le=10_000, description="Archivist: merge a partition once it has more parts"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    console_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] | None = Field(
        None, description="Console verbosity (default: log_level); `up` quiets its children"
    )

    # CentralLogger
    log_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=2**40, description="Rotate the log file at this size"
    )
    log_backups: int = Field(5, ge=0, le=1000, description="Rotated log files kept")
    log_webhook_url: str | None = Field(
        None,
        repr=False,
        pattern=r"^https?://\S+$",
        description="POST ERROR+ log events here (JSON)",
    )
    log_webhook_rate: float = Field(
        1.0, gt=0, le=1000, description="Webhook posts per second at most"
    )

    @field_validator("pairs", mode="before")
    @classmethod
    def _pairs(cls, value: Any) -> tuple[str, ...]:
        items = _split_list(value)
        if not items:
            raise ValueError("at least one pair is needed")
        out: list[str] = []
        for item in items:
            pair = "/".join(parse_pair(str(item)))
            if pair not in out:
                out.append(pair)
        return tuple(out)

    @field_validator("web_allowed_hosts", mode="before")
    @classmethod
    def _hosts(cls, value: Any) -> tuple[str, ...]:
        return tuple(str(item).strip().lower() for item in _split_list(value) if str(item).strip())

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value in FIXED_SOURCES:
            return value
        if value.startswith("replay:") and len(value) > len("replay:"):
            return value
        raise ValueError(f"unknown source {value!r}: use auto, binance, sim or replay:PATH")

    @field_validator("archive_interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        return parse_duration(value)

    @field_validator("log_level", "console_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
        if not value.startswith(schemes):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+cluster://")
        return value

    @property
    def symbols(self) -> tuple[str, ...]:
        """Every symbol named by the configured pairs, in first-seen order."""
        return symbols_of(self.pairs)

    @property
    def cluster(self) -> bool:
        return self.redis_cluster or bool(self.redis_url and "+cluster://" in self.redis_url)

    def child_environment(self) -> dict[str, str]:
        """These settings as ``SPREADBUS_*`` variables, for processes started by ``up``."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None or name == "pairs_override":  # `up` applies the flag once itself
                continue
            text = ",".join(value) if isinstance(value, tuple) else str(value)
            env[f"SPREADBUS_{name.upper()}"] = text
        return env


def load_settings(**overrides: Any) -> Settings:
    """Build Settings (flags given as ``overrides``) or raise a one-line :class:`SettingsError`."""
    known = {f"SPREADBUS_{name.upper()}" for name in Settings.model_fields}
    for variable in sorted(os.environ):
        if variable.startswith("SPREADBUS_") and variable not in known:
            # A typo must not silently fall back to a default.
            raise SettingsError(f"unknown setting {variable} in the environment")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "settings"
        flag = "--" + name.replace("_", "-")
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        raise SettingsError(
            f"invalid setting {name} (SPREADBUS_{name.upper()} / {flag}): {message}"
        ) from None
