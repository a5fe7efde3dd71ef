"""Several processes appending to one loan at once, on both stores."""

from __future__ import annotations

import json
import multiprocessing
from datetime import date
from decimal import Decimal as D

import pytest
from support.commands import domain_example, repaid
from support.workers import append_one_at_a_time, started_together

from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings

WRITERS = 4
OWN_REPAYMENTS = 8


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_racing_writers_lose_no_update_count_nothing_twice_and_share_a_key_once(store, request, tmp_path):
    # separate processes, so SQLite is a file shared by four connections, as with four services on one host
    if store == "sqlite":
        url = f"sqlite:///{tmp_path}/race.db"
    else:
        url = request.getfixturevalue("pg_server").create_database("race")
    app = Ledger(Settings(db_url=url))
    app.append([command_from_dict(c) for c in domain_example()])

    shared = json.dumps(repaid(ref="SHARED", amount="3.00", value_date="2026-03-05"))
    work = []
    for w in range(WRITERS):
        own = [
            json.dumps(repaid(ref=f"W{w}-{i}", amount="1.00", value_date="2026-03-05")) for i in range(OWN_REPAYMENTS)
        ]
        work.append(own[: OWN_REPAYMENTS // 2] + [shared] + own[OWN_REPAYMENTS // 2 :])

    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(WRITERS, started_together, (spawn.Barrier(WRITERS),)) as pool:  # all connected, then all go
        results = pool.starmap(append_one_at_a_time, [(url, lines) for lines in work])

    for statuses in results:
        own = statuses[: OWN_REPAYMENTS // 2] + statuses[OWN_REPAYMENTS // 2 + 1 :]
        assert own == ["appended"] * OWN_REPAYMENTS, statuses
    shared_statuses = sorted(s[OWN_REPAYMENTS // 2] for s in results)
    assert shared_statuses == ["appended"] + ["duplicate"] * (WRITERS - 1)

    loan = app.get_loan("L1")
    keys = [m.key for m in loan.money_in]
    assert len(keys) == len(set(keys)) == WRITERS * OWN_REPAYMENTS + 1
    received = sum((m.amount for m in loan.money_in), D(0))
    assert received == D("1.00") * WRITERS * OWN_REPAYMENTS + D("3.00")
    # every repayment counted once in the balance: 35.00 paid interest first, then fee, then principal
    p = loan.position(date(2026, 3, 5))
    assert p.paid.total == received
    app.close()


def test_two_eod_processes_at_once_mark_each_loan_once(pg_server):
    import subprocess
    import sys
    from pathlib import Path

    from support.simulation import START

    from ledger.ingest import append_lines
    from simulator.platform import Simulator

    url = pg_server.create_database("eod_race")
    app = Ledger(Settings(db_url=url))
    sim = Simulator(61, 300, START, days=20)
    assert {o.outcome.status for o in append_lines(app, sim.lines())} <= {"appended", "duplicate"}  # no EOD yet
    day = "2026-10-31"  # in the past, and far past every due date: every unpaid loan needs marks and a write-off
    root = Path(__file__).resolve().parent.parent
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "cli.main", "eod", "--date", day, "--json", "--db", url],
            cwd=root,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reports = [json.loads(p.communicate(timeout=300)[0]) for p in runs]
    assert all(p.returncode == 0 for p in runs)
    appended = sum(r["outcomes"].get("written_off:appended", 0) for r in reports)
    loans = app.get_loans([plan.loan_id for plan in sim.loans.values()])
    written_off = [loan for loan in loans.values() if loan.written_off_on == date(2026, 10, 31)]
    assert appended == len(written_off) > 0  # each written off once, by whichever process got there first
    for loan in written_off:
        assert [b for _, _, b in loan.overdue_marks].count("M3+") == 1
    app.close()
