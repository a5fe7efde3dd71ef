"""Loan terms set at approval, and the annualised cost cap they must respect."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from domain.errors import BrokenInvariant, CostCapExceeded

CAP_PLACES_MAX = 6  # a cap's decimal places: its fraction keeps the journal's ceiling inside 64 bits

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
    # The cap these terms were judged by at approval (None on loans approved before it was
    # recorded). Kept with the terms so that a later change of configuration re-judges nothing.
    cost_cap: Decimal | None = None
    cost_cap_since: date | None = None

    def __post_init__(self) -> None:
        # Invariants, not input validation (that happens at the boundary): a
        # Terms that breaks them is a bug and must not reach the ledger.
        # Raised, not asserted: they must hold under ``python -O`` too.
        if not (self.principal > 0 and self.term_days > 0):
            raise BrokenInvariant(f"terms: principal {self.principal} and term {self.term_days} days must be positive")
        if not (self.daily_rate >= 0 and self.penalty_daily_rate >= 0 and self.fee >= 0):
            raise BrokenInvariant(
                f"terms: daily rate {self.daily_rate}, penalty rate {self.penalty_daily_rate} "
                f"and fee {self.fee} must not be negative"
            )
        if self.grace_days < 0:
            raise BrokenInvariant(f"terms: grace of {self.grace_days} days is negative")
        if sorted(self.allocation_order) != sorted(COMPONENTS):
            raise BrokenInvariant(f"terms: allocation order {self.allocation_order} is not each component once")

    def due_date(self, funded_on: date) -> date:
        return funded_on + timedelta(days=self.term_days)

    @classmethod
    def from_event(cls, stored: dict[str, Any]) -> Terms:
        """The terms a Scored event carries (its ``terms`` field, values decoded): the aggregate's
        reading and the dataset's, one rule."""
        return cls(**{**stored, "allocation_order": tuple(stored["allocation_order"])})


def annualised_cost_rate(terms: Terms) -> Decimal:
    """(interest over the term + fee) / principal, annualised on a 365-day year.

    For a single-payment loan this simple annualisation equals the IRR that
    lenders must disclose (docs/rules.md, "Pricing and the cost cap").
    """
    cost = terms.principal * terms.daily_rate * terms.term_days + terms.fee
    return cost / terms.principal * Decimal(365) / Decimal(terms.term_days)


@dataclass(frozen=True)
class CostCap:
    rate: Decimal
    since: date | None = None  # None: in force from the beginning


@dataclass(frozen=True)
class CostCaps:
    """The cap schedule: each cap is in force from its date until the next cap's date.

    Written ``0.36;2025-10-01=0.24``: 0.36 for loans applied before 2025-10-01, 0.24
    from that day on. A loan is judged by the cap in force on its application date.
    """

    caps: tuple[CostCap, ...]

    def __post_init__(self) -> None:
        if not self.caps or self.caps[0].since is not None:
            raise BrokenInvariant("cost caps: a schedule starts with a cap in force from the beginning")
        dated = [c.since for c in self.caps[1:]]
        if any(d is None for d in dated) or dated != sorted(dated):  # type: ignore[type-var]
            raise BrokenInvariant("cost caps: the dated caps must be in increasing date order")

    @classmethod
    def flat(cls, rate: Decimal) -> CostCaps:
        return cls((CostCap(rate),))

    @classmethod
    def parse(cls, text: str) -> CostCaps:
        """``RATE[;YYYY-MM-DD=RATE]...``; ValueError naming the part that is wrong."""
        caps: list[CostCap] = []
        for part in (p.strip() for p in text.split(";")):
            since_text, _, rate_text = part.rpartition("=")
            try:
                rate = Decimal(rate_text.strip())
            except ArithmeticError:
                raise ValueError(f"{rate_text.strip()!r} is not a decimal rate") from None
            if not rate.is_finite() or not Decimal(0) < rate <= Decimal(1):
                raise ValueError(f"rate {rate_text.strip()!r} must be in (0, 1]")
            if -rate.normalize().as_tuple().exponent > CAP_PLACES_MAX:  # type: ignore[operator]
                raise ValueError(f"rate {rate_text.strip()!r} has more than {CAP_PLACES_MAX} decimal places")
            since = None
            if since_text:
                try:
                    since = date.fromisoformat(since_text.strip())
                except ValueError:
                    raise ValueError(f"{since_text.strip()!r} is not a date (YYYY-MM-DD)") from None
            caps.append(CostCap(rate, since))
        if caps[0].since is not None:
            raise ValueError(f"no cap is in force before {caps[0].since}: start with a bare rate, e.g. 0.36;...")
        if any(c.since is None for c in caps[1:]):
            raise ValueError("only the first cap may be undated")
        dated = [c.since for c in caps[1:]]
        if dated != sorted(set(dated)):  # type: ignore[type-var]
            raise ValueError("dated caps must be in increasing date order, each date once")
        return cls(tuple(caps))

    def on(self, day: date) -> CostCap:
        """The cap in force on ``day``."""
        in_force = self.caps[0]
        for cap in self.caps[1:]:
            if cap.since is not None and cap.since > day:
                break
            in_force = cap
        return in_force

    def lowest(self) -> Decimal:
        return min(c.rate for c in self.caps)


def check_cost_cap(terms: Terms, cap: CostCap | Decimal = DEFAULT_COST_CAP) -> Decimal:
    """Return the annualised rate, or raise CostCapExceeded naming it, the cap and its date."""
    cap = cap if isinstance(cap, CostCap) else CostCap(cap)
    rate = annualised_cost_rate(terms)
    if rate > cap.rate:
        raise CostCapExceeded(rate, cap.rate, cap.since)
    return rate
