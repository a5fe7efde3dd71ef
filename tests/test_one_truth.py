"""One truth per loan and date, on both stores: `loan show`, `loan list`, `balances --by bucket|state`,
the dataset and the API agree on state, DPD and bucket; no view as of D shows a fact valued after D;
the journal's receivables (and, once written off, its memo accounts) are what `loan show` says is
owed; the trial balance is zero; and what the borrower is asked to pay stays within the ceiling.
"""

from __future__ import annotations

import itertools
import json
import random
from datetime import date, timedelta
from decimal import ROUND_DOWN
from decimal import Decimal as D

from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import applied, approved, funded, refunded, repaid, waived

from api.app import create_app
from cli.main import cli
from domain.delinquency import bucket as bucket_of
from domain.journal import MEMO, RECEIVABLE
from domain.terms import CostCaps
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.eod import run_eod
from ledger.tokens import create_token
from projections import runner
from projections.balances import _AS_OF, _AS_OF_DAYS, loan_lines, portfolio, trial_balance
from projections.dataset import EVER_WINDOW_DAYS, FPD_DAYS, rows
from projections.loan_view import loan_view

PARTS = ("principal", "interest", "fee", "penalty")


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


def show(db, loan_id, as_of):
    result = run("loan", "show", loan_id, "--as-of", as_of, "--json", "--db", db)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


# ---- the reproductions --------------------------------------------------------------------
def _recovered_loan(loan_id="RC1"):
    """Funded 2026-01-12 for 14 days (due 2026-01-26), collected from, written off at DPD 91 on
    2026-04-27 by the end of day, then repaid in full on 2026-05-15."""
    at = "2026-01-11T10:00:00+08:00"
    return [
        applied(loan_id, occurred_at=at),
        approved(loan_id, occurred_at=at),
        funded(loan_id, value_date="2026-01-12", occurred_at="2026-01-12T09:00:00+08:00"),
        {
            "type": "collected",
            "loan_id": loan_id,
            "idempotency_key": f"{loan_id}-C1",
            "occurred_at": "2026-03-10T12:00:00+08:00",
            "amount": "100.00",
            "agency": "inhouse",
            "value_date": "2026-03-10",
        },
    ]


def test_a_written_off_loan_repaid_in_full_is_the_same_in_every_view(store_url):
    """Issue 21: loan show said DPD 0 and current; loan list and balances --by bucket said M3+, DPD 124.
    And loan show as of a date before the write-off said written_off_on 2026-04-27."""
    db = store_url
    assert run("append", "-", "--db", db, input="\n".join(json.dumps(c) for c in _recovered_loan())).exit_code == 0
    eod = json.loads(run("eod", "--date", "2026-04-27", "--json", "--db", db).output)
    assert eod["outcomes"] == {"overdue:appended": 1, "written_off:appended": 1}
    owed = D(show(db, "RC1", "2026-05-15")["balances"]["total"])
    payoff = repaid("RC1", ref="RC1-R1", amount=str(owed), value_date="2026-05-15")
    assert run("append", "-", "--db", db, input=json.dumps(payoff)).exit_code == 0

    view = show(db, "RC1", "2026-05-30")
    assert (view["state"], view["dpd"], view["bucket"], view["balances"]["total"]) == (
        "written_off",
        0,
        "current",
        "0.00",
    )
    listed = json.loads(run("loan", "list", "--as-of", "2026-05-30", "--json", "--db", db).output)["loans"]
    assert [(x["state"], x["dpd"], x["bucket"]) for x in listed] == [("written_off", 0, "current")]
    by_bucket = json.loads(run("balances", "--as-of", "2026-05-30", "--by", "bucket", "--json", "--db", db).output)
    assert [g["key"] for g in by_bucket["groups"]] == ["current"]
    by_state = json.loads(run("balances", "--as-of", "2026-05-30", "--by", "state", "--json", "--db", db).output)
    assert [g["key"] for g in by_state["groups"]] == ["written_off"]
    # before the recovery, the same views agree on M3+ (DPD 108 on 2026-05-14)
    before = show(db, "RC1", "2026-05-14")
    listed = json.loads(run("loan", "list", "--as-of", "2026-05-14", "--json", "--db", db).output)["loans"]
    assert (before["dpd"], before["bucket"]) == (108, "M3+") == (listed[0]["dpd"], listed[0]["bucket"])

    early = show(db, "RC1", "2026-02-01")
    assert (early["state"], early["written_off_on"], early["dpd"], early["bucket"]) == ("overdue", None, 6, "M1")
    assert show(db, "RC1", "2026-04-27")["written_off_on"] == "2026-04-27"
    unfunded = show(db, "RC1", "2026-01-11")
    assert (unfunded["state"], unfunded["bank"], unfunded["funded_on"], unfunded["due_date"]) == (
        "approved",
        None,
        None,
        None,
    )

    app = create_app(Settings(db_url=db))  # the API answers with the same view
    token = create_token(app.state.ledger, "reader", ["read"])
    with TestClient(app) as client:
        got = client.get("/v1/loans/RC1", params={"as_of": "2026-05-30"}, headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200
    assert {k: got.json()[k] for k in ("state", "dpd", "bucket", "written_off_on")} == {
        "state": "written_off",
        "dpd": 0,
        "bucket": "current",
        "written_off_on": "2026-04-27",
    }


def _priced(loan_id, principal, term_days, daily_rate, fee, penalty="0.001"):
    terms = {"principal": principal, "term_days": term_days, "daily_rate": daily_rate, "fee": fee}
    return [
        applied(loan_id, principal=principal, term_days=term_days),
        approved(loan_id, **terms, penalty_daily_rate=penalty),
        funded(loan_id, amount=principal),
    ]


def test_under_a_24_percent_cap_neither_rounding_nor_a_fee_nor_a_penalty_passes_it(store_url, monkeypatch):
    """Issue 21, as a new user tried it: LEDGER_COST_CAP=0.24, then loan show as of the due date."""
    monkeypatch.setenv("LEDGER_COST_CAP", "0.24")
    db = store_url
    book = [
        *_priced("R24", "500.00", 30, "0.000657", "0"),  # 23.98%, but 0.33 a night
        *_priced("F24", "500.00", 30, "0.00001", "9.71"),  # 23.99%, the fee asks 24.36%
        *_priced("P24", "1000.00", 14, "0.0003", "5.00", penalty="0.1"),  # 23.99%, penalty 10% a day
    ]
    appended = run("append", "-", "--json", "--db", db, input="\n".join(json.dumps(c) for c in book))
    assert all(json.loads(line)["status"] == "appended" for line in appended.output.splitlines())
    rounding = show(db, "R24", "2026-03-31")
    assert (rounding["balances"]["interest"], rounding["capped"]["interest"]) == ("9.86", "0.04")
    assert rounding["ceiling"] == {"cost_cap": "0.24", "principal_days": "15000.00", "ceiling": "9.86"}
    fee = show(db, "F24", "2026-03-31")
    assert (fee["balances"]["interest"], fee["balances"]["fee"], fee["capped"]["fee"]) == ("0.30", "9.56", "0.15")
    late = show(db, "P24", "2026-04-14")  # due 2026-03-15: 30 days late
    assert (late["dpd"], late["balances"]["penalty"], late["capped"]["penalty"]) == (30, "19.73", "2980.27")
    b = late["balances"]
    assert D(b["interest"]) + D(b["fee"]) + D(b["penalty"]) == D(late["ceiling"]["ceiling"]) == D("28.93")


def test_an_early_payoff_pays_for_the_night_used_not_the_whole_flat_fee(store_url):
    """Issue 21: 1,000.00 for 30 days with a 10.00 fee, repaid the next day, paid 1,010.50."""
    db = store_url
    book = _priced("E1", "1000.00", 30, "0.0005", "10.00")
    assert run("append", "-", "--db", db, input="\n".join(json.dumps(c) for c in book)).exit_code == 0
    payoff = show(db, "E1", "2026-03-02")["balances"]
    assert (payoff["interest"], payoff["fee"], payoff["total"]) == ("0.50", "0.48", "1000.98")
    paid = repaid("E1", ref="E1-R", amount="1000.98", value_date="2026-03-02")
    assert run("append", "-", "--db", db, input=json.dumps(paid)).exit_code == 0
    later = show(db, "E1", "2026-05-01")
    assert (later["state"], later["balances"]["total"], later["balances"]["overpayment"]) == ("repaid", "0.00", "0.00")


def test_loan_show_text_gives_the_annualised_cost_the_cap_and_what_the_ceiling_holds_back(store_url):
    db = store_url
    loan = [applied("T1"), approved("T1"), funded("T1")]
    assert run("append", "-", "--db", db, input="\n".join(json.dumps(c) for c in loan)).exit_code == 0
    text = run("loan", "show", "T1", "--as-of", "2026-03-01", "--db", db).output
    assert "annualised cost 31.29%" in text and "cap 36.00%" in text
    assert "ceiling  0.98 (cap x principal-days 1000.00 / 365)" in text and "fee 4.02" in text


def test_a_penalty_only_remainder_is_waived_and_every_view_sees_the_loan_closed(store_url, monkeypatch):
    """Issue 21: a loan owing only 5.00 of penalty stayed open for ever; now it can be forgiven."""
    monkeypatch.setenv("LEDGER_ALLOCATION_ORDERS", "payday=principal,interest,fee,penalty")
    db = store_url
    stream = [
        applied("P1"),
        approved("P1"),
        funded("P1"),
        repaid("P1", ref="P1-R", amount="1012.00", value_date="2026-03-20"),
    ]
    assert run("append", "-", "--db", db, input="\n".join(json.dumps(c) for c in stream)).exit_code == 0
    view = show(db, "P1", "2026-05-01")
    assert (view["state"], view["balances"]["penalty"], view["dpd"]) == ("funded", "5.00", 0)
    forgive = waived("P1", key="P1-V", amount="5.00", value_date="2026-03-25")
    assert run("append", "-", "--db", db, input=json.dumps(forgive)).exit_code == 0
    view = show(db, "P1", "2026-05-01")
    assert (view["state"], view["balances"]["total"], view["waived"]["penalty"]) == ("repaid", "0.00", "5.00")
    listed = json.loads(run("loan", "list", "--as-of", "2026-05-01", "--json", "--db", db).output)["loans"]
    assert [(x["state"], x["total"]) for x in listed] == [("repaid", "0.00")]
    accounts = json.loads(run("balances", "--as-of", "2026-05-01", "--accounts", "--json", "--db", db).output)
    assert accounts["accounts"]["waiver_expense"] == "5.00" and accounts["trial_balance"] == "0.00"


# ---- the property ---------------------------------------------------------------------------------
_numbers = itertools.count()
ORDERS = {
    "payday": ("penalty", "interest", "fee", "principal"),
    "salary": ("principal", "interest", "fee", "penalty"),
}
FIRST_DAY = date(2026, 3, 1)
EOD_DAYS = (date(2026, 3, 20), date(2026, 5, 1), date(2026, 6, 25))


@st.composite
def books(draw):
    """One to three loans: terms inside the cap of their application date, then repayments,
    collections, waivers, refunds and reversals in a shuffled arrival order (so many are backdated)."""
    loans = []
    for _ in range(draw(st.integers(1, 3))):
        loan_id = f"OT{next(_numbers)}"
        cap_day = draw(st.sampled_from(["2026-01-20", "2026-02-28"]))  # 0.36 then 0.24 (SETTINGS below)
        cap = D("0.36") if cap_day == "2026-01-20" else D("0.24")
        principal = draw(st.integers(50_000, 300_000))
        term = draw(st.integers(7, 30))
        allowed = cap * principal * term / 365
        fee = int(allowed * draw(st.sampled_from([D(0), D("0.3"), D("0.9")])))
        daily = ((allowed - fee) / principal / term).quantize(D("0.00001"), rounding=ROUND_DOWN)
        terms = {
            "principal": f"{principal / 100:.2f}",
            "term_days": term,
            "daily_rate": str(min(daily, D(draw(st.integers(0, 80))) / 100_000)),
            "fee": f"{fee / 100:.2f}",
            "penalty_daily_rate": draw(st.sampled_from(["0", "0.001", "0.005"])),
        }
        at = f"{cap_day}T10:00:00+08:00"
        product = draw(st.sampled_from(sorted(ORDERS)))
        head = [
            applied(
                loan_id,
                principal=terms["principal"],
                term_days=term,
                product=product,
                occurred_at=at,
                borrower_id=loan_id,
            ),
            approved(loan_id, occurred_at=at, **terms),
            funded(loan_id, amount=terms["principal"], value_date="2026-03-01"),
        ]
        moves = []
        for i in range(draw(st.integers(0, 6))):
            kind = draw(st.sampled_from(["repaid", "repaid", "collected", "waived", "refunded", "reversed"]))
            day = (FIRST_DAY + timedelta(days=draw(st.integers(0, 130)))).isoformat()
            amount = f"{draw(st.integers(1, principal + 5_000)) / 100:.2f}"
            small = f"{draw(st.integers(1, 300)) / 100:.2f}"
            key = f"{loan_id}-{i}"
            if kind == "repaid":
                moves.append(repaid(loan_id, ref=key, amount=amount, value_date=day))
            elif kind == "collected":
                moves.append(
                    {
                        "type": "collected",
                        "loan_id": loan_id,
                        "idempotency_key": key,
                        "occurred_at": "2026-05-01T12:00:00+08:00",
                        "amount": amount,
                        "agency": "AG1",
                        "value_date": day,
                    }
                )
            elif kind == "waived":
                part = draw(st.sampled_from(PARTS))
                moves.append(waived(loan_id, key=key, amount=small, component=part, value_date=day))
            elif kind == "refunded":  # after a payment of more than is owed, usually
                if draw(st.booleans()):
                    moves.append(repaid(loan_id, ref=f"{key}-O", amount=f"{principal / 50:.2f}", value_date=day))
                moves.append(refunded(loan_id, ref=key, amount=small, value_date=day))
            elif moves:
                moves.append(
                    {
                        "type": "reversed",
                        "loan_id": loan_id,
                        "idempotency_key": key,
                        "occurred_at": "2026-05-02T12:00:00+08:00",
                        "reverses": draw(st.sampled_from(moves))["idempotency_key"],
                        "reason": "bounced",
                    }
                )
        random.Random(draw(st.integers(0, 1000))).shuffle(moves)
        loans.append((loan_id, head + moves))
    return loans


def _journal_by_account(db, loan_id, day):
    """One loan's journal balances as of the day, by account, in fen (the views' own as-of SQL)."""
    query = (
        f"SELECT account, SUM({_AS_OF}) FROM proj_journal "
        "WHERE loan_id = ? AND value_day <= ? AND known_to_us IS NULL GROUP BY account"
    )
    found = db.query(query, [day.toordinal()] * _AS_OF_DAYS + [loan_id, day.toordinal()])
    return {account: int(fen) for account, fen in found}


def _fen(text):
    return int(D(text) * 100)


@settings(max_examples=25)
@given(book=books())
def test_every_view_tells_one_truth_as_of_every_date(store_url, book):
    app = Ledger(Settings(db_url=store_url, cost_caps=CostCaps.parse("0.36;2026-02-01=0.24"), allocation_orders=ORDERS))
    try:
        for _, commands in book:
            app.append([command_from_dict(c) for c in commands])
        for day in EOD_DAYS:
            run_eod(app, day)
        runner.catch_up(app)
        db = runner.views(app)
        ids = [loan_id for loan_id, _ in book]
        days = sorted(
            {
                date(2026, 2, 28),
                FIRST_DAY,
                date(2026, 3, 9),
                date(2026, 4, 2),
                date(2026, 6, 24),
                date(2026, 6, 26),
                date(2026, 9, 1),
            }
        )
        for day in days:
            assert trial_balance(db, day) == 0, day
            book_lines = {line.loan_id: line for line in loan_lines(db, day) if line.loan_id in ids}
            by_bucket = {g.key: g.funded for g in portfolio(db, day, "bucket")}
            by_state = {g.key: g.funded for g in portfolio(db, day, "state")}
            for loan_id in ids:
                loan = app.get_loan(loan_id)
                view = loan_view(loan, app.loan_events(loan_id), day, None)
                # nothing valued after the day
                for name in ("funded_on", "written_off_on"):
                    assert view[name] is None or view[name] <= day, (name, day)
                if day < FIRST_DAY:
                    assert (view["bank"], view["funded_on"], view["due_date"]) == (None, None, None)
                    assert loan_id not in book_lines
                    continue
                # the book says what loan show says
                line = book_lines[loan_id]
                assert (line.state, line.dpd, line.bucket) == (view["state"], view["dpd"], view["bucket"]), (
                    loan_id,
                    day,
                )
                assert by_bucket.get(view["bucket"], 0) >= 1 and by_state.get(view["state"], 0) >= 1
                accounts = _journal_by_account(db, loan_id, day)
                written_off = view["state"] == "written_off"
                for part in PARTS:
                    owed = _fen(view["balances"][part])
                    assert accounts.get(RECEIVABLE + part, 0) == (0 if written_off else owed), (loan_id, day, part)
                    assert accounts.get(MEMO + part, 0) == (owed if written_off else 0), (loan_id, day, part)
                    assert line.fen[part] == (0 if written_off else owed)
                assert -accounts.get("overpayments_owed", 0) == _fen(view["balances"]["overpayment"])
                # what the borrower is asked to pay stays within the ceiling
                p = loan.position(day)
                recognised = p.accrued.interest + p.accrued.fee + p.accrued.penalty - p.capped.total
                assert recognised <= p.ceiling or p.capped.total == 0
                assert p.paid.total - p.paid.principal + p.waived.total - p.waived.principal <= recognised
                assert view["bucket"] == bucket_of(view["dpd"])
        # the dataset's DPD labels: the same rule, on the same dates
        labels = {r["loan_id"]: r for r in rows(app, date(2026, 9, 1), _now()) if r["loan_id"] in ids}
        for loan_id in ids:
            loan = app.get_loan(loan_id)
            due = loan.terms.due_date(loan.funded_on)
            if due + timedelta(days=EVER_WINDOW_DAYS) > date(2026, 9, 1):
                continue
            fpd = loan_view(loan, [], due + timedelta(days=FPD_DAYS), None)["dpd"] >= FPD_DAYS
            ever = loan_view(loan, [], due + timedelta(days=30), None)["dpd"] >= 30
            assert (labels[loan_id]["first_payment_default"], labels[loan_id]["ever_30dpd_60d"]) == (fpd, ever)
    finally:
        app.close()


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)
