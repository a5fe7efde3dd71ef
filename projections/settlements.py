"""A bank-day's settlement lines, read from the journal (``GET /v1/banks/{bank}/settlements/{date}``).

Each loan's part of a settlement posts ``remitted:<day>`` (principal to ``funding_payable:<bank>``,
the bank's interest to ``bank_interest_expense``) and ``compensated:<day>`` (the guarantee) in the
journal (domain/journal.py): the statement's lines are those postings' debits, per loan, named as
the statement names them (domain/settlement.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from domain.journal import BANK_INTEREST
from domain.settlement import Remittance
from projections.db import ViewDb

ZERO = Decimal("0.00")


def settlement_lines(
    db: ViewDb, bank: str, day: date, *, after: str | None = None, limit: int = 1000
) -> tuple[list[tuple[str, str, Decimal]], str | None]:
    """(loan_id, kind, amount) for the loans after ``after`` (a loan id), at most ``limit`` loans; and the
    last loan id of the page when there are more."""
    entries = (f"remitted:{day.isoformat()}", f"compensated:{day.isoformat()}")
    args: list[Any] = [bank, day.toordinal(), *entries, f"funding_payable:{bank}", BANK_INTEREST]
    statement = (
        "SELECT loan_id, entry, account, amount_fen FROM proj_journal WHERE known_to_us IS NULL AND bank = ? "
        "AND value_day = ? AND entry IN (?, ?) AND account IN (?, ?)"
    )
    if after is not None:
        statement += " AND loan_id > ?"
        args.append(after)
    # at most 4 rows a loan (two postings, two accounts): this many rows hold the page and the next loan
    rows: Sequence[Any] = db.query(statement + " ORDER BY loan_id LIMIT ?", [*args, (limit + 1) * 4])
    parts: dict[str, dict[str, Decimal]] = {}
    for loan_id, entry, account, fen in rows:
        if loan_id not in parts and len(parts) == limit + 1:
            break
        amounts = parts.setdefault(loan_id, {})
        kind = ("compensation_" if entry.startswith("compensated:") else "") + (
            "interest" if account == BANK_INTEREST else "principal"
        )
        amounts[kind] = amounts.get(kind, ZERO) + Decimal(int(fen)).scaleb(-2)
    loan_ids = sorted(parts)
    more = len(loan_ids) > limit
    lines: list[tuple[str, str, Decimal]] = []
    for loan_id in loan_ids[:limit]:
        a = parts[loan_id]
        r = Remittance(
            day,
            a.get("principal", ZERO),
            a.get("interest", ZERO),
            a.get("compensation_principal", ZERO),
            a.get("compensation_interest", ZERO),
        )
        lines.extend((loan_id, kind, amount) for kind, amount in r.lines())
    return lines, (loan_ids[limit - 1] if more else None)
