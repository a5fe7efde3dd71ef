"""No event can stop the ledger answering (issue 10 item 2): a projection that cannot apply an
event stops just before it, names the notification and the loan, and reads that do not need it
keep working."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal as D

from click.testing import CliRunner
from support.commands import applied, approved, domain_example, funded

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections import runner


def _poison(app: Ledger) -> int:
    """An event no parser would accept today (an amount far over any limit), saved behind the
    parser's back, as a store written by an older, laxer version could hold."""
    loan = app.get_loan("L1")
    loan.receive(
        kind="repayment",
        amount=D(10**20),
        value_date=date(2026, 3, 8),
        bank_ref="HUGE",
        idempotency_key="HUGE",
        occurred_at=datetime.fromisoformat("2026-03-08T12:00:00+08:00"),
    )
    app.save(loan)
    return app.recorder.max_notification_id()


def test_a_poisoned_event_stops_the_projection_and_says_where(store_url):
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in domain_example()])
    app.append([command_from_dict(c) for c in (applied("L2"), approved("L2"))])
    bad = _poison(app)
    app.append([command_from_dict(funded("L2", idempotency_key="D-L2", bank_ref="D-L2"))])
    app.close()

    run = CliRunner().invoke
    balances = run(cli, ["balances", "--as-of", "2026-03-20", "--db", store_url])
    assert balances.exit_code == 1
    # the store's own words for the overflow differ (SQLite OverflowError, PostgreSQL DataError)
    assert (
        f"Error: projection book is stopped at notification {bad - 1}: it cannot apply notification {bad} (loan L1)"
        in (balances.output)
    )
    assert len(balances.output.splitlines()) == 1

    status = run(cli, ["projections", "status", "--json", "--db", store_url])
    assert status.exit_code == 1
    [book] = json.loads(status.output)
    assert book["position"] == bad - 1 and f"notification {bad} (loan L1)" in book["failure"]

    # reads from the event log do not need the projection
    for loan_id in ("L1", "L2"):
        shown = run(cli, ["loan", "show", loan_id, "--as-of", "2026-03-05", "--json", "--db", store_url])
        assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["state"] == "funded"


def test_catching_up_past_the_event_clears_the_failure(store_url, monkeypatch):
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in domain_example()])
    from projections import book

    real = book.plan_page

    def broken(app_, db, notes, cache):
        if any(n.originator_version == 3 for n in notes):
            raise ValueError("a bug in this version")
        return real(app_, db, notes, cache)

    monkeypatch.setattr(book, "plan_page", broken)
    try:
        runner.catch_up(app)
    except runner.ProjectionFailed as e:
        assert e.notification_id == 3 and e.loan_id == "L1" and "a bug in this version" in str(e)
    else:
        raise AssertionError("the broken projection did not stop")
    assert runner.status(app)[0].position == 2
    monkeypatch.setattr(book, "plan_page", real)  # the fixed version
    assert runner.catch_up(app) == 1
    assert runner.status(app)[0].failure is None
    app.close()
