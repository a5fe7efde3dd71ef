"""Command handlers: translate one validated command into the Loan's own command method.

The rules live in ``domain/``; this only maps wire fields to domain arguments
and adds what the deployment decides (cost cap, allocation order).
"""

from __future__ import annotations

from domain.errors import BrokenInvariant, IllegalTransition
from domain.loan import Loan
from domain.terms import Terms
from ledger import commands as c
from ledger.config import Settings


def handle(loan: Loan | None, cmd: c._Command, settings: Settings) -> Loan:
    """Apply ``cmd`` to ``loan`` (None when the loan does not exist yet); raise on any rule."""
    key, at = cmd.idempotency_key, cmd.occurred_at
    if isinstance(cmd, c.Applied):
        if loan is not None:
            raise IllegalTransition(cmd.loan_id, loan.phase, "applied", "the loan already exists")
        return Loan(
            loan_id=cmd.loan_id,
            borrower_id=cmd.borrower_id,
            principal=cmd.principal,
            term_days=cmd.term_days,
            product=cmd.product,
            channel=cmd.channel,
            idempotency_key=key,
            occurred_at=at,
        )
    if loan is None:
        raise IllegalTransition(cmd.loan_id, "unknown", cmd.type, "no such loan has applied")
    if isinstance(cmd, c.Scored):
        terms = None
        if cmd.decision == "approved":
            # the model's validator guarantees an approval carries every term
            if (
                not (cmd.principal and cmd.term_days)
                or cmd.daily_rate is None
                or cmd.fee is None
                or cmd.penalty_daily_rate is None
            ):
                raise BrokenInvariant(f"loan {cmd.loan_id}: an approval reached the handler without all its terms")
            terms = Terms(
                principal=cmd.principal,
                term_days=cmd.term_days,
                daily_rate=cmd.daily_rate,
                fee=cmd.fee,
                penalty_daily_rate=cmd.penalty_daily_rate,
                grace_days=cmd.grace_days or 0,
                allocation_order=settings.allocation_order(loan.product),
            )
        loan.score_application(
            score=cmd.score,
            model_version=cmd.model_version,
            decision=cmd.decision,
            terms=terms,
            cost_caps=settings.cost_caps,
            idempotency_key=key,
            occurred_at=at,
        )
    elif isinstance(cmd, c.Funded):
        loan.fund(
            bank=cmd.bank,
            bank_ref=cmd.bank_ref,
            amount=cmd.amount,
            value_date=cmd.value_date,
            idempotency_key=key,
            occurred_at=at,
            bank_terms=settings.bank_terms.get(cmd.bank),
        )
    elif isinstance(cmd, c.Remitted):
        loan.remit(bank=cmd.bank, value_date=cmd.value_date, idempotency_key=key, occurred_at=at)
    elif isinstance(cmd, c.Repaid):
        loan.receive(
            kind="repayment",
            amount=cmd.amount,
            value_date=cmd.value_date,
            bank_ref=cmd.bank_ref,
            channel=cmd.channel,
            idempotency_key=key,
            occurred_at=at,
        )
    elif isinstance(cmd, c.Collected):
        loan.receive(
            kind="collection",
            amount=cmd.amount,
            value_date=cmd.value_date,
            agency=cmd.agency,
            stage=cmd.stage,
            idempotency_key=key,
            occurred_at=at,
        )
    elif isinstance(cmd, c.Overdue):
        loan.mark_overdue(as_of=cmd.as_of, idempotency_key=key, occurred_at=at)
    elif isinstance(cmd, c.WrittenOff):
        loan.write_off(value_date=cmd.value_date, reason=cmd.reason, idempotency_key=key, occurred_at=at)
    elif isinstance(cmd, c.Reversed):
        loan.reverse(reverses=cmd.reverses, reason=cmd.reason, idempotency_key=key, occurred_at=at)
    elif isinstance(cmd, c.Assigned):
        loan.assign(agency=cmd.agency, value_date=cmd.value_date, idempotency_key=key, occurred_at=at)
    elif isinstance(cmd, c.Recalled):
        loan.recall(value_date=cmd.value_date, idempotency_key=key, occurred_at=at)
    elif isinstance(cmd, c.Waived):
        loan.waive(
            amount=cmd.amount,
            component=cmd.component,
            value_date=cmd.value_date,
            reason=cmd.reason,
            idempotency_key=key,
            occurred_at=at,
        )
    elif isinstance(cmd, c.Refunded):
        loan.refund(
            amount=cmd.amount, bank_ref=cmd.bank_ref, value_date=cmd.value_date, idempotency_key=key, occurred_at=at
        )
    else:  # pragma: no cover - the discriminated union admits nothing else
        raise AssertionError(cmd)
    return loan
