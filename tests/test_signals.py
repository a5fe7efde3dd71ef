"""Issue 11: Ctrl-C or SIGTERM under `ledger append` stops at a batch boundary and says what it appended."""

from __future__ import annotations

import json
import signal
from collections import Counter

import pytest
from test_races import book, clean_run, cli, simulated_file

from ledger.app import Ledger
from ledger.config import Settings


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_append_at_a_batch_boundary_with_a_summary_of_what_was_appended(
    store_url, tmp_path, signum, code
):
    """Reproduction: Ctrl-C printed "Aborted!" with no summary of what was appended."""
    path, loan_ids = simulated_file(tmp_path, loans=800)
    clean, counts = clean_run(tmp_path, path)
    run = cli("append", "--json", "--db", store_url, str(path))
    first = run.stdout.readline()  # a batch is in
    run.send_signal(signum)
    out = first + run.stdout.read()
    err = run.stderr.read()
    run.wait(timeout=60)
    assert run.returncode == code, err
    rows = [json.loads(line) for line in out.splitlines()]
    answered = Counter(r["status"] for r in rows)
    assert 0 < len(rows) < counts.total() and len(rows) % 500 == 0  # whole batches, and not all of them
    [message] = err.splitlines()
    assert message == (
        f"Error: interrupted by {signum.name}: lines up to {rows[-1]['line']} answered "
        f"(appended {answered['appended']}, duplicate {answered['duplicate']}, rejected 0); "
        "nothing after it was written; re-run the file to continue (stored lines are answered duplicate)"
    )
    app = Ledger(Settings(db_url=store_url))
    assert sum(len(app.loan_events(loan_id)) for loan_id in loan_ids) == answered["appended"]

    again = cli("append", "--db", store_url, str(path))
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert out.strip() == f"appended {counts['appended'] - answered['appended']}, " + (
        f"duplicate {counts['duplicate'] + answered['appended']}, rejected 0"
    )
    assert book(app, loan_ids) == book(clean, loan_ids)
    app.close()
    clean.close()
