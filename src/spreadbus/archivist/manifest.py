"""The manifest: what the archive durably contains, committed atomically after each batch.

``manifest.json`` (in the spool folder) records the last committed batch number, the highest
spool segment it consumed, and per source the last item archived: stream entry ids for ticks
(with each one's ordinal, for the trimming check of :mod:`spreadbus.archivist.service`),
bucket times for candles, sample times per analytics series. It is replaced atomically only
after every Parquet file of the batch is durable, so it never claims more than the archive has.

``pending.json`` is the intent written just before a batch's files: if the process dies
between the first file and the manifest commit, recovery deletes exactly those files (the
spool still holds their rows, so the next batch writes them again, once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import orjson

from spreadbus.archivist.atomic import remove_file, write_bytes_atomic
from spreadbus.archivist.spool import StreamId, format_id, parse_id

MANIFEST_NAME = "manifest.json"
PENDING_NAME = "pending.json"
VERSION = 1


class ManifestError(RuntimeError):
    """The manifest exists but cannot be read: refuse to guess (that could duplicate data)."""


@dataclass(frozen=True, slots=True)
class Manifest:
    batch: int = 0
    spool_seq: int = 0
    streams: dict[str, StreamId] = field(default_factory=dict)
    candles: dict[str, int] = field(default_factory=dict)  # symbol -> last bucket start ms
    analytics: dict[str, int] = field(default_factory=dict)  # "PAIR|metric" -> last sample ms
    ordinals: dict[str, int] = field(default_factory=dict)  # stream -> ordinal of its cursor
    ticks_total: int = 0


def analytics_key(pair: str, metric: str) -> str:
    return f"{pair}|{metric}"


def manifest_to_json(manifest: Manifest) -> bytes:
    return orjson.dumps(
        {
            "version": VERSION,
            "batch": manifest.batch,
            "spool_seq": manifest.spool_seq,
            "streams": {k: format_id(v) for k, v in sorted(manifest.streams.items())},
            "candles": dict(sorted(manifest.candles.items())),
            "analytics": dict(sorted(manifest.analytics.items())),
            "ordinals": dict(sorted(manifest.ordinals.items())),
            "ticks_total": manifest.ticks_total,
        },
        option=orjson.OPT_INDENT_2,
    )


def manifest_from_json(data: bytes) -> Manifest:
    try:
        raw = orjson.loads(data)
        if raw.get("version") != VERSION:
            raise ManifestError(f"unknown manifest version {raw.get('version')!r}")
        return Manifest(
            batch=int(raw["batch"]),
            spool_seq=int(raw["spool_seq"]),
            streams={str(k): parse_id(str(v)) for k, v in raw["streams"].items()},
            candles={str(k): int(v) for k, v in raw["candles"].items()},
            analytics={str(k): int(v) for k, v in raw["analytics"].items()},
            ordinals={str(k): int(v) for k, v in raw.get("ordinals", {}).items()},
            ticks_total=int(raw.get("ticks_total", 0)),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestError(f"manifest is unreadable: {exc!r}") from None


def load_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Manifest()
    return manifest_from_json(data)


def save_manifest(directory: Path, manifest: Manifest) -> None:
    write_bytes_atomic(directory / MANIFEST_NAME, manifest_to_json(manifest))


@dataclass(frozen=True, slots=True)
class Pending:
    """Files a batch is about to write, relative to the archive root."""

    batch: int
    files: tuple[str, ...]


def save_pending(directory: Path, pending: Pending) -> None:
    payload = {"batch": pending.batch, "files": list(pending.files)}
    write_bytes_atomic(directory / PENDING_NAME, orjson.dumps(payload))


def load_pending(directory: Path) -> Pending | None:
    try:
        raw = orjson.loads((directory / PENDING_NAME).read_bytes())
        return Pending(int(raw["batch"]), tuple(str(f) for f in raw["files"]))
    except FileNotFoundError:
        return None
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        # Written atomically, so this is not a torn write: refuse to guess.
        raise ManifestError(f"pending batch file is unreadable: {exc!r}") from None


def clear_pending(directory: Path) -> None:
    remove_file(directory / PENDING_NAME)
