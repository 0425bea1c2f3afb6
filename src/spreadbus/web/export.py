"""CSV answers: plain RFC 4180 text with a header row, offered as a download."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from fastapi import Response

MEDIA_TYPE = "text/csv; charset=utf-8"


def iso_ms(ms: int) -> str:
    """Epoch ms as ``2026-11-22T02:48:15.123Z``."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    return value


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[object]], filename: str
) -> Response:
    """A CSV download: ``None`` cells are empty, bytes are written as their text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return Response(
        buffer.getvalue(),
        media_type=MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
