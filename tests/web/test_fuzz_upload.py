"""Malformed uploads (issue 12, fuzzing): hypothesis makes files of every kind of damage and
posts them through a real ``spreadbus web`` (its own process, the suite's Redis, a real data
dir) as ``POST /api/datasets``.

For every file:
- a bad one gets a 4xx (422, or 413 past the size limit) whose JSON ``detail`` names the
  problem, with the ``line`` and ``column`` of the first bad row and the count of the others
  where the damage is a row; never a 5xx, never a stack trace;
- nothing is left on disk: the datasets folder holds exactly the datasets of the good files,
  no ``.upload-*`` or ``.incoming-*`` folder;
- a good one is stored with exactly its rows: compared with pandas' parse of the same bytes
 (its default float parse rounds correctly), exact (prices are written as Python's shortest repr).

Hypothesis is derandomized: the same files every run. The counts by kind are printed (``-s``).
"""

from __future__ import annotations

import collections
import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .served import serving

LIMIT_BYTES = 1_000_000  # the web's upload_max_bytes here: a too-large file stays cheap
EXAMPLES = 500
T0_MS = 1_763_719_200_000  # 2025-11-21
SYMBOLS = ("BTCUSDT", "ETHUSDT", "sol1usdt", "BNBUSDT")
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
MAGICS = (PNG, b"\x1f\x8b\x08\x00", b"%PDF-1.7\n", b"\x7fELF\x02\x01", b"PK\x03\x04", b"")

# a bad cell, by column: none of these is a number, time or symbol the dataset reader takes
BAD_CELLS = {
    "price": ["abc", "-1", "0", "nan", "inf", "-inf", "1e999", "", "1.2.3", "0x10"],
    "qty": ["-1", "abc", "nan", "inf", "1e999", "--2"],
    "timestamp": ["yesterday", "123", "99999999999999", "2025-11-21T10:00:00", "", "-5",
                  "1.5e12", "2025-13-01T00:00:00Z"],
    "symbol": ["BTC-USDT", "B", "", "BTC USDT", "ÜÜÜ", "A" * 21],
}  # fmt: skip
BAD_HEADERS = ["time,sym,px", "timestamp,symbol,price,size", "timestamp,symbol", "a,b,c,d,e",
               "timestamp;symbol;price", "price,symbol,timestamp"]  # fmt: skip


@dataclass
class Case:
    kind: str
    name: str
    data: bytes
    rows: pd.DataFrame | None = None  # a good file: what it holds (pandas' parse)
    status: int = 422
    line: int | None = None  # the first bad row's line, when the damage is a row
    column: str | int | None = None
    others: int | None = None  # how many more bad rows the answer must count


# ---- good files --------------------------------------------------------------------------------
@st.composite
def good_csv(draw: st.DrawFn, min_rows: int = 1) -> tuple[list[list[str]], bool, int, str]:
    """Rows of cells (text), header or not, width (3: no qty, 4), line end."""
    width = draw(st.sampled_from([3, 4]))
    n = draw(st.integers(min_rows, 40))
    price = st.floats(1e-8, 1e9, allow_nan=False, allow_infinity=False)
    qty = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
    rows = []
    for i in range(n):
        cells = [str(T0_MS + i * draw(st.integers(1, 5_000))), draw(st.sampled_from(SYMBOLS)),
                 repr(draw(price))]  # fmt: skip
        if width == 4:
            cells.append(repr(draw(qty)))
        rows.append(cells)
    return rows, draw(st.booleans()), width, draw(st.sampled_from(["\n", "\r\n"]))


def text_of(rows: list[list[str]], header: bool, width: int, end: str) -> bytes:
    lines = [",".join(["timestamp", "symbol", "price", "qty"][:width])] if header else []
    lines += [",".join(r) for r in rows]
    return (end.join(lines) + end).encode()


def pandas_rows(data: bytes, header: bool, width: int) -> pd.DataFrame:
    """The independent parse of a good generic CSV."""
    names = ["timestamp", "symbol", "price", "qty"][:width]
    frame = pd.read_csv(
        io.BytesIO(data), header=0 if header else None, names=names,
        dtype={"timestamp": np.int64, "symbol": str, "price": np.float64, "qty": np.float64},
        keep_default_na=False,
    )  # fmt: skip
    out = pd.DataFrame(
        {
            "ts_ms": frame["timestamp"].to_numpy(np.int64),
            "symbol": frame["symbol"].str.upper(),
            "price": frame["price"].to_numpy(np.float64),
            "qty": frame["qty"].to_numpy(np.float64) if width == 4 else math.nan,
        }
    )
    return out


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


# ---- the cases, by kind ------------------------------------------------------------------------
@st.composite
def good(draw: st.DrawFn) -> Case:
    rows, header, width, end = draw(good_csv())
    data = text_of(rows, header, width, end)
    if draw(st.booleans()):  # zipped, under an odd or hostile member name (never unpacked)
        member = draw(st.sampled_from(["data.csv", "../../escape.csv", "dir/x.CSV"]))
        return Case(
            "good zip", "upload.zip", zipped({member: data}), pandas_rows(data, header, width), 201
        )
    return Case("good", "upload.csv", data, pandas_rows(data, header, width), 201)


@st.composite
def bad_rows(draw: st.DrawFn, kind: str) -> Case:
    """A good file with bad rows at data rows >= 1 (the first one fixes the layout):
    ``bad number`` one number, ``mixed`` 1-6 of any damage."""
    rows, header, width, end = draw(good_csv(min_rows=3))
    count = 1 if kind == "bad number" else draw(st.integers(1, min(6, len(rows) - 1)))
    where = sorted(draw(st.sets(st.integers(1, len(rows) - 1), min_size=count, max_size=count)))
    first: tuple[int, str | int] | None = None
    for index in where:
        cells = rows[index]
        damage = (draw(st.sampled_from(["price", "qty"][: width - 2])) if kind == "bad number"
                  else draw(st.sampled_from(["price", "qty", "timestamp", "symbol", "short",
                                             "long"])))  # fmt: skip
        if damage == "qty" and width == 3:
            damage = "price"
        column: str | int
        if damage == "short":
            cells[:] = cells[: draw(st.integers(1, width - 1))]
            column = len(cells) + 1
        elif damage == "long":
            cells.append(draw(st.sampled_from(["1", "", "x"])))
            column = width + 1
        else:
            cells[("timestamp", "symbol", "price", "qty").index(damage)] = draw(
                st.sampled_from(BAD_CELLS[damage])
            )
            column = damage
        if first is None:
            first = (index, column)
    assert first is not None
    data = text_of(rows, header, width, end)
    line = first[0] + 1 + int(header)
    if kind == "mixed" and draw(st.booleans()):  # the bad file inside a zip, beside a good one
        good_rows, good_header, good_width, good_end = draw(good_csv())
        ok = text_of(good_rows, good_header, good_width, good_end)
        return Case("mixed zip", "upload.zip", zipped({"a.csv": ok, "b.csv": data}),
                    line=line, column=first[1], others=count - 1)  # fmt: skip
    return Case(kind, "upload.csv", data, line=line, column=first[1], others=count - 1)


@st.composite
def truncated(draw: st.DrawFn) -> Case:
    """A good file cut inside its last row, before the row's second comma."""
    rows, header, width, end = draw(good_csv(min_rows=2))
    data = text_of(rows, header, width, end)
    last = ",".join(rows[-1])
    second_comma = last.index(",", last.index(",") + 1)
    cut = draw(st.integers(1, second_comma - 1))
    kept = last[:cut]
    body = data[: len(data) - len(last) - len(end)] + kept.encode()
    line = len(rows) + int(header)
    return Case("truncated", "upload.csv", body, line=line, column=len(kept.split(",")) + 1,
                others=0)  # fmt: skip


@st.composite
def wrong_columns(draw: st.DrawFn) -> Case:
    rows, _, width, end = draw(good_csv())
    data = text_of(rows, False, width, end)
    header = draw(st.sampled_from(BAD_HEADERS))
    column = 4 if header.startswith("timestamp,symbol,price,") else None  # the unknown 4th
    return Case("wrong columns", "upload.csv", header.encode() + end.encode() + data, line=1,
                column=column)  # fmt: skip


@st.composite
def huge_line(draw: st.DrawFn) -> Case:
    """A row of 100-400 kB: a number of that many digits, or text with no comma."""
    rows, header, width, end = draw(good_csv(min_rows=2))
    index = draw(st.integers(1, len(rows) - 1))
    size = draw(st.integers(100_000, 400_000))
    if draw(st.booleans()):
        rows[index][2] = "9" * size  # a finite-looking price beyond a double: inf
        column: str | int = "price"
    else:
        rows[index] = ["x" * size]
        column = 2
    return Case("huge line", "upload.csv", text_of(rows, header, width, end),
                line=index + 1 + int(header), column=column, others=0)  # fmt: skip


@st.composite
def binary(draw: st.DrawFn) -> Case:
    data = draw(st.sampled_from(MAGICS)) + draw(st.binary(min_size=1, max_size=4000))
    return Case("binary garbage", draw(st.sampled_from(["upload.csv", "x.png", "upload"])), data)


@st.composite
def wrong_zip(draw: st.DrawFn) -> Case:
    rows, header, width, end = draw(good_csv())
    csv = text_of(rows, header, width, end)
    which = draw(st.sampled_from(["png", "png as csv", "empty", "cut", "nested", "txt", "dir"]))
    data = {
        "png": lambda: zipped({"image.png": PNG * 10}),
        "png as csv": lambda: zipped({"data.csv": PNG * 10}),
        "empty": lambda: zipped({}),
        "cut": lambda: zipped({"data.csv": csv})[: draw(st.integers(5, 60))],
        "nested": lambda: zipped({"inner.zip": zipped({"data.csv": csv})}),
        "txt": lambda: zipped({"notes.txt": b"hello"}),
        "dir": lambda: zipped({"folder/": b""}),
    }[which]()
    return Case(
        "zip of the wrong thing", "upload.zip", data, line=1 if which == "png as csv" else None
    )


@st.composite
def empty(draw: st.DrawFn) -> Case:
    width = draw(st.sampled_from([3, 4]))
    header = ",".join(["timestamp", "symbol", "price", "qty"][:width]).encode()
    return Case(
        "empty", "upload.csv", draw(st.sampled_from([b"", b"\n\n", header, header + b"\n"]))
    )


@st.composite
def too_large(draw: st.DrawFn) -> Case:
    """Past the limit: by a little (refused while streaming) or by much (by Content-Length)."""
    over = draw(st.sampled_from([1, 1_000, 30_000, 200_000]))
    line = b"1763719200000,BTCUSDT,1.5\n"
    data = line * ((LIMIT_BYTES + over) // len(line) + 1)
    return Case("too large", "upload.csv", data, status=413)


# good and binary files twice: one_of draws early branches more often when derandomized
CASES = st.one_of(
    good(), binary(), bad_rows("bad number"), bad_rows("mixed"), good(), binary(), truncated(),
    wrong_columns(), huge_line(), wrong_zip(), empty(), too_large(),
)  # fmt: skip


# ---- the test ----------------------------------------------------------------------------------
def _stored(root: Path, dataset_id: str) -> pd.DataFrame:
    table = pq.read_table(root / dataset_id / "prices.parquet").to_pandas()
    return table[["ts_ms", "symbol", "price", "qty"]]


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(symbol=frame["symbol"].astype(str))
    return frame.sort_values(["ts_ms", "symbol", "price", "qty"]).reset_index(drop=True)


def _check(case: Case, answer: httpx.Response, root: Path, stored: set[str]) -> None:
    text = answer.text
    assert answer.status_code < 500 and "Traceback" not in text, (case.kind, text[:500])
    if case.rows is not None:
        assert answer.status_code == 201, (case.kind, case.data[:300], text[:500])
        info = answer.json()
        stored.add(info["id"])
        want = case.rows
        assert info["rows"] == len(want)
        assert info["symbols"] == sorted(set(want["symbol"]))
        assert (info["start_ms"], info["end_ms"]) == (want["ts_ms"].min(), want["ts_ms"].max())
        got = _stored(root, info["id"])
        pd.testing.assert_frame_equal(
            _sorted(got), _sorted(want), check_dtype=False, rtol=0, atol=0
        )
    else:
        assert answer.status_code == case.status, (case.kind, case.data[:300], text[:500])
        body = answer.json()
        assert isinstance(body["detail"], str) and body["detail"], body
        if case.line is not None:
            assert (body["line"], body["column"]) == (case.line, case.column), (case.kind, body)
            assert f"line {case.line}" in body["detail"], body
        if case.others is not None:
            more = f"(and {case.others} more bad row" in body["detail"]
            assert more == (case.others > 0), (case.others, body)
    # nothing half-made: exactly the good datasets, no upload or incoming folder
    left = {p.name for p in root.iterdir() if p.is_dir()}  # not the web's .web-lock file
    assert left == stored, (case.kind, left - stored)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_malformed_uploads_are_named_and_leave_nothing(
    redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    root = data_dir / "datasets"
    stored: set[str] = set()
    tried: collections.Counter[str] = collections.Counter()
    with serving(redis_url, data_dir, tmp_path / "web.err",
                 SPREADBUS_UPLOAD_MAX_BYTES=str(LIMIT_BYTES)) as web, \
            httpx.Client(base_url=web.url, timeout=60) as client:  # fmt: skip

        @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))  # fmt: skip
        @given(CASES)
        def post(case: Case) -> None:
            files = {"file": (case.name, case.data, "application/octet-stream")}
            answer = client.post("/api/datasets", files=files)
            tried[case.kind] += 1
            _check(case, answer, root, stored)

        post()
        assert web.process.poll() is None, "the web died"
    total = sum(tried.values())
    print(f"\nuploads tried: {total}, by kind: {dict(sorted(tried.items()))}; "
          f"stored {len(stored)} good datasets")  # fmt: skip
    # every kind was tried (derandomized: the same mix each run)
    assert set(tried) >= {"good", "bad number", "mixed", "truncated", "wrong columns",
                          "huge line", "binary garbage", "zip of the wrong thing", "empty",
                          "too large"}, tried  # fmt: skip
