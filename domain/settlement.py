"""What the platform owes a loan's funding bank, and what it remits on a settlement day.

The bank is the lender of record. Under its agreement (``BankTerms``, fixed on the
loan when it is funded) it is owed its principal back as the borrower pays it, plus
its yield: bank interest = sum over nights of round_half_up(P(d) x rate / 365), where
P(d) is the principal the borrower still owes on night d (after that day's facts).

A settlement for day D remits, per loan, everything owed to the bank by the end of D
(principal received or waived, net of reversals, and the bank interest on that
principal) less what earlier settlements of the loan remitted. Everything is
cumulative and derived from the loan's facts as they stand, so a reversal after a
remittance comes out as a negative line on the next settlement, and a backdated
repayment as a positive one.

The bank interest on a partial repayment (docs/decisions.md, "Settlement with the
funding banks"): the bank interest accrued and not yet remitted is a pool; a day that
settles X of the P still owed remits round_half_up(pool x X / P) of it; the day the
last principal is settled remits the whole rest, so the total is exactly the sum over
nights. Bank interest stops accruing at the write-off and at the compensation.

A guaranteed loan (``guarantee_dpd``) reaching that DPD on D is compensated on D: the
principal still owed plus the bank interest accrued to D and not yet remitted. After
it the bank has nothing more to receive: later recoveries are the platform's.

Money is integer fen inside; amounts come out as Decimal with two places.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from domain.errors import BrokenInvariant
from domain.position import Position

_CENT = Decimal("0.01")
RATE_MAX = Decimal("1")  # a bank's annual yield above 100% is a typo, not an agreement
GUARANTEE_DPD_MAX = 3650
KINDS = ("principal", "interest", "compensation_principal", "compensation_interest")


@dataclass(frozen=True)
class BankTerms:
    """A funding bank's agreement: its annual yield and, optionally, the DPD at which it is compensated."""

    rate: Decimal
    guarantee_dpd: int | None = None

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.rate <= RATE_MAX:
            raise ValueError(f"rate {self.rate} must be from 0 to {RATE_MAX}")
        if self.guarantee_dpd is not None and not 1 <= self.guarantee_dpd <= GUARANTEE_DPD_MAX:
            raise ValueError(f"guarantee_dpd {self.guarantee_dpd} must be a whole number from 1 to {GUARANTEE_DPD_MAX}")

    def as_event(self) -> dict[str, Any]:
        """As the ``funded`` event stores them (the rate as a Decimal, which the store keeps exactly)."""
        stored: dict[str, Any] = {"rate": self.rate}
        if self.guarantee_dpd is not None:
            stored["guarantee_dpd"] = self.guarantee_dpd
        return stored

    @classmethod
    def from_event(cls, stored: dict[str, Any] | None) -> BankTerms:
        if not stored:
            return NO_AGREEMENT
        return cls(Decimal(stored["rate"]), stored.get("guarantee_dpd"))


NO_AGREEMENT = BankTerms(Decimal(0))  # a bank funding without an agreement: principal back, no yield, no guarantee


@dataclass(frozen=True)
class Remittance:
    """One loan's lines on one bank-day's settlement (signed: a negative line is money the bank gives back)."""

    day: date
    principal: Decimal
    interest: Decimal
    compensation_principal: Decimal = Decimal("0.00")
    compensation_interest: Decimal = Decimal("0.00")

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.compensation_principal + self.compensation_interest

    @property
    def compensated(self) -> bool:
        return bool(self.compensation_principal or self.compensation_interest)

    def lines(self) -> list[tuple[str, Decimal]]:
        """(kind, amount) for each line that moves money; a negative principal or interest line is
        named ``principal_reversal`` / ``interest_reversal`` (a reversal carried over)."""
        out = []
        for kind in KINDS:
            amount: Decimal = getattr(self, kind)
            if amount:
                out.append((f"{kind}_reversal" if amount < 0 and kind in ("principal", "interest") else kind, amount))
        return out


@dataclass(frozen=True)
class BankDue:
    """Cumulative, to the end of a day: what the bank is owed on principal settled, and what is left."""

    principal: int  # fen of principal received or waived, net of reversals
    interest: int  # fen of bank interest due with that principal
    principal_left: int  # fen the borrower still owes of the bank's principal
    interest_pool: int  # fen of bank interest accrued on ``principal_left``, not yet due


def _half_up_div(numerator: int, denominator: int) -> int:
    """round_half_up(numerator / denominator) for numerator >= 0, denominator > 0, exactly."""
    return (2 * numerator + denominator) // (2 * denominator)


def _fen(amount: Decimal) -> int:
    hundredfold = amount.scaleb(2)
    fen = int(hundredfold)
    if fen != hundredfold:
        raise BrokenInvariant(f"{amount} is not a whole number of fen")
    return fen


def bank_due(
    principal: Decimal,
    funded_on: date,
    position: Position,
    terms: BankTerms,
    stop_on: date | None = None,
) -> BankDue:
    """What the bank is owed to the end of ``position.as_of`` (the loan's position as of that day).

    ``stop_on``: the day from whose night bank interest no longer accrues (the write-off, the
    compensation); the write-off date of the position is taken too.
    """
    day = position.as_of
    settled: dict[date, int] = {}
    for applied in position.applied:
        paid = _fen(applied.allocation.paid.principal)
        if paid:
            d = applied.movement.value_date
            settled[d] = settled.get(d, 0) + paid
    for waiver in position.waivers:
        if waiver.movement.component == "principal" and waiver.amount:
            d = waiver.movement.value_date
            settled[d] = settled.get(d, 0) + _fen(waiver.amount)
    accrue_until = day if stop_on is None else min(stop_on, day)  # nights d < accrue_until accrue
    numerator, denominator = terms.rate.as_integer_ratio()
    left = _fen(principal)
    pool = due_principal = due_interest = 0
    cursor = funded_on
    for d in sorted(settled):
        if d > day:
            break
        pool += _nights_interest(left, numerator, denominator, cursor, min(d, accrue_until))
        cursor = max(cursor, d)
        x = settled[d]
        if x > left:
            raise BrokenInvariant(f"{x} fen of principal settled on {d}, more than the {left} still owed")
        share = pool if x == left else _half_up_div(pool * x, left)
        due_interest += share
        pool -= share
        due_principal += x
        left -= x
    pool += _nights_interest(left, numerator, denominator, cursor, accrue_until)
    return BankDue(due_principal, due_interest, left, pool)


def _nights_interest(left: int, numerator: int, denominator: int, start: date, end: date) -> int:
    """Bank interest on ``left`` fen for the nights start <= d < end, each night rounded half-up."""
    nights = (end - start).days
    if nights <= 0 or not left or not numerator:
        return 0
    return nights * _half_up_div(left * numerator, 365 * denominator)


def cny(fen: int) -> Decimal:
    return fen * _CENT


def remittance_due(
    principal: Decimal,
    funded_on: date,
    position: Position,
    terms: BankTerms,
    remitted: list[Remittance],
    written_off_on: date | None = None,
) -> Remittance | None:
    """The loan's lines on the settlement of ``position.as_of`` (None: nothing to remit, or compensated)."""
    day = position.as_of
    if any(r.compensated for r in remitted):
        return None  # the bank was paid out: what the borrower pays later is the platform's
    stop = written_off_on if written_off_on is not None and written_off_on <= day else None
    due = bank_due(principal, funded_on, position, terms, stop)
    sent_principal = sum((_fen(r.principal) for r in remitted), 0)
    sent_interest = sum((_fen(r.interest) for r in remitted), 0)
    line_principal = due.principal - sent_principal
    line_interest = due.interest - sent_interest
    comp_principal = comp_interest = 0
    if terms.guarantee_dpd is not None and position.dpd >= terms.guarantee_dpd and due.principal_left:
        comp_principal, comp_interest = due.principal_left, due.interest_pool
    if not (line_principal or line_interest or comp_principal or comp_interest):
        return None
    return Remittance(day, cny(line_principal), cny(line_interest), cny(comp_principal), cny(comp_interest))
