"""The book as now known reads each loan quiet by the date from proj_loan_sums (its lines summed once they
no longer change with the date) and sums only the other loans' lines: the figures must be exactly those of
the full computation over every line, on every date (around each loan's quiet day above all), for every
grouping, for a party's own book, and after a rebuild."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from support.commands import applied, approved, funded, repaid
from test_one_truth import EOD_DAYS, ORDERS, books

from domain.terms import CostCaps
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings, parse_bank_terms
from ledger.eod import run_eod
from ledger.settle import run_settle
from projections import runner
from projections.balances import (
    GROUPINGS,
    _loan_lines,
    _quiet_bank_payables,
    _quiet_trial_balance,
    _summed_bank_payables,
    _summed_groups,
    _summed_trial_balance,
    bank_payables,
    book_lines,
    loan_lines,
    portfolio,
    trial_balance,
)


def _figures(groups):
    """Each group's figures by its key (the order is portfolio's own, the same code for both paths)."""
    return {g.key: (g.loans, g.funded, g.fen) for g in (groups.values() if isinstance(groups, dict) else groups)}


def _quiet_days(db):
    return sorted({day for (day,) in db.query("SELECT quiet_day FROM proj_loan_sums")})


def _days_around(db):
    """Each loan's quiet day, the day before and the day after, the end-of-day dates, and far ones."""
    days = {date(2026, 2, 28), date(2026, 3, 1), *EOD_DAYS, date(2026, 9, 1), date(2030, 1, 1)}
    for quiet in _quiet_days(db):
        if quiet < date(2100, 1, 1).toordinal():
            days |= {date.fromordinal(quiet) + timedelta(days=d) for d in (-1, 0, 1)}
    return sorted(days)


def _assert_same_as_full(db, days, where_loans=(), groupings=GROUPINGS):
    for day in days:
        full_tb = _summed_trial_balance(db, day, None, where_loans)
        assert trial_balance(db, day, where_loans=where_loans) == full_tb, day
        assert _quiet_trial_balance(db, day, where_loans) == full_tb, day  # (whichever trial_balance chose)
        # what each bank is owed (`balances --by bank`, GET /v1/balances?by=bank): the same banks and amounts
        full_banks = _summed_bank_payables(db, day, None, where_loans)
        assert bank_payables(db, day, where_loans=where_loans) == full_banks, day
        assert _quiet_bank_payables(db, day, where_loans) == full_banks, day
        # loan by loan (the list, `loan list`, the partners report): the same lines
        assert list(loan_lines(db, day, where_loans=where_loans)) == list(
            _loan_lines(db, day, None, ordered=True, where_loans=where_loans, summed=True)
        ), day
        with_outcomes = dict(agencies=True, outcomes=True)
        assert sorted(book_lines(db, day, agencies=True), key=str) == sorted(
            _loan_lines(db, day, None, **with_outcomes, summed=True), key=str
        ), day
        for by in groupings:
            fast = _figures(portfolio(db, day, by, where_loans=where_loans))
            assert fast == _figures(_summed_groups(db, day, by, None, where_loans)), (day, by, where_loans)


@settings(max_examples=6, deadline=None)
@given(book=books())
def test_the_quiet_sums_give_the_full_computation_on_every_date(store_url, book):
    caps = CostCaps.parse("0.36;2026-02-01=0.24")
    # a bank of this example's own (the store outlives an example, and a bank's days are settled in order),
    # with a yield and a guarantee: its settled days bring remittances, bank interest and compensations
    bank = f"QS{book[0][0]}"
    terms = parse_bank_terms(f"{bank}=rate:0.08,guarantee_dpd:60")
    app = Ledger(Settings(db_url=store_url, cost_caps=caps, allocation_orders=ORDERS, bank_terms=terms))
    try:
        for _, commands in book:
            app.append([command_from_dict({**c, "bank": bank} if c["type"] == "funded" else c) for c in commands])
        for day in EOD_DAYS:
            run_eod(app, day)
            run_settle(app, bank, day, day)
        runner.catch_up(app)
        db = runner.views(app)
        days = _days_around(db)
        # the groupings judged per row (bucket, state) and the one joined (agency) on every day; the
        # others (a column of proj_loans each, the same code) on the fixed days
        _assert_same_as_full(db, days, groupings=("bucket", "state", "agency"))
        _assert_same_as_full(db, [date(2026, 3, 1), *EOD_DAYS, date(2026, 9, 1)])
        # a party's own book: the conditions on proj_loans narrow both parts alike
        first = book[0][0]
        _assert_same_as_full(db, days[:: max(1, len(days) // 4)], [("l.loan_id = ?", (first,))])
    finally:
        app.close()


def test_a_loan_is_read_from_its_sums_only_from_its_quiet_day_and_a_rebuild_writes_the_same_sums(store_url):
    """Two loans funded 2026-03-01 for 10 days (due 2026-03-11). QS1 is repaid in full on 2026-03-06:
    quiet from that day, so the book as of 2026-03-05 still sums its lines (a night of interest less)
    and from 2026-03-06 reads its sums. QS2 is repaid 500.00 on 2026-03-08 and owes the rest at the
    due date: its penalty runs without end and it is never quiet, until a repayment in full valued
    2026-03-04 arrives later: the 500.00 becomes an overpayment on 2026-03-08, its quiet day. BANKA's
    days are settled on 2026-03-06 and 2026-03-08, so what it is owed has remittances. Every figure (the
    bank payables too) agrees with the full computation around those days, and a rebuild from empty
    writes the same proj_loan_sums as the pages did."""
    app = Ledger(Settings(db_url=store_url))
    try:
        at = "2026-02-28T10:00:00+08:00"
        terms = {"term_days": 10, "daily_rate": "0.0005", "fee": "0", "penalty_daily_rate": "0.001"}
        for loan_id in ("QS1", "QS2"):
            head = (
                applied(loan_id, principal="1000.00", term_days=10, occurred_at=at, borrower_id=loan_id),
                approved(loan_id, occurred_at=at, principal="1000.00", **terms),
                funded(loan_id, amount="1000.00", value_date="2026-03-01"),
            )
            app.append([command_from_dict(c) for c in head])
        app.append([command_from_dict(repaid("QS1", ref="QS1-a", amount="1002.50", value_date="2026-03-06"))])
        app.append([command_from_dict(repaid("QS2", ref="QS2-a", amount="500.00", value_date="2026-03-08"))])
        for settled in (date(2026, 3, 6), date(2026, 3, 8)):
            run_settle(app, "BANKA", settled, settled)
        runner.catch_up(app)
        db = runner.views(app)

        def quiet():
            return {k: date.fromordinal(v) for k, v in db.query("SELECT loan_id, quiet_day FROM proj_loan_sums")}

        assert quiet()["QS1"] == date(2026, 3, 6)
        assert quiet()["QS2"] > date(9000, 1, 1)  # a penalty run without end: never quiet
        days = [date(2026, 3, d) for d in (1, 4, 5, 6, 7, 8, 9, 11, 12)] + [date(2026, 12, 4)]
        _assert_same_as_full(db, days)
        # backdated: QS2 was repaid in full on 2026-03-04 (recorded after the 500.00 of 2026-03-08)
        app.append([command_from_dict(repaid("QS2", ref="QS2-b", amount="1001.50", value_date="2026-03-04"))])
        runner.catch_up(app)
        assert quiet()["QS2"] == date(2026, 3, 8)
        _assert_same_as_full(db, days)
        [banka] = bank_payables(db, date(2026, 12, 4))
        assert banka.bank == "BANKA" and banka.funded == Decimal("2000.00") and banka.remitted > 0
        assert banka.owed == banka.funded - banka.remitted - banka.compensated
        book = {g.key: g for g in portfolio(db, date(2026, 3, 7), "state")}
        assert book["repaid"].funded == 2 and book["repaid"].fen["overpayment"] == 0
        assert portfolio(db, date(2026, 3, 8), "bank")[0].fen["overpayment"] == 50_000
        before = db.query("SELECT * FROM proj_loan_sums ORDER BY loan_id")
        runner.rebuild(app)
        assert runner.views(app).query("SELECT * FROM proj_loan_sums ORDER BY loan_id") == before
    finally:
        app.close()
