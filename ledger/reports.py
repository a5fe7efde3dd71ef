"""Reports a lender recognises, computed from the loans' own facts via the domain."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Iterable

from domain.delinquency import BUCKETS
from domain.loan import Loan
from domain.money import ZERO

PARTS = ("principal", "interest", "fee", "penalty")


@dataclass
class BookLine:
    key: str
    loans: int = 0
    amounts: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys((*PARTS, "total"), ZERO))


@dataclass
class VintageLine:
    month: str
    loans: int = 0
    funded: Decimal = ZERO
    repaid: int = 0
    ever_30: int = 0
    written_off: Decimal = ZERO
    recovered: Decimal = ZERO

    @property
    def net_loss_rate(self) -> Decimal:
        return (self.written_off - self.recovered) / self.funded if self.funded else ZERO


def book(loans: Iterable[Loan], as_of: date, by: str) -> list[BookLine]:
    """Outstanding receivables of funded loans as of a date, grouped by bank | bucket | product | state."""
    lines: dict[str, BookLine] = {}
    for loan in loans:
        if loan.funded_on is None or loan.funded_on > as_of:
            continue
        state = loan.state_as_of(as_of)
        if state in ("repaid", "written_off"):
            continue  # off the book: settled, or moved to write-off expense
        p = loan.position(as_of)
        key = {"bank": loan.bank, "bucket": p.bucket, "product": loan.product, "state": state}[by]
        line = lines.setdefault(key, BookLine(key))
        line.loans += 1
        for part in PARTS:
            line.amounts[part] += p.outstanding.get(part)
        line.amounts["total"] += p.total
    order = {b: i for i, b in enumerate(BUCKETS)}
    return [lines[k] for k in sorted(lines, key=lambda k: (order.get(k, len(order)), k))]


def vintages(loans: Iterable[Loan], as_of: date) -> list[VintageLine]:
    """By funding month: how many repaid, went 30+ days past due, and what was lost net of recoveries."""
    lines: dict[str, VintageLine] = defaultdict(lambda: VintageLine(""))
    for loan in loans:
        if loan.funded_on is None or loan.funded_on > as_of or loan.terms is None:
            continue
        month = loan.funded_on.strftime("%Y-%m")
        line = lines[month]
        line.month = month
        line.loans += 1
        line.funded += loan.terms.principal
        p = loan.position(as_of)
        if p.settled_on is not None and loan.written_off_on is None:
            line.repaid += 1
        if loan.written_off_on is not None or any(dpd > 30 for _, dpd, _ in loan.overdue_marks):
            line.ever_30 += 1
        if p.written_off is not None:
            line.written_off += p.written_off.principal
            line.recovered += sum((a.allocation.total for a in p.applied if a.after_write_off), ZERO)
    return [lines[m] for m in sorted(lines)]
