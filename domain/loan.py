"""The Loan aggregate: the facts of one loan, and the rules for adding to them.

Each public command method checks the rules against the current facts and only
then triggers its event; the ``@event`` methods only record. Replaying history
therefore never re-judges it (a cap changed in configuration later does not
make yesterday's approval invalid).

Balances are never stored: ``position()`` re-derives them from the facts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import NAMESPACE_URL, UUID, uuid5
from zoneinfo import ZoneInfo

from eventsourcing.domain import Aggregate, event

from domain.errors import BrokenInvariant, CostCapExceeded, IllegalTransition, RuleViolation
from domain.money import fmt
from domain.position import Movement, Position, position_as_of
from domain.settlement import NO_AGREEMENT, BankTerms, Remittance, remittance_due
from domain.terms import (
    COMPONENTS,
    PRINCIPAL_MAX,
    PRINCIPAL_MIN,
    TERM_DAYS_MAX,
    TERM_DAYS_MIN,
    CostCaps,
    Terms,
    check_cost_cap,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")  # value dates are calendar dates there
LOAN_NAMESPACE = uuid5(NAMESPACE_URL, "urn:loan-ledger:loan")
INHOUSE = "inhouse"  # the platform's own collections: the agency a collection names while no agency holds the loan


def loan_uuid(loan_id: str) -> UUID:
    """Stable store id for a loan's string id: the same on every store."""
    return uuid5(LOAN_NAMESPACE, loan_id)


@dataclass(frozen=True)
class MoneyIn:
    """A repayment or collection as recorded, with its reversal if any."""

    key: str
    kind: str  # "repayment" | "collection"
    amount: Decimal
    value_date: date
    seq: int
    bank_ref: str | None = None
    agency: str | None = None
    reversed_by: str | None = None
    component: str | None = None  # a waiver's (waivers and refunds are kept as MoneyIn in Loan.adjustments)


@dataclass(frozen=True)
class Assignment:
    """A spell with a collection agency: from ``since`` (its value date) until the recall's value date.

    The agency holds the loan on the days ``since <= day < until``: a recall valued on D hands the
    loan back for D itself, and a loan recalled and reassigned on D is the new agency's on D.
    ``dpd``, ``bucket`` and ``owed`` are the loan as the ledger found it on ``since`` when the
    assignment arrived (the agency's book counts from them).
    """

    agency: str
    since: date
    dpd: int
    bucket: str
    owed: Decimal
    key: str
    until: date | None = None

    def holds_on(self, day: date) -> bool:
        return self.since <= day and (self.until is None or day < self.until)


class Loan(Aggregate):
    """One loan from application to closing, write-off and recoveries."""

    if TYPE_CHECKING:
        # The @event methods below create these classes when the module loads; a type checker cannot see
        # that, so their fields are declared here for code that reads events from the store. They must
        # match the methods' parameters (the runtime never executes this block).
        class Applied(Aggregate.Created):
            loan_id: str
            borrower_id: str
            principal: Decimal
            term_days: int
            product: str
            channel: str
            idempotency_key: str
            occurred_at: datetime

        class Scored(Aggregate.Event):
            score: Decimal
            model_version: str
            decision: str
            terms: dict[str, Any]
            idempotency_key: str
            occurred_at: datetime

        class Funded(Aggregate.Event):
            bank: str
            bank_ref: str
            amount: Decimal
            value_date: date
            idempotency_key: str
            occurred_at: datetime
            bank_terms: dict[str, Any] | None  # absent from the stored event when the bank had no agreement

        class Remitted(Aggregate.Event):
            bank: str
            value_date: date
            principal: Decimal
            interest: Decimal
            compensation_principal: Decimal
            compensation_interest: Decimal
            idempotency_key: str
            occurred_at: datetime

        class Repaid(Aggregate.Event):
            amount: Decimal
            bank_ref: str
            value_date: date
            channel: str | None
            idempotency_key: str
            occurred_at: datetime

        class Collected(Aggregate.Event):
            amount: Decimal
            agency: str
            value_date: date
            stage: str | None
            idempotency_key: str
            occurred_at: datetime

        class Overdue(Aggregate.Event):
            as_of: date
            dpd: int
            bucket: str
            idempotency_key: str
            occurred_at: datetime

        class WrittenOff(Aggregate.Event):
            value_date: date
            reason: str | None
            idempotency_key: str
            occurred_at: datetime

        class Reversed(Aggregate.Event):
            reverses: str
            reason: str
            idempotency_key: str
            occurred_at: datetime

        class Assigned(Aggregate.Event):
            agency: str
            value_date: date
            dpd: int
            bucket: str
            owed: Decimal
            idempotency_key: str
            occurred_at: datetime

        class Recalled(Aggregate.Event):
            agency: str
            value_date: date
            idempotency_key: str
            occurred_at: datetime

        class Waived(Aggregate.Event):
            amount: Decimal
            component: str
            value_date: date
            reason: str
            idempotency_key: str
            occurred_at: datetime

        class Refunded(Aggregate.Event):
            amount: Decimal
            bank_ref: str
            value_date: date
            idempotency_key: str
            occurred_at: datetime

    @staticmethod
    def create_id(loan_id: str, **_: object) -> UUID:
        return loan_uuid(loan_id)

    # ---- application ------------------------------------------------------
    @event("Applied")
    def __init__(
        self,
        loan_id: str,
        borrower_id: str,
        principal: Decimal,
        term_days: int,
        product: str,
        channel: str,
        idempotency_key: str,
        occurred_at: datetime,
    ):
        self.loan_id = loan_id
        self.borrower_id = borrower_id
        self.requested_principal = principal
        self.requested_term_days = term_days
        self.product = product
        self.channel = channel
        self.applied_at = occurred_at
        self.phase = "applied"  # applied | approved | declined | funded | written_off
        self.score: Decimal | None = None
        self.model_version: str | None = None
        self.decision: str | None = None
        self.decided_at: datetime | None = None
        self.terms: Terms | None = None
        self.bank: str | None = None
        self.bank_ref: str | None = None
        self.funding_key: str | None = None
        self.funded_on: date | None = None
        self.money_in: list[MoneyIn] = []
        self.overdue_marks: list[tuple[date, int, str]] = []  # (as_of, dpd, bucket)
        self.written_off_on: date | None = None
        self.assignments: list[Assignment] = []  # in value-date order; only the last may still be open
        self.keys: set[str] = {idempotency_key}
        self.adjustments: list[MoneyIn] = []  # waivers and refunds, with their reversals
        self.bank_terms: BankTerms = NO_AGREEMENT  # the funding bank's agreement, fixed at funding
        self.remittances: list[Remittance] = []  # what each settlement with the bank remitted for this loan

    # ---- commands: rules first, then the event ------------------------------
    def score_application(
        self,
        *,
        score: Decimal,
        model_version: str,
        decision: str,
        terms: Terms | None,
        cost_caps: CostCaps,
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        self._require("scored", {"applied"})
        fields: dict[str, object] = {}
        if decision == "approved":
            if terms is None:
                raise BrokenInvariant(f"loan {self.loan_id} ({self.phase}): an approval carries its terms")
            if not PRINCIPAL_MIN <= terms.principal <= PRINCIPAL_MAX:
                self._reject("scored", f"principal {terms.principal} is outside {PRINCIPAL_MIN}-{PRINCIPAL_MAX}")
            if not TERM_DAYS_MIN <= terms.term_days <= TERM_DAYS_MAX:
                self._reject("scored", f"term_days {terms.term_days} is outside {TERM_DAYS_MIN}-{TERM_DAYS_MAX}")
            # judged by the cap in force on the application date, so a replay never re-judges it
            cap = cost_caps.on(self.applied_at.astimezone(SHANGHAI).date())
            try:
                check_cost_cap(terms, cap)
            except CostCapExceeded as e:
                self._reject("scored", f"{e} (applied {self.applied_at.astimezone(SHANGHAI).date()})")
            fields = {
                "principal": terms.principal,
                "term_days": terms.term_days,
                "daily_rate": terms.daily_rate,
                "fee": terms.fee,
                "penalty_daily_rate": terms.penalty_daily_rate,
                "grace_days": terms.grace_days,
                "allocation_order": list(terms.allocation_order),
                "cost_cap": cap.rate,
                "cost_cap_since": cap.since,
            }
        self._scored(
            score=score,
            model_version=model_version,
            decision=decision,
            terms=fields,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
        )

    def fund(
        self,
        *,
        bank: str,
        bank_ref: str,
        amount: Decimal,
        value_date: date,
        idempotency_key: str,
        occurred_at: datetime,
        bank_terms: BankTerms | None = None,
    ) -> None:
        self._require("funded", {"approved"})
        if self.terms is None:
            raise BrokenInvariant(f"loan {self.loan_id} ({self.phase}): an approved loan has its terms")
        if amount != self.terms.principal:
            self._reject("funded", f"amount {amount} must equal the approved principal {self.terms.principal}")
        applied_on = self.applied_at.astimezone(SHANGHAI).date()
        if value_date < applied_on:
            self._reject("funded", f"value_date {value_date} is before the application on {applied_on}")
        self._funded(
            bank=bank,
            bank_ref=bank_ref,
            amount=amount,
            value_date=value_date,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
            bank_terms=None if bank_terms is None else bank_terms.as_event(),
        )
        if bank_terms is None:
            # A bank without an agreement: the stored event carries no ``bank_terms`` field at all, so a
            # funding's stored bytes are what they were before agreements existed (replay reads the default).
            del self.pending_events[-1].__dict__["bank_terms"]

    def remit(self, *, bank: str, value_date: date, idempotency_key: str, occurred_at: datetime) -> None:
        """The settlement with the funding bank for ``value_date``: the loan's lines, worked out from its
        facts now (domain/settlement.py) and recorded, so a replay never works them out again."""
        command = "remitted"
        self._require(command, {"funded", "written_off"})
        funded_on = self._funded_on()
        if bank != self.bank:
            self._reject(command, f"the loan was funded by {self.bank}, not {bank}")
        if value_date < funded_on:
            self._reject(command, f"value_date {value_date} is before funding on {funded_on}")
        if self.remittances and value_date <= self.remittances[-1].day:
            self._reject(command, f"already settled with {bank} for {self.remittances[-1].day}")
        terms = self.terms
        if terms is None:  # a funded loan always has its terms
            raise RuleViolation(self.loan_id, command, "loan has no terms")
        due = remittance_due(
            terms.principal,
            funded_on,
            self.position(value_date),
            self.bank_terms,
            self.remittances,
            self.written_off_on,
        )
        if due is None:
            raise RuleViolation(self.loan_id, command, f"nothing to remit to {bank} for {value_date}")
        self._remitted(
            bank=bank,
            value_date=value_date,
            principal=due.principal,
            interest=due.interest,
            compensation_principal=due.compensation_principal,
            compensation_interest=due.compensation_interest,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
        )

    def receive(
        self,
        *,
        kind: str,
        amount: Decimal,
        value_date: date,
        idempotency_key: str,
        occurred_at: datetime,
        bank_ref: str | None = None,
        agency: str | None = None,
        channel: str | None = None,
        stage: str | None = None,
    ) -> None:
        """A repayment (bank_ref) or a collection (agency): money from the borrower."""
        command = "repaid" if kind == "repayment" else "collected"
        self._require(command, {"funded", "written_off"})
        if self.funded_on is None:
            raise BrokenInvariant(f"loan {self.loan_id} ({self.phase}): a funded loan has its funding date")
        if value_date < self.funded_on:
            self._reject(command, f"value_date {value_date} is before funding on {self.funded_on}")
        if bank_ref is not None:
            self._refuse_known_bank_ref(command, bank_ref)
        incoming = Movement(idempotency_key, value_date, amount, kind, self.version)
        self._refuse_uncovered_refunds(command, [*self.movements(), incoming])
        if kind == "repayment":
            # ledger/handlers.py passes the command's required bank_ref with every repayment
            if bank_ref is None:
                raise BrokenInvariant(f"loan {self.loan_id} ({self.phase}): a repayment carries its bank_ref")
            self._repaid(
                amount=amount,
                bank_ref=bank_ref,
                value_date=value_date,
                channel=channel,
                idempotency_key=idempotency_key,
                occurred_at=occurred_at,
            )
        else:
            # ...and the command's required agency with every collection
            if agency is None:
                raise BrokenInvariant(f"loan {self.loan_id} ({self.phase}): a collection carries its agency")
            self._check_collector(agency, value_date)
            self._collected(
                amount=amount,
                agency=agency,
                value_date=value_date,
                stage=stage,
                idempotency_key=idempotency_key,
                occurred_at=occurred_at,
            )

    def mark_overdue(self, *, as_of: date, idempotency_key: str, occurred_at: datetime) -> None:
        self._require("overdue", {"funded"})
        position = self.position(as_of)
        if position.dpd <= 0:
            self._reject("overdue", f"nothing is past due as of {as_of} (due {position.due_date})")
        if self.overdue_marks and as_of < self.overdue_marks[-1][0]:
            # marks are the history of bucket crossings in date order; an older one would rewrite it
            self._reject("overdue", f"as_of {as_of} is before the last mark on {self.overdue_marks[-1][0]}")
        if self.overdue_marks and self.overdue_marks[-1][2] == position.bucket:
            self._reject("overdue", f"already marked {position.bucket} on {self.overdue_marks[-1][0]}")
        self._overdue(
            as_of=as_of,
            dpd=position.dpd,
            bucket=position.bucket,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
        )

    def write_off(self, *, value_date: date, reason: str | None, idempotency_key: str, occurred_at: datetime) -> None:
        self._require("written_off", {"funded"})
        if self.funded_on is None:
            raise BrokenInvariant(f"loan {self.loan_id} ({self.phase}): a funded loan has its funding date")
        if value_date < self.funded_on:
            self._reject("written_off", f"value_date {value_date} is before funding on {self.funded_on}")
        if self.position(value_date).total == 0:
            self._reject("written_off", f"nothing is owed as of {value_date}")
        self._refuse_uncovered_refunds("written_off", self.movements(), written_off_on=value_date)
        self._written_off(
            value_date=value_date, reason=reason, idempotency_key=idempotency_key, occurred_at=occurred_at
        )

    def reverse(self, *, reverses: str, reason: str, idempotency_key: str, occurred_at: datetime) -> None:
        if reverses == self.funding_key:
            self._reject(
                "reversed",
                "reversing a disbursement is not supported; record the returned funds as a repayment instead",
            )
        target = next((m for m in (*self.money_in, *self.adjustments) if m.key == reverses), None)
        if target is None:
            self._reject(
                "reversed", f"no repayment, collection, waiver or refund with idempotency_key {reverses!r} on this loan"
            )
        if target.reversed_by is not None:
            self._reject("reversed", f"{reverses!r} was already reversed by {target.reversed_by!r}")
        rest = [m for m in self.movements() if m.key != reverses]
        self._refuse_uncovered_refunds("reversed", rest, cause="; reverse that refund first")
        self._reversed(reverses=reverses, reason=reason, idempotency_key=idempotency_key, occurred_at=occurred_at)

    def assign(self, *, agency: str, value_date: date, idempotency_key: str, occurred_at: datetime) -> None:
        """Hand the loan to a collection agency from ``value_date``: past due that day, or written off."""
        command = "assigned"
        self._require(command, {"funded", "written_off"}, "only a funded loan can be handed to a collection agency")
        funded_on = self._funded_on()
        if agency.casefold() == INHOUSE:
            self._refuse(
                command,
                value_date,
                f"{INHOUSE!r} is the platform's own collections, which hold every loan no agency holds; "
                "send 'recalled' to bring a loan back in-house",
            )
        current = self.current_assignment()
        if current is not None:
            self._refuse(command, value_date, f"it is already with {current.agency}; recall it first")
        if value_date < funded_on:
            self._refuse(command, value_date, f"value_date {value_date} is before funding on {funded_on}")
        self._check_custody_order(command, value_date)
        position = self.position(value_date)
        if position.total == 0:
            self._refuse(command, value_date, f"nothing is owed on {value_date}")
        written_off = self.written_off_on is not None and self.written_off_on <= value_date
        if position.dpd <= 0 and not written_off:
            self._refuse(
                command,
                value_date,
                f"nothing is past due on {value_date} (due {position.due_date}); "
                "only a loan past due or written off is handed to an agency",
            )
        self._assigned(
            agency=agency,
            value_date=value_date,
            dpd=position.dpd,
            bucket=position.bucket,
            owed=position.total,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
        )

    def waive(
        self,
        *,
        amount: Decimal,
        component: str,
        value_date: date,
        reason: str,
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        """Forgive part of one component (a settlement discount): at most what it owes on the value date."""
        self._require("waived", {"funded", "written_off"})
        self._refuse_before_funding("waived", value_date)
        if component not in COMPONENTS:
            self._reject("waived", f"component {component!r} is not one of {', '.join(sorted(COMPONENTS))}")
        owed = self.position(value_date).outstanding.get(component)
        if amount > owed:
            self._reject(
                "waived", f"amount {fmt(amount)} is more than the {component} owed on {value_date} ({fmt(owed)})"
            )
        waiver = Movement(idempotency_key, value_date, amount, "waiver", self.version, component)
        self._refuse_uncovered_refunds("waived", [*self.movements(), waiver])
        self._waived(
            amount=amount,
            component=component,
            value_date=value_date,
            reason=reason,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
        )

    def recall(self, *, value_date: date, idempotency_key: str, occurred_at: datetime) -> None:
        """Take the loan back from its agency from ``value_date`` (in-house again that day)."""
        command = "recalled"
        self._require(command, {"funded", "written_off"}, "only a funded loan can be with a collection agency")
        current = self.current_assignment()
        if current is None:
            self._refuse(command, value_date, "it is not with a collection agency")
        if value_date < current.since:
            self._refuse(command, value_date, f"value_date {value_date} is before its assignment to {current.agency}")
        self._check_custody_order(command, value_date)
        self._recalled(
            agency=current.agency, value_date=value_date, idempotency_key=idempotency_key, occurred_at=occurred_at
        )

    def refund(
        self, *, amount: Decimal, bank_ref: str, value_date: date, idempotency_key: str, occurred_at: datetime
    ) -> None:
        """Pay an overpayment back to the borrower: at most what is held on the value date."""
        self._require("refunded", {"funded", "written_off"})
        self._refuse_before_funding("refunded", value_date)
        self._refuse_known_bank_ref("refunded", bank_ref)
        held = self.position(value_date).overpayment
        if amount > held:
            self._reject(
                "refunded", f"amount {fmt(amount)} is more than the overpayment held on {value_date} ({fmt(held)})"
            )
        refund = Movement(idempotency_key, value_date, amount, "refund", self.version)
        self._refuse_uncovered_refunds("refunded", [*self.movements(), refund])
        self._refunded(
            amount=amount,
            bank_ref=bank_ref,
            value_date=value_date,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at,
        )

    # ---- events: record only ----------------------------------------------
    @event("Scored")
    def _scored(
        self,
        score: Decimal,
        model_version: str,
        decision: str,
        terms: dict[str, Any],
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        self.score = score
        self.model_version = model_version
        self.decision = decision
        self.decided_at = occurred_at
        self.phase = "approved" if decision == "approved" else "declined"
        if terms:
            self.terms = Terms.from_event(terms)
        self.keys.add(idempotency_key)

    @event("Funded")
    def _funded(
        self,
        bank: str,
        bank_ref: str,
        amount: Decimal,
        value_date: date,
        idempotency_key: str,
        occurred_at: datetime,
        bank_terms: dict[str, Any] | None = None,
    ) -> None:
        self.bank_terms = BankTerms.from_event(bank_terms)
        self.bank = bank
        self.bank_ref = bank_ref
        self.funded_on = value_date
        self.funding_key = idempotency_key
        self.phase = "funded"
        self.keys.add(idempotency_key)

    @event("Remitted")
    def _remitted(
        self,
        bank: str,
        value_date: date,
        principal: Decimal,
        interest: Decimal,
        compensation_principal: Decimal,
        compensation_interest: Decimal,
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        self.remittances.append(
            Remittance(value_date, principal, interest, compensation_principal, compensation_interest)
        )
        self.keys.add(idempotency_key)

    @property
    def compensated_on(self) -> date | None:
        """The day the bank was compensated for this loan (its guarantee), if it was."""
        return next((r.day for r in self.remittances if r.compensated), None)

    @event("Repaid")
    def _repaid(
        self,
        amount: Decimal,
        bank_ref: str,
        value_date: date,
        channel: str | None,
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        self._add_money_in("repayment", amount, value_date, idempotency_key, bank_ref=bank_ref)

    @event("Collected")
    def _collected(
        self,
        amount: Decimal,
        agency: str,
        value_date: date,
        stage: str | None,
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        self._add_money_in("collection", amount, value_date, idempotency_key, agency=agency)

    @event("Overdue")
    def _overdue(self, as_of: date, dpd: int, bucket: str, idempotency_key: str, occurred_at: datetime) -> None:
        self.overdue_marks.append((as_of, dpd, bucket))
        self.keys.add(idempotency_key)

    @event("WrittenOff")
    def _written_off(self, value_date: date, reason: str | None, idempotency_key: str, occurred_at: datetime) -> None:
        self.written_off_on = value_date
        self.phase = "written_off"
        self.keys.add(idempotency_key)

    @event("Reversed")
    def _reversed(self, reverses: str, reason: str, idempotency_key: str, occurred_at: datetime) -> None:
        self.money_in = [replace(m, reversed_by=idempotency_key) if m.key == reverses else m for m in self.money_in]
        self.adjustments = [
            replace(m, reversed_by=idempotency_key) if m.key == reverses else m for m in self.adjustments
        ]
        self.keys.add(idempotency_key)

    @event("Waived")
    def _waived(
        self,
        amount: Decimal,
        component: str,
        value_date: date,
        reason: str,
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        self.adjustments.append(
            MoneyIn(idempotency_key, "waiver", amount, value_date, self.version, component=component)
        )
        self.keys.add(idempotency_key)

    @event("Refunded")
    def _refunded(
        self, amount: Decimal, bank_ref: str, value_date: date, idempotency_key: str, occurred_at: datetime
    ) -> None:
        self.adjustments.append(MoneyIn(idempotency_key, "refund", amount, value_date, self.version, bank_ref=bank_ref))
        self.keys.add(idempotency_key)

    @event("Assigned")
    def _assigned(
        self,
        agency: str,
        value_date: date,
        dpd: int,
        bucket: str,
        owed: Decimal,
        idempotency_key: str,
        occurred_at: datetime,
    ) -> None:
        self.assignments.append(Assignment(agency, value_date, dpd, bucket, owed, idempotency_key))
        self.keys.add(idempotency_key)

    @event("Recalled")
    def _recalled(self, agency: str, value_date: date, idempotency_key: str, occurred_at: datetime) -> None:
        self.assignments[-1] = replace(self.assignments[-1], until=value_date)
        self.keys.add(idempotency_key)

    # ---- derived ---------------------------------------------------------------
    def _add_money_in(self, kind: str, amount: Decimal, value_date: date, key: str, **ref: str | None) -> None:
        self.money_in.append(MoneyIn(key=key, kind=kind, amount=amount, value_date=value_date, seq=self.version, **ref))
        self.keys.add(key)

    def movements(self) -> list[Movement]:
        """Every fact that moves what is owed or held, unless reversed: money in, waivers, refunds."""
        found = [
            Movement(key=m.key, value_date=m.value_date, amount=m.amount, kind=m.kind, seq=m.seq)
            for m in self.money_in
            if m.reversed_by is None
        ]
        for m in self.adjustments:
            if m.reversed_by is None:
                found.append(Movement(m.key, m.value_date, m.amount, m.kind, m.seq, m.component))
        return found

    def position(self, as_of: date) -> Position:
        if self.terms is None or self.funded_on is None:
            raise RuleViolation(self.loan_id, "position", f"loan is {self.phase}, not funded")
        return position_as_of(self.terms, self.funded_on, self.movements(), as_of, self.written_off_on)

    def state_as_of(self, as_of: date) -> str:
        """The contract's state names, derived as of a value date."""
        if self.phase in ("applied", "approved", "declined"):
            return self.phase
        if self.funded_on is None:
            raise BrokenInvariant(f"loan {self.loan_id} ({self.phase}): a funded loan has its funding date")
        if as_of < self.funded_on:
            return "approved"
        if self.written_off_on is not None and self.written_off_on <= as_of:
            return "written_off"
        position = self.position(as_of)
        if position.total == 0:
            return "repaid"
        return "overdue" if position.dpd > 0 else "funded"

    def last_marked_bucket(self) -> str:
        return self.overdue_marks[-1][2] if self.overdue_marks else "current"

    def current_assignment(self) -> Assignment | None:
        """The agency spell not recalled yet, if any."""
        last = self.assignments[-1] if self.assignments else None
        return last if last is not None and last.until is None else None

    def assignment_on(self, day: date) -> Assignment | None:
        """The agency spell holding the loan on ``day`` (None: in-house)."""
        return next((a for a in reversed(self.assignments) if a.holds_on(day)), None)

    def collector_on(self, day: date) -> str:
        """Who collects on ``day``: the agency holding the loan, else ``inhouse``."""
        held = self.assignment_on(day)
        return INHOUSE if held is None else held.agency

    # ---- guards ---------------------------------------------------------------
    def _refuse_before_funding(self, command: str, value_date: date) -> None:
        if self.funded_on is None or value_date < self.funded_on:
            self._reject(command, f"value_date {value_date} is before funding on {self.funded_on}")

    def _refuse_known_bank_ref(self, command: str, bank_ref: str) -> None:
        for m in (*self.money_in, *self.adjustments):
            if m.bank_ref == bank_ref:
                self._reject(command, f"bank_ref {bank_ref!r} is already recorded on this loan (key {m.key!r})")

    def _refuse_uncovered_refunds(
        self, command: str, movements: list[Movement], written_off_on: date | None = None, cause: str = ""
    ) -> None:
        """Refuse a command after which a refund would pay out more than the overpayment held on its date."""
        if self.terms is None or self.funded_on is None or not any(m.kind == "refund" for m in movements):
            return
        last = max(m.value_date for m in movements)
        wo = written_off_on or self.written_off_on
        for r in position_as_of(self.terms, self.funded_on, movements, last, wo).uncovered_refunds:
            m = r.movement
            self._reject(
                command,
                f"refund {m.key!r} of {fmt(m.amount)} on {m.value_date} would then be more than the overpayment "
                f"held on that day ({fmt(r.held)}){cause}",
            )

    # The refusals, one style: ``_require`` (the phase a command needs), ``_reject`` (a business rule
    # broken in a legal phase) and ``_refuse`` (a collections rule, naming the loan's holder on the day).
    # Each takes the command first and raises; none returns.

    def _require(self, command: str, phases: set[str], reason: str = "") -> None:
        if self.phase not in phases:
            raise IllegalTransition(self.loan_id, self.phase, command, reason)

    def _funded_on(self) -> date:
        if self.funded_on is None:  # a funded or written-off loan always has its funding date
            raise RuleViolation(self.loan_id, "position", f"loan is {self.phase}, not funded")
        return self.funded_on

    def _custody_state(self, day: date) -> str:
        """The loan's state on ``day`` and who holds it, as a refusal names them."""
        state = self.state_as_of(max(day, self._funded_on()))
        current = self.current_assignment()
        if current is not None:
            return f"{state}, with {current.agency} since {current.since}"
        held = self.assignment_on(day)  # (a spell already recalled)
        return f"{state}, " + (f"with {held.agency} on {day}" if held is not None else f"in-house on {day}")

    def _refuse(self, command: str, day: date, reason: str) -> NoReturn:
        """A collections rule broken: the refusal names the loan, its state and holder, and the command."""
        raise IllegalTransition(self.loan_id, self._custody_state(day), command, reason)

    def _check_custody_order(self, command: str, value_date: date) -> None:
        """Assignments, recalls and collections keep one order of value dates: every collection's
        collector is then the loan's holder on its value date, whatever arrives later. A hand-over
        takes effect from the start of its day, so it comes after the last collection's day."""
        handed = max((d for a in self.assignments for d in (a.since, a.until) if d is not None), default=None)
        if handed is not None and value_date < handed:
            self._refuse(
                command, value_date, f"value_date {value_date} is before {handed}, the last assignment or recall"
            )
        collections = [m for m in self.money_in if m.kind == "collection" and m.reversed_by is None]
        last = max(collections, key=lambda m: m.value_date, default=None)
        if last is not None and value_date <= last.value_date:
            self._refuse(
                command,
                value_date,
                f"{last.agency} collected on {last.value_date}; a hand-over takes effect from the start of its day, "
                f"so its value_date must be after {last.value_date}",
            )

    def _check_collector(self, agency: str, value_date: date) -> None:
        """While an agency holds the loan only it collects; otherwise only ``inhouse``."""
        holder = self.collector_on(value_date)
        if agency == holder:
            return
        if holder == INHOUSE:
            reason = (
                f"no agency held it on {value_date}, so only {INHOUSE!r} (the platform's own collections) "
                f"collects then; {agency!r} collects only on days the loan is assigned to it"
            )
        else:
            reason = f"agency {agency!r} does not hold it on {value_date}: {holder} does"
        self._refuse("collected", value_date, reason)

    def _reject(self, command: str, reason: str) -> NoReturn:
        raise RuleViolation(self.loan_id, command, reason)
