"""Projections: exactly once, rebuildable, bitemporal, and in agreement with the domain, on both stores."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from eventsourcing.persistence import IntegrityError
from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import domain_example, repaid
from support.simulation import START, simulated_ledger

from cli.main import cli
from domain.delinquency import bucket, days_past_due
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections import runner
from projections.balances import GROUPINGS, PARTS, open_loan_ids, portfolio, trial_balance
from simulator.platform import Simulator
from simulator.run import run_simulation

ROOT = Path(__file__).resolve().parent.parent
DATES = [START + timedelta(days=d) for d in (0, 9, 20, 33, 47, 70, 100, 130, 180)]


# ---- what the projection must say, from the domain alone ---------------------------------------------
def domain_book(loans, as_of: date, by: str) -> dict:
    groups: dict = {}
    for loan in loans:
        if loan is None or loan.funded_on is None or loan.funded_on > as_of:
            continue
        p = loan.position(as_of)
        off_book = loan.written_off_on is not None and loan.written_off_on <= as_of
        dpd = days_past_due(as_of, p.due_date, True) if off_book else p.dpd
        key = {
            "bank": loan.bank,
            "product": loan.product,
            "bucket": bucket(dpd),
            "state": loan.state_as_of(as_of),
            "channel": loan.channel,
            "agency": loan.collector_on(as_of),  # the agency holding it on the date (as known), else inhouse
            "model": loan.model_version,
        }[by]
        owing, n, amounts = groups.get(key, (0, 0, dict.fromkeys((*PARTS, "overpayment", "total"), D(0))))
        for part in PARTS:
            amounts[part] += D(0) if off_book else p.outstanding.get(part)
        amounts["total"] += D(0) if off_book else p.outstanding.total
        amounts["overpayment"] += p.overpayment
        groups[key] = (owing + (not off_book and p.outstanding.total > 0), n + 1, amounts)
    return groups


def projected_book(app: Ledger, as_of: date, by: str, known_at=None) -> dict:
    return {g.key: (g.loans, g.funded, g.amounts) for g in portfolio(runner.views(app), as_of, by, known_at)}


def loan_ids(app: Ledger) -> list[str]:
    return [r[0] for r in runner.views(app).query("SELECT loan_id FROM proj_loans ORDER BY loan_id")]


def snapshot(app: Ledger) -> tuple[list, ...]:
    """Every row of the views, closed journal rows and recalled spells included: the whole bitemporal history."""
    db = runner.views(app)
    return (
        db.query("SELECT * FROM proj_journal ORDER BY line_id"),
        db.query("SELECT * FROM proj_loans ORDER BY loan_id"),
        db.query("SELECT * FROM proj_assignments ORDER BY loan_id, seq"),
        db.query("SELECT * FROM proj_collections ORDER BY idempotency_key"),
    )


def assert_agrees_with_the_domain(app: Ledger, dates=DATES, known_at=None) -> None:
    ids = loan_ids(app)
    loans = app.get_loans(ids).values() if known_at is None else [app.get_loan(loan_id, known_at) for loan_id in ids]
    loans = list(loans)
    db = runner.views(app)
    for day in dates:
        assert trial_balance(db, day, known_at) == 0, day
        for by in GROUPINGS:
            assert projected_book(app, day, by, known_at) == domain_book(loans, day, by), (day, by, known_at)


# ---- the properties ----------------------------------------------------------------------------------
# Examples per store: the search over books, page sizes and cache sizes is the same code on both stores
# and runs its 5 examples on SQLite; PostgreSQL adds its SQL and its transactions, which every example
# goes through whole, so 2 examples there (an example is ~20 s on PostgreSQL, ~7 s on SQLite).
EXAMPLES = {"sqlite": 5, "postgres": 2}


def test_incremental_equals_rebuild_equals_the_domain_as_of_any_date_and_as_known_at_any_time(request, new_store):
    @settings(max_examples=EXAMPLES[request.node.callspec.params["new_store"]])
    @given(
        seed=st.integers(0, 10_000),
        page_size=st.sampled_from([1, 9, 64, 1000]),
        cache_loans=st.sampled_from([0, 5, 20_000]),
        data=st.data(),
    )
    def check(seed, page_size, cache_loans, data):
        app = Ledger(Settings(db_url=new_store()))
        runner.cache(app).max_loans = cache_loans  # 0: every loan is loaded from the store and the views
        sim = Simulator(seed, 70, START, days=25)
        run_simulation(app, sim, progress=lambda day: runner.catch_up(app, page_size=page_size))  # EOD each day
        incremental = snapshot(app)
        assert_agrees_with_the_domain(app)
        # as known at a moment between two appends: what the ledger had recorded by then, and nothing later
        notes = app.recorder.select_notifications(1, 100_000)
        for n in data.draw(st.lists(st.sampled_from(notes), min_size=3, max_size=3), label="cut at"):
            moment = app.mapper.to_domain_event(n).timestamp
            assert_agrees_with_the_domain(app, DATES[2::2], known_at=moment)
        runner.rebuild(app, page_size=data.draw(st.sampled_from([7, 1000]), label="rebuild page size"))
        assert snapshot(app) == incremental
        app.close()

    check()


def test_as_known_at_shows_the_book_before_a_backdated_callback(ledger):
    ledger.append([command_from_dict(c) for c in domain_example()])
    runner.catch_up(ledger)
    before = max(e.timestamp for e in ledger.loan_events("L1"))
    ledger.append([command_from_dict(repaid())])  # valued 8 March, recorded now
    runner.catch_up(ledger)
    db = runner.views(ledger)
    principal = lambda **kw: {g.key: g.amounts["principal"] for g in portfolio(db, date(2026, 3, 20), "bank", **kw)}  # noqa: E731
    assert principal() == {"BANKA": D("506.90")}  # the cost ceiling held 1.60 of the fee back on 8 March
    assert principal(known_at=before) == {"BANKA": D("1000.00")}
    assert trial_balance(db, date(2026, 3, 20), known_at=before) == 0
    # the history is rows closed, not amounts changed: the old penalty run is still there, closed
    closed = db.query("SELECT account, amount_fen FROM proj_journal WHERE known_to_us IS NOT NULL ORDER BY account")
    assert ("loans_receivable:penalty", 100) in closed


def test_events_appended_during_a_rebuild_are_not_lost(store_url):
    app = Ledger(Settings(db_url=store_url))
    simulated_ledger(app, seed=21, loans=60, days=15)
    writer = Ledger(Settings(db_url=store_url))
    appended = threading.Event()

    def keep_appending():
        for n in range(40):
            loan = f"RB{n}"
            writer.append(
                [
                    command_from_dict({**c, "loan_id": loan, "idempotency_key": f"{c['idempotency_key']}-{loan}"})
                    for c in [*domain_example(), repaid()]
                ]
            )
            appended.set()

    runner.reset(app)
    thread = threading.Thread(target=keep_appending)
    thread.start()
    appended.wait(30)
    runner.catch_up(app, page_size=20)
    thread.join()
    runner.catch_up(app)
    assert runner.status(app)[0].lag == 0
    during = snapshot(app)
    runner.rebuild(app)
    assert snapshot(app) == during
    assert_agrees_with_the_domain(app, [date(2026, 3, 20), DATES[4]])
    writer.close()
    app.close()


def test_runners_taking_turns_or_racing_count_each_event_once(store_url):
    """Two processes' runners: each one's cached loans go stale while the other moves the position."""
    app = Ledger(Settings(db_url=store_url))
    apps = [Ledger(Settings(db_url=store_url)) for _ in range(2)]
    sim = Simulator(5, 50, START, days=15)
    run_simulation(app, sim, progress=lambda day: runner.catch_up(apps[day.toordinal() % 2], page_size=5))
    taking_turns = snapshot(app)
    assert_agrees_with_the_domain(app, DATES[:6])

    runner.reset(app)
    errors: list[BaseException] = []

    def run(a: Ledger) -> None:
        try:
            runner.catch_up(a, page_size=7)
        except BaseException as e:  # a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=run, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert snapshot(app) == taking_turns
    for a in [app, *apps]:
        a.close()


def test_a_write_off_is_on_the_book_only_once_it_was_recorded(ledger):
    ledger.append([command_from_dict(c) for c in domain_example()])
    runner.catch_up(ledger)
    before = max(e.timestamp for e in ledger.loan_events("L1"))
    ledger.append(
        [
            command_from_dict(
                {
                    "type": "written_off",
                    "loan_id": "L1",
                    "idempotency_key": "W",
                    "occurred_at": "2026-06-14T23:59:59+08:00",
                    "value_date": "2026-06-13",
                }
            )
        ]
    )
    runner.catch_up(ledger)
    db = runner.views(ledger)
    then = portfolio(db, date(2026, 6, 20), "state", known_at=before)
    now = portfolio(db, date(2026, 6, 20), "state")
    assert [(g.key, g.amounts["principal"]) for g in then] == [("overdue", D("1000.00"))]
    assert [(g.key, g.amounts["total"]) for g in now] == [("written_off", D("0.00"))]
    assert_agrees_with_the_domain(ledger, [date(2026, 6, 12), date(2026, 6, 20)], known_at=before)
    assert_agrees_with_the_domain(ledger, [date(2026, 6, 12), date(2026, 6, 20)])


def test_a_gap_left_by_a_failed_append_skips_nothing(pg_server):
    app = Ledger(Settings(db_url=pg_server.create_database("gap")))
    app.append([command_from_dict(c) for c in domain_example()])
    runner.catch_up(app)
    stale = app.get_loan("L1")
    app.append([command_from_dict(repaid())])
    # A transaction that loses the race fails as a whole, after it drew its notification id: a gap.
    stale.receive(
        kind="repayment",
        amount=D("1.00"),
        value_date=date(2026, 3, 9),
        bank_ref="X",
        idempotency_key="X",
        occurred_at=stale.applied_at,
    )
    with pytest.raises(IntegrityError):
        app.save(stale)
    app.append([command_from_dict(repaid(ref="R2", amount="100.00", value_date="2026-03-10"))])
    ids = [n.id for n in app.recorder.select_notifications(1, 100)]
    assert len(ids) == 5 and ids[-1] == 6, ids  # id 5 was drawn by the failed insert and never used
    assert runner.catch_up(app, page_size=1) == 2
    assert runner.status(app)[0].position == 6
    assert_agrees_with_the_domain(app, [date(2026, 3, 9), date(2026, 3, 20)])
    app.close()


def test_a_projection_killed_mid_run_counts_every_event_exactly_once(pg_server):
    url = pg_server.create_database("sigkill")
    app = Ledger(Settings(db_url=url))
    simulated_ledger(app, seed=33, loans=150, days=20)
    head = app.recorder.max_notification_id()
    runner.catch_up(app)
    expected = snapshot(app)
    runner.reset(app)
    proc = subprocess.Popen(
        # catch-up, not rebuild: a rebuild fills tables of its own and leaves the live ones alone
        [sys.executable, "-m", "cli.main", "projections", "catch-up", "--page-size", "1", "--db", url],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.time() + 60
    while runner.status(app)[0].position < head // 3 and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = runner.status(app)[0].position
    assert 0 < killed_at < head, (killed_at, head)
    restarted = subprocess.run(
        [sys.executable, "-m", "cli.main", "projections", "catch-up", "--json", "--db", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert restarted.returncode == 0, restarted.stderr
    assert json.loads(restarted.stdout)["events"] == head - killed_at  # the rest, and only the rest
    assert snapshot(app) == expected
    assert_agrees_with_the_domain(app, DATES[:5])
    app.close()


def test_a_view_schema_from_another_version_is_dropped_and_rebuilt(store_url):
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in [*domain_example(), repaid()]])
    runner.catch_up(app)
    before = snapshot(app)
    with runner.views(app).transaction() as c:
        c.execute("UPDATE proj_meta SET value = 'old' WHERE key = 'schema_version'")
    app.close()
    app = Ledger(Settings(db_url=store_url))
    assert runner.status(app)[0].position == 0  # recreated empty
    runner.catch_up(app)
    assert snapshot(app) == before
    app.close()


def test_open_loans_for_the_end_of_day_are_the_past_due_and_unsettled(ledger):
    ledger.append([command_from_dict(c) for c in [*domain_example("A"), *domain_example("B"), *domain_example("C")]])
    ledger.append(
        [
            command_from_dict(repaid("B", ref="RB", amount="1012.00", value_date="2026-03-15")),
            command_from_dict(repaid("C", ref="RC", amount="1013.00", value_date="2026-03-17")),
        ]
    )
    runner.catch_up(ledger)
    db = runner.views(ledger)
    assert open_loan_ids(db, date(2026, 3, 15)) == []  # due that day: not past due yet
    assert open_loan_ids(db, date(2026, 3, 16)) == ["A", "C"]
    assert open_loan_ids(db, date(2026, 3, 18)) == ["A", "C"]  # C paid 1013.00 of 1014.00 (2 nights of penalty)


def test_the_cli_answers_in_the_contract_shapes(store_url, tmp_path):
    run = lambda *args: CliRunner().invoke(cli, [*map(str, args), "--db", store_url], catch_exceptions=False)  # noqa: E731
    path = tmp_path / "loan.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in domain_example()) + "\n")
    assert run("init").exit_code == 0
    assert run("append", path).exit_code == 0
    shown = run("balances", "--as-of", "2026-03-20", "--json")
    assert shown.exit_code == 0, shown.output
    out = json.loads(shown.output)
    assert out["as_of"] == "2026-03-20" and out["trial_balance"] == "0.00"
    assert out["groups"] == [
        {
            "key": "BANKA",
            "loans": 1,
            "principal": "1000.00",
            "interest": "7.00",
            "fee": "5.00",
            "penalty": "5.00",
            "overpayment": "0.00",
            "total": "1017.00",
        }
    ]
    by_bucket = json.loads(run("balances", "--as-of", "2026-03-20", "--by", "bucket", "--json").output)
    assert [g["key"] for g in by_bucket["groups"]] == ["M1"]
    status = json.loads(run("projections", "status", "--json").output)
    assert status == [{"name": "book", "position": 3, "head": 3, "lag": 0, "failure": None}]
    rebuilt = run("projections", "rebuild", "--json")
    assert rebuilt.exit_code == 0 and json.loads(rebuilt.output.splitlines()[-1]) == {"name": "book", "events": 3}
    assert json.loads(run("balances", "--as-of", "2026-03-20", "--json").output) == out


def test_balances_exit_1_when_the_trial_balance_is_not_zero(store_url):
    app = Ledger(Settings(db_url=store_url))
    app.append([command_from_dict(c) for c in domain_example()])
    run = lambda *a: CliRunner().invoke(cli, ["balances", "--as-of", "2026-03-20", "--db", store_url, *a])  # noqa: E731
    assert run("--json").exit_code == 0 and run().exit_code == 0
    with runner.views(app).transaction() as c:  # a fen slips into one journal line: the book no longer balances
        first = "(SELECT MIN(line_id) FROM proj_journal)"
        c.execute(f"UPDATE proj_journal SET amount_fen = amount_fen + 1 WHERE line_id = {first}")
    shown = run("--json")
    assert shown.exit_code == 1
    assert json.loads(shown.stdout)["trial_balance"] == "0.01"
    assert "trial balance is not zero" in shown.stderr
    human = run()
    assert human.exit_code == 1 and "trial balance 0.01" in human.stdout
    app.close()
