"""The lender's reports: vintage curves and roll rates from a simulated book."""

from __future__ import annotations

import json

from click.testing import CliRunner
from support.simulation import simulated_ledger

from cli.main import cli
from ledger.app import Ledger
from ledger.config import Settings


def test_vintage_report_draws_curves_and_roll_rates(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    app = Ledger(Settings(db_url=url))
    simulated_ledger(app, seed=5, loans=400, days=60)
    out = tmp_path / "vintage.png"
    result = CliRunner().invoke(
        cli, ["report", "vintage", "--out", str(out), "--as-of", "2026-06-30", "--db", url, "--json"]
    )
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(report["ever30"]) >= {"2026-01", "2026-02"}
    for points in report["ever30"].values():
        assert points == sorted(points) and all(0 <= p <= 1 for p in points)  # cumulative: never falls
    assert report["ever30"]["2026-01"][-1] > 0
    rolls = report["roll_rates"]
    assert rolls["M3"].keys() <= {"M3+", "written_off", "repaid"}  # from M3 a loan is written off, cured or worse
    assert rolls["current"].get("M1", 0) > 0
    app.close()


def test_the_data_dictionary_describes_every_column():
    from pathlib import Path

    from ledger.dataset import COLUMNS

    doc = (Path(__file__).parent.parent / "docs" / "datasets.md").read_text()
    for c in COLUMNS:
        assert f"| `{c.name}` | {c.kind} | {c.description} |" in doc, c.name
