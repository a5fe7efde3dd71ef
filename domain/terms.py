"""Loan terms set at approval, and the annualised cost cap they must respect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from domain.errors import CostCapExceeded

PRINCIPAL_MIN = Decimal("500.00")
PRINCIPAL_MAX = Decimal("5000.00")
TERM_DAYS_MIN = 7
TERM_DAYS_MAX = 30
DEFAULT_COST_CAP = Decimal("0.36")

# What a repayment pays first. Changeable per product, fixed on the loan at approval.
DEFAULT_ALLOCATION_ORDER: tuple[str, ...] = ("penalty", "interest", "fee", "principal")
COMPONENTS = frozenset(DEFAULT_ALLOCATION_ORDER)


@dataclass(frozen=True)
class Terms:
    principal: Decimal
    term_days: int
    daily_rate: Decimal
    fee: Decimal
    penalty_daily_rate: Decimal
    grace_days: int = 0
    allocation_order: tuple[str, ...] = DEFAULT_ALLOCATION_ORDER

    def __post_init__(self) -> None:
        # Invariants, not input validation (that happens at the boundary): a
        # Terms that breaks them is a bug and must not reach the ledger.
        assert self.principal > 0 and self.term_days > 0
        assert self.daily_rate >= 0 and self.penalty_daily_rate >= 0 and self.fee >= 0
        assert self.grace_days >= 0
        assert sorted(self.allocation_order) == sorted(COMPONENTS)

    def due_date(self, funded_on: date) -> date:
        return funded_on + timedelta(days=self.term_days)


def annualised_cost_rate(terms: Terms) -> Decimal:
    """(interest over the term + fee) / principal, annualised on a 365-day year.

    For a single-payment loan this simple annualisation equals the IRR that
    lenders must disclose (DOMAIN.md).
    """
    cost = terms.principal * terms.daily_rate * terms.term_days + terms.fee
    return cost / terms.principal * Decimal(365) / Decimal(terms.term_days)


def check_cost_cap(terms: Terms, cap: Decimal = DEFAULT_COST_CAP) -> Decimal:
    """Return the annualised rate, or raise CostCapExceeded naming it."""
    rate = annualised_cost_rate(terms)
    if rate > cap:
        raise CostCapExceeded(rate, cap)
    return rate
