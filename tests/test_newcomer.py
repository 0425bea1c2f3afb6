"""Newcomer traps: ``spreadbus bench`` from anywhere, and ``make`` on a Debian without
python3-venv saying what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_is_reachable_from_any_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "spreadbus", "bench", "no_such_bench"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    # the bench package was found (its benchmarks are listed), and no traceback
    assert "unknown benchmark no_such_bench; choose from" in done.stderr
    assert "gateway" in done.stderr and "Traceback" not in done.stderr


def test_make_names_the_package_to_install_without_python3_venv(tmp_path: Path) -> None:
    """A python3 as Debian ships it without python3-venv: no ensurepip, and venv fails."""
    fake = tmp_path / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        "  *ensurepip*) exit 1 ;;\n"
        "  *version_info*) echo python3.11-venv ;;\n"
        '  *) echo "The virtual environment was not created successfully because ensurepip is'
        ' not available." >&2; exit 1 ;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    work = tmp_path / "clone"
    work.mkdir()
    (work / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    done = subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), "-C", str(work), f"PYTHON={fake}", "run"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "MAKEFLAGS": ""},
    )  # fmt: skip
    assert done.returncode != 0
    assert "sudo apt-get install python3-venv python3.11-venv" in done.stderr
    assert "ensurepip is not available" not in done.stderr  # our line, not venv's
    assert not (work / ".venv").exists()
