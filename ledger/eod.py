"""The end-of-day job for a value date X: overdue marks and write-offs for the book.

Its commands go through the same append path as everyone else's, with keys
and timestamps derived from (X, loan, action) alone: running it twice, or from
two processes at once, appends each mark once and the rest are duplicates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from uuid import UUID

from domain.errors import BrokenInvariant
from domain.loan import SHANGHAI, Loan
from eventstore.retry import retrying
from ledger.app import Ledger, Outcome, chunks
from ledger.commands import _Command, command_from_dict


@dataclass
class EodReport:
    day: date
    loans_checked: int = 0
    already_closed: int = 0  # loans whose marks already speak for a later day: nothing added for them
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, status) -> count
    rejected: list[tuple[str, str]] = field(default_factory=list)


class FutureDay(ValueError):
    """A day that has not ended yet in Asia/Shanghai cannot be closed."""


def check_closable(day: date, today: date) -> None:
    """Refuse a day after today: its write-offs would be permanent and its marks premature."""
    if day > today:
        raise FutureDay(f"{day} is after today ({today} in Asia/Shanghai); only a day that has begun can be closed")


def closed_through(loan: Loan) -> date | None:
    """The newest day the end-of-day marks of this loan speak for (docs/decisions.md, "End of day")."""
    return loan.overdue_marks[-1][0] if loan.overdue_marks else None


def eod_commands(loan: Loan, day: date, write_off_dpd: int) -> list[_Command]:
    """What the end of ``day`` requires for one loan, as commands."""
    if loan.phase != "funded" or loan.funded_on is None or day < loan.funded_on:
        return []
    closed = closed_through(loan)
    if closed is not None and day < closed:
        return []  # a later day was already closed for this loan: an earlier one can only add stale marks
    position = loan.position(day)
    if position.dpd <= 0:
        return []
    occurred_at = datetime.combine(day, time(23, 59, 59), SHANGHAI).isoformat()
    base = {"loan_id": loan.loan_id, "occurred_at": occurred_at}
    wanted = []
    if position.bucket != loan.last_marked_bucket():
        wanted.append(
            {
                **base,
                "type": "overdue",
                "as_of": day.isoformat(),
                "idempotency_key": f"eod:{day}:overdue:{loan.loan_id}",
            }
        )
    if position.dpd > write_off_dpd:
        wanted.append(
            {
                **base,
                "type": "written_off",
                "value_date": day.isoformat(),
                "reason": f"DPD {position.dpd} passed the write-off point of {write_off_dpd}",
                "idempotency_key": f"eod:{day}:written_off:{loan.loan_id}",
            }
        )
    return [command_from_dict(c) for c in wanted]


def funded_loan_ids(app: Ledger) -> Iterator[UUID]:
    """Every loan that was ever funded, from the store's log (no projection needed)."""
    for n in app.notifications(Loan.Funded, page=10_000):
        if not isinstance(n.originator_id, UUID):  # the ledger's streams are UUIDs (loan_uuid)
            raise BrokenInvariant(f"notification {n.id}: stream id {n.originator_id!r} is not a UUID")
        yield n.originator_id


def run_eod(
    app: Ledger,
    day: date,
    candidates: Iterable[UUID] | None = None,
    progress: Callable[[int], None] | None = None,
) -> EodReport:
    report = EodReport(day)
    ids = funded_loan_ids(app) if candidates is None else candidates
    for batch in chunks(ids, app.settings.batch_size):

        def close_batch(batch: list[UUID] = batch) -> tuple[list[_Command], list[Outcome], int]:
            # Keys derive from (day, loan, action): after a lost connection the whole batch is
            # worked out and appended again, and what had been committed comes back duplicate.
            cmds: list[_Command] = []
            due: dict[str, Loan | None] = {}  # the loans that have something due, as just read
            closed_later = 0
            for loan_uuid, loan in app.get_loans_by_uuid(batch).items():  # one query for the batch
                if loan is None:
                    raise BrokenInvariant(f"end-of-day candidate {loan_uuid} has no events")
                closed = closed_through(loan)
                closed_later += closed is not None and day < closed
                wanted = eod_commands(loan, day, app.settings.write_off_dpd)
                if wanted:
                    cmds.extend(wanted)
                    due[loan.loan_id] = loan
            # The append stages on the loans read here rather than reading them a second time;
            # one that changed meanwhile loses the optimistic save and is retried on a fresh read.
            return cmds, app.append(cmds, loans=due), closed_later

        cmds, outcomes, closed_later = retrying(app.settings.retry_seconds, f"eod {day}", close_batch)
        report.already_closed += closed_later
        report.loans_checked += len(batch)
        for cmd, outcome in zip(cmds, outcomes, strict=True):
            report.outcomes[(cmd.type, outcome.status)] += 1
            if outcome.error:
                report.rejected.append((cmd.loan_id, outcome.error))
        if progress:
            progress(len(batch))
    return report
