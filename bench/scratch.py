"""Where a benchmark runs: a scratch folder of its own (Redis files, data dir), removed after."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

Rows = list[dict[str, Any]]
Result = TypeVar("Result")


def in_scratch_dir(main: Callable[[Path], Coroutine[Any, Any, Result]]) -> Result:
    """``asyncio.run(main(folder))`` in a fresh temporary folder; what it returns (a bench's
    rows, or one figure)."""
    with tempfile.TemporaryDirectory(prefix="spreadbus-bench-") as tmp:
        return asyncio.run(main(Path(tmp)))
