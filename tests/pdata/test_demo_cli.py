"""``ecuworks pdata demo`` writes the same signed P-Data every time, and it verifies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def ecuworks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ecuworks", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_pdata_demo_is_byte_identical_across_runs_and_verifies(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for home in (first, second):
        done = ecuworks("--home", str(home), "pdata", "demo")
        assert done.returncode == 0, done.stderr
        assert "MiB" in done.stdout
    assert tree(first / "pdata-demo") == tree(second / "pdata-demo")
    demo = first / "pdata-demo"
    checked = ecuworks(
        "pdata", "verify", str(demo / "repository"), "--root", str(demo / "root.json")
    )
    assert checked.returncode == 0, checked.stderr
    assert "images verified" in checked.stdout


def test_pdata_demo_refuses_to_overwrite(tmp_path: Path) -> None:
    assert ecuworks("--home", str(tmp_path), "pdata", "demo").returncode == 0
    again = ecuworks("--home", str(tmp_path), "pdata", "demo")
    assert again.returncode == 2
    assert "already holds a repository" in again.stderr
