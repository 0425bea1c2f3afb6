"""A real, tiny filesystem for disk-full tests and the chaos suite (needs root to mount)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path


class TmpfsUnavailableError(RuntimeError):
    """Mounting is not allowed here (not root, no CAP_SYS_ADMIN)."""


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Callable[[str], None]]:
    """Mount a tmpfs of ``size`` (``"64k"``, ``"4m"``) at ``path``; yields ``resize(size)``
    (a remount: growing it is how a test gives the space back). Unmounted at the end."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        raise TmpfsUnavailableError(mounted.stderr.decode(errors="replace").strip())

    def resize(new_size: str) -> None:
        subprocess.run(
            ["mount", "-o", f"remount,size={new_size}", str(path)], check=True, capture_output=True
        )

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)
