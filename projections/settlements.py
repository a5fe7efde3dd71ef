"""A bank-day's settlement lines, read from the journal (``GET /v1/banks/{bank}/settlements/{date}``).

Each loan's part of a settlement posts ``remitted:<day>`` (principal to ``funding_payable:<bank>``,
the bank's interest to ``bank_interest_expense``) and ``compensated:<day>`` (the guarantee) in the
journal (domain/journal.py): the statement's lines are those postings' debits, per loan, named as
the statement names them (domain/settlement.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

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


def bank_loan_uuids(db: ViewDb, bank: str, day: date, last_settled: date | None) -> Iterator[UUID]:
    """The loans a settlement of ``bank`` for ``day`` may concern, as the store's stream ids: funded by
    then, and not repaid in full before the bank's last settled day (that settlement remitted all of
    such a loan; a reversal since has re-opened it in the view). Read to the end before the first id
    is handed out, 16 bytes a loan (as the end of day's candidates)."""
    since = (last_settled or date.min).toordinal()
    ids = bytearray()
    for (loan_uuid,) in db.stream(
        "SELECT loan_uuid FROM proj_loans WHERE bank = ? AND funded_day <= ? "
        "AND (settled_day IS NULL OR settled_day >= ?) ORDER BY loan_id",
        (bank, day.toordinal(), since),
    ):
        ids += UUID(loan_uuid).bytes
    return (UUID(bytes=bytes(ids[i : i + 16])) for i in range(0, len(ids), 16))
