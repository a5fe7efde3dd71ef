"""Projections: exactly once, rebuildable, and in agreement with the domain, on both stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.delinquency import bucket
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections import runner
from projections.balances import PARTS, portfolio, trial_balance
from support.commands import domain_example, repaid
from support.simulation import START, simulated_ledger

ROOT = Path(__file__).resolve().parent.parent
DATES = [START + timedelta(days=d) for d in (0, 10, 25, 40, 70, 100, 140, 200)]


def domain_book(app: Ledger, as_of: date, by: str, loans: dict | None = None) -> dict:
    """What the projection must say, computed loan by loan from the domain alone."""
    groups: dict = defaultdict(lambda: [0, dict.fromkeys((*PARTS, "overpayment"), D(0))])
    loans = loans or all_loans(app)
    for loan in loans.values():
        if loan.funded_on is None or loan.funded_on > as_of:
            continue
        p = loan.position(as_of)
        off_book = loan.written_off_on is not None and loan.written_off_on <= as_of
        state = loan.state_as_of(as_of)
        dpd = (as_of - p.due_date).days if off_book and as_of > p.due_date else p.dpd
        key = {"bank": loan.bank, "product": loan.product, "bucket": bucket(dpd), "state": state}[by]
        groups[key][0] += 1
        for part in PARTS:
            groups[key][1][part] += D(0) if off_book else p.outstanding.get(part)
        groups[key][1]["overpayment"] += p.overpayment
    return {k: (n, amounts) for k, (n, amounts) in groups.items()}


def all_loans(app: Ledger) -> dict:
    return app.get_loans([r[0] for r in runner.views(app).query("SELECT loan_id FROM proj_loans")])


def projected_book(app: Ledger, as_of: date, by: str) -> dict:
    return {g.key: (g.loans, {k: v for k, v in g.amounts.items() if k != "total"})
            for g in portfolio(runner.views(app), as_of, by)}


def current_journal(app: Ledger) -> list[tuple]:
    return sorted(runner.views(app).query(
        "SELECT loan_id, line_key, amount_fen FROM proj_journal WHERE known_to_us IS NULL"))


@settings(max_examples=3)
@given(seed=st.integers(0, 10_000), page_size=st.sampled_from([7, 50, 1000]))
def test_incremental_equals_rebuild_equals_the_domain_and_the_trial_balance_is_zero(new_store, seed, page_size):
    app = Ledger(Settings(db_url=new_store()))
    simulated_ledger(app, seed=seed, loans=120, days=30)
    runner.catch_up(app, page_size=page_size)
    incremental = current_journal(app)
    loans = all_loans(app)
    for day in DATES:
        assert trial_balance(runner.views(app), day) == 0
        for by in ("state", "bucket", "bank"):
            assert projected_book(app, day, by) == domain_book(app, day, by, loans), (day, by)
    runner.reset(app)
    runner.catch_up(app, page_size=999)
    assert current_journal(app) == incremental
    app.close()


def test_as_known_at_shows_the_book_before_a_backdated_callback(ledger):
    ledger.append([command_from_dict(c) for c in domain_example()])
    runner.catch_up(ledger)
    before = max(e.timestamp for e in ledger.loan_events("L1"))
    ledger.append([command_from_dict(repaid())])
    runner.catch_up(ledger)
    db = runner.views(ledger)
    now = {g.key: g.amounts["principal"] for g in portfolio(db, date(2026, 3, 20), "bank")}
    then = {g.key: g.amounts["principal"] for g in portfolio(db, date(2026, 3, 20), "bank", known_at=before)}
    assert now == {"BANKA": D("508.50")} and then == {"BANKA": D("1000.00")}
    assert trial_balance(db, date(2026, 3, 20), known_at=before) == 0


def test_events_appended_during_a_rebuild_are_not_lost(store_url):
    app = Ledger(Settings(db_url=store_url))
    simulated_ledger(app, seed=21, loans=150, days=20)
    writer = Ledger(Settings(db_url=store_url))
    stop = threading.Event()

    def keep_appending():
        n = 0
        while not stop.is_set() and n < 200:
            loan = f"RB{n}"
            writer.append([command_from_dict({**c, "loan_id": loan, "idempotency_key": f"{c['idempotency_key']}-{loan}"})
                           for c in domain_example()])
            n += 1

    runner.reset(app)
    thread = threading.Thread(target=keep_appending)
    thread.start()
    runner.catch_up(app, page_size=20)
    stop.set()
    thread.join()
    runner.catch_up(app)
    assert runner.status(app)[0].lag == 0
    rebuilt = current_journal(app)
    runner.reset(app)
    runner.catch_up(app)
    assert rebuilt == current_journal(app)
    assert projected_book(app, date(2026, 3, 20), "state") == domain_book(app, date(2026, 3, 20), "state")
    writer.close()
    app.close()


def test_a_gap_left_by_a_failed_append_skips_nothing(pg_server):
    url = pg_server.create_database("gap")
    app = Ledger(Settings(db_url=url))
    app.append([command_from_dict(c) for c in domain_example()])
    # A batch that loses a race fails as a whole: its notification ids are consumed, never used.
    stale = app.get_loan("L1")
    app.append([command_from_dict(repaid())])
    stale.receive(kind="repayment", amount=D("1.00"), value_date=date(2026, 3, 9), bank_ref="X",
                  idempotency_key="X", occurred_at=stale.applied_at)
    try:
        app.save(stale)
    except Exception:
        pass
    app.append([command_from_dict(repaid(ref="R2", amount="100.00", value_date="2026-03-10"))])
    ids = [n.id for n in app.recorder.select_notifications(1, 100)]
    assert ids != list(range(1, len(ids) + 1)), "the failed insert left a gap"
    runner.catch_up(app, page_size=2)
    assert projected_book(app, date(2026, 3, 20), "bank") == domain_book(app, date(2026, 3, 20), "bank")
    app.close()


def test_a_projection_killed_mid_rebuild_counts_every_event_exactly_once(pg_server):
    url = pg_server.create_database("sigkill")
    app = Ledger(Settings(db_url=url))
    simulated_ledger(app, seed=33, loans=250, days=30)
    head = app.recorder.max_notification_id()
    runner.catch_up(app)
    expected = current_journal(app)
    runner.reset(app)
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "projections", "rebuild", "--page-size", "5",
                             "--db", url], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 60
    while runner.status(app)[0].position < head // 3 and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = runner.status(app)[0].position
    assert 0 < killed_at < head, "killed mid-run"
    runner.catch_up(app)  # the restart
    assert current_journal(app) == expected
    rows = runner.views(app).query("SELECT loan_id, line_key, COUNT(*) FROM proj_journal "
                                   "WHERE known_to_us IS NULL GROUP BY loan_id, line_key HAVING COUNT(*) > 1")
    assert rows == []
    assert trial_balance(runner.views(app), date(2026, 3, 1)) == 0
    app.close()
