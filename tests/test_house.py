"""The house rules the suite and the code keep: checked, so they stay kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
def test_probe(new_store):
    assert new_store().startswith("sqlite:")
"""


def test_a_sqlite_only_run_never_starts_postgresql(tmp_path):
    """The store fixtures ask for the PostgreSQL server only in their PostgreSQL case: a run of
    SQLite cases alone sets up no server (each server costs an initdb and a start)."""
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "test_probe.py").write_text(PROBE)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--setup-show", "-p", "no:cacheprovider", "-p", "no:xdist"]
        + ["-p", "conftest", "-k", "sqlite", "--rootdir", str(tmp_path / "probe"), "--basetemp", str(tmp_path / "bt")]
        + [str(tmp_path / "probe" / "test_probe.py")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "new_store" in done.stdout, done.stdout
    assert "pg_server" not in done.stdout, done.stdout
