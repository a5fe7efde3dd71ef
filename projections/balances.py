"""Portfolio balances and the trial balance, answered from the value-dated journal.

As of a date D: point lines valued on or before D, accrual runs clamped to the
nights before D. Optionally as known at T: only the rows that held at T.
Each loan's bucket and state as of D come from its own receivables and due date.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from domain.delinquency import BUCKETS, bucket, days_past_due
from domain.money import ZERO
from projections.book import micros
from projections.db import ViewDb

PARTS = ("principal", "interest", "fee", "penalty")
GROUPINGS = ("bank", "product", "bucket", "state")
_AMOUNT_AS_OF = ("SUM(CASE WHEN until_day IS NULL THEN amount_fen "
                 "ELSE amount_fen * ((CASE WHEN until_day < ? THEN until_day ELSE ? END) - value_day) END)")


@dataclass
class Group:
    key: str
    loans: int = 0
    amounts: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys((*PARTS, "overpayment", "total"), ZERO))


def _known(known_at: datetime | None) -> tuple[str, tuple]:
    if known_at is None:
        return "known_to_us IS NULL", ()
    t = micros(known_at)
    return "known_from_us <= ? AND (known_to_us IS NULL OR known_to_us > ?)", (t, t)


def trial_balance(db: ViewDb, as_of: date, known_at: datetime | None = None) -> Decimal:
    """Sum of every line as of the date: zero, or the book is broken."""
    day = as_of.toordinal()
    known, params = _known(known_at)
    [(total,)] = db.query(f"SELECT {_AMOUNT_AS_OF} FROM proj_journal WHERE value_day <= ? AND {known}",
                          (day, day, day, *params))
    return Decimal(total or 0) / 100


def account_balances(db: ViewDb, as_of: date, known_at: datetime | None = None) -> dict[str, Decimal]:
    day = as_of.toordinal()
    known, params = _known(known_at)
    rows = db.query(f"SELECT account, {_AMOUNT_AS_OF} FROM proj_journal WHERE value_day <= ? AND {known} "
                    "GROUP BY account ORDER BY account", (day, day, day, *params))
    return {account: Decimal(total) / 100 for account, total in rows}


def portfolio(db: ViewDb, as_of: date, by: str, known_at: datetime | None = None) -> list[Group]:
    """Funded loans as of the date, grouped by bank | product | bucket | state."""
    assert by in GROUPINGS, by
    day = as_of.toordinal()
    known, params = _known(known_at)
    per_loan: dict[str, dict[str, Decimal]] = defaultdict(dict)
    rows = db.query(
        f"SELECT loan_id, account, {_AMOUNT_AS_OF} FROM proj_journal WHERE value_day <= ? AND {known} "
        "AND (account LIKE 'loans_receivable:%' OR account = 'overpayments_owed') GROUP BY loan_id, account",
        (day, day, day, *params))
    for loan_id, account, total in rows:
        name = "overpayment" if account == "overpayments_owed" else account.split(":", 1)[1]
        per_loan[loan_id][name] = Decimal(total) / 100 * (-1 if name == "overpayment" else 1)
    groups: dict[str, Group] = {}
    for loan_id, bank, product, due_day, written_off_day in db.query(
            "SELECT loan_id, bank, product, due_day, written_off_day FROM proj_loans "
            "WHERE funded_day IS NOT NULL AND funded_day <= ?", (day,)):
        amounts = per_loan.get(loan_id, {})
        owed = {part: amounts.get(part, ZERO) for part in PARTS}
        due = date.fromordinal(due_day)
        if written_off_day is not None and written_off_day <= day:
            state, dpd = "written_off", days_past_due(as_of, due, True)
        else:
            dpd = days_past_due(as_of, due, owed["principal"] + owed["interest"] + owed["fee"] > 0)
            state = "repaid" if sum(owed.values()) == 0 else "overdue" if dpd > 0 else "funded"
        key = {"bank": bank, "product": product, "bucket": bucket(dpd), "state": state}[by]
        group = groups.setdefault(key, Group(key))
        group.loans += 1
        for part in PARTS:
            group.amounts[part] += owed[part]
        group.amounts["overpayment"] += amounts.get("overpayment", ZERO)
        group.amounts["total"] += sum(owed.values())
    order = {b: i for i, b in enumerate(BUCKETS)}
    return [groups[k] for k in sorted(groups, key=lambda k: (order.get(k, len(order)), k))]


def open_loan_ids(db: ViewDb, day: date) -> list[str]:
    """Loans the end of ``day`` may concern: funded, not written off, past due and not settled by then."""
    d = day.toordinal()
    return [r[0] for r in db.query(
        "SELECT loan_id FROM proj_loans WHERE phase = 'funded' AND due_day < ? "
        "AND (settled_day IS NULL OR settled_day > ?) ORDER BY loan_id", (d, d))]
