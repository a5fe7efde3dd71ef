"""The daily settlement with a funding bank (``ledger settle --bank B --date D``).

Like the end of day: per loan of bank B with something to remit on D, a ``remitted``
command through the normal append path, its key derived from (bank, day, loan), its
amounts worked out by the loan from its own facts (domain/settlement.py); then one
fact for the bank-day on the bank's own stream (domain/bank_settlements.py) with the
statement's total and the SHA-256 of its lines. Settling a bank-day again adds
nothing and gives back the same statement; a day before the bank's last settled
day, or one that has not begun, is refused.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from domain.bank_settlements import BankSettlements, settled_key, stream_name
from domain.errors import BrokenInvariant, LedgerError
from domain.loan import SHANGHAI, Loan, loan_uuid
from domain.money import ZERO, fmt
from domain.settlement import remittance_due
from eventstore.retry import retrying
from eventstore.store import KeyRecord
from ledger.app import APPENDED, Ledger, Outcome, chunks
from ledger.commands import Remitted
from ledger.eod import check_closable, funded_loan_ids

STATEMENT_COLUMNS = ("bank", "value_date", "loan_id", "kind", "amount")


class SettlementRefused(LedgerError):
    """A bank-day whose recorded fact and the loans' remittances disagree, or could not be recorded: exit 1."""


class UnknownBank(ValueError):
    """No loan was ever funded by the bank: nothing to settle, and no bank-day is recorded (exit 2)."""


class SettlementOrder(ValueError):
    """A day before the bank's last settled day: its lines are on later statements already (exit 2)."""


@dataclass
class Statement:
    bank: str
    day: date
    lines: list[tuple[str, str, Decimal]] = field(default_factory=list)  # (loan_id, kind, amount)
    appended: int = 0  # loans remitted by this run (0 when the bank-day was settled before)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    already_settled: bool = False

    def total_of(self, *kinds: str) -> Decimal:
        return sum((a for _, k, a in self.lines if k.startswith(kinds)), ZERO)

    @property
    def total(self) -> Decimal:
        return sum((a for _, _, a in self.lines), ZERO)

    @property
    def loans(self) -> int:
        return len({loan_id for loan_id, _, _ in self.lines})

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(STATEMENT_COLUMNS)
        for loan_id, kind, amount in self.lines:
            writer.writerow((self.bank, self.day.isoformat(), loan_id, kind, fmt(amount)))
        return out.getvalue()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.csv_text().encode()).hexdigest()

    def as_dict(self) -> dict[str, object]:
        return {
            "bank": self.bank,
            "value_date": self.day.isoformat(),
            "already_settled": self.already_settled,
            "loans": self.loans,
            "lines": len(self.lines),
            "principal": fmt(self.total_of("principal")),
            "interest": fmt(self.total_of("interest")),
            "compensation": fmt(self.total_of("compensation")),
            "total": fmt(self.total),
            "lines_sha256": self.sha256,
            "rejected": [{"loan_id": loan_id, "error": error} for loan_id, error in self.rejected],
        }


def settlement_key(bank: str, day: date, loan_id: str) -> str:
    return f"settle:{bank}:{day}:{loan_id}"


@dataclass(frozen=True)
class BankDays:
    """Where a bank's settlements stand: its stream's version and its last settled day, from the last
    fact alone (days are settled in order, so a day is settled exactly when it is not after the last)."""

    bank: str
    version: int
    last: BankSettlements.Settled | None

    @property
    def last_day(self) -> date | None:
        return None if self.last is None else self.last.value_date


def bank_days(app: Ledger, bank: str) -> BankDays | None:
    """The bank's stream as it stands (None before its first settlement), without replaying it."""
    return banks_days(app, [bank])[bank]


def banks_days(app: Ledger, banks: Iterable[str]) -> dict[str, BankDays | None]:
    """Each bank's stream as it stands (None before its first settlement), from its last fact, all of
    them in one read."""
    ids = {BankSettlements.create_id(bank): bank for bank in banks}
    stored = retrying(
        app.settings.retry_seconds, "read the banks' settlements", lambda: app.recorder.last_events_of(list(ids))
    )
    found: dict[str, BankDays | None] = dict.fromkeys(ids.values())
    for event in stored:
        latest = app.mapper.to_domain_event(event)
        settled = latest if isinstance(latest, BankSettlements.Settled) else None
        bank = ids[latest.originator_id]
        found[bank] = BankDays(bank, latest.originator_version, settled)
    return found


def _loans_of(app: Ledger, bank: str) -> Iterator[Loan]:
    """Every loan the bank funded, read from the store in batches."""
    for batch in chunks(funded_loan_ids(app), app.settings.batch_size):
        for loan in app.get_loans_by_uuid(batch).values():
            if loan is not None and loan.bank == bank:
                yield loan


def _remit_command(loan: Loan, bank: str, day: date) -> Remitted | None:
    """The loan's ``remitted`` command for the bank-day, if it has something to remit."""
    if loan.terms is None or loan.funded_on is None or day < loan.funded_on:
        return None
    if loan.remittances and loan.remittances[-1].day >= day:
        return None  # settled for this day already (or, refused below, for a later one)
    due = remittance_due(
        loan.terms.principal, loan.funded_on, loan.position(day), loan.bank_terms, loan.remittances, loan.written_off_on
    )
    if due is None:
        return None
    return Remitted.model_validate(
        {
            "type": "remitted",
            "loan_id": loan.loan_id,
            "bank": bank,
            "value_date": day.isoformat(),
            "idempotency_key": settlement_key(bank, day, loan.loan_id),
            "occurred_at": datetime.combine(day, time(23, 59, 59), SHANGHAI).isoformat(),
        }
    )


def statement_of(app: Ledger, bank: str, day: date, loan_uuids: list[UUID] | None = None) -> Statement:
    """The bank-day's lines as the loans' ``remitted`` events of that day hold them, by loan id."""
    loans = _loans_of(app, bank) if loan_uuids is None else _read(app, loan_uuids)
    return _statement_from(bank, day, loans)


def _statement_from(bank: str, day: date, loans: Iterable[Loan]) -> Statement:
    """The bank-day's lines from the loans' ``remitted`` events of that day, as these loans hold them."""
    statement = Statement(bank, day)
    found: list[tuple[str, str, Decimal]] = []
    for loan in loans:
        for r in loan.remittances:
            if r.day == day:
                found.extend((loan.loan_id, kind, amount) for kind, amount in r.lines())
    statement.lines = sorted(found, key=lambda line: (line[0], _KIND_ORDER.get(line[1], 9)))
    return statement


_KIND_ORDER = {
    "principal": 0,
    "principal_reversal": 0,
    "interest": 1,
    "interest_reversal": 1,
    "compensation_principal": 2,
    "compensation_interest": 3,
}


def _read(app: Ledger, uuids: list[UUID]) -> Iterator[Loan]:
    for batch in chunks(uuids, app.settings.batch_size):
        yield from (loan for loan in app.get_loans_by_uuid(batch).values() if loan is not None)


def run_settle(
    app: Ledger,
    bank: str,
    day: date,
    today: date,
    candidates: Iterable[UUID] | None = None,
    pending: PendingFacts | None = None,
) -> Statement:
    """Settle the bank-day (see the module's docstring); the statement as recorded.

    ``candidates``: the loans that may have something for the bank-day (every funded loan when None;
    the simulator passes the loans it touched that day and those past due).
    ``pending``: the bank-day's fact waits there to be saved with others (``PendingFacts``).
    """
    check_closable(day, today)
    if pending is not None and pending.holds(bank):
        pending.flush(app)  # the bank's stream as it stands includes the day waiting
    days = pending.days.pop(bank) if pending is not None and bank in pending.days else bank_days(app, bank)
    last_day = None if days is None else days.last_day
    if last_day is not None and day < last_day:
        raise SettlementOrder(
            f"{bank} is settled through {last_day}; {day} comes before it and its lines are on later "
            "statements already (a late fact comes out on the next day settled)"
        )
    if days is not None and days.last is not None and day == last_day:
        return _already_settled(app, days.last, bank, day)

    on_statement: list[UUID] = []  # loans with a part in the bank-day: remitted now, or by an earlier run
    in_hand: dict[UUID, Loan] = {}  # those of them whose state here holds their part as it was stored
    funded_by_bank = days is not None  # a bank settled before has funded loans
    appended = 0
    rejected: list[tuple[str, str]] = []
    ids = funded_loan_ids(app) if candidates is None else candidates
    for batch in chunks(ids, app.settings.batch_size):

        def settle_batch(
            batch: list[UUID] = batch,
        ) -> tuple[list[UUID], dict[UUID, Loan], list[Remitted], list[Outcome], bool]:
            # keys derive from (bank, day, loan): after a lost connection the batch is worked out again
            # and what had been committed comes back duplicate
            parts: list[UUID] = []
            known: dict[UUID, Loan] = {}
            seen: list[UUID] = []
            cmds: list[Remitted] = []
            due: dict[str, Loan | None] = {}
            for uuid, loan in app.get_loans_by_uuid(batch).items():
                if loan is None or loan.bank != bank:
                    continue
                seen.append(uuid)
                if loan.remittances and loan.remittances[-1].day == day:
                    parts.append(uuid)  # an earlier run that stopped before recording the bank-day
                    known[uuid] = loan  # its part is a stored fact, as read
                    continue
                cmd = _remit_command(loan, bank, day)
                if cmd is not None:
                    parts.append(uuid)
                    cmds.append(cmd)
                    due[loan.loan_id] = loan
            if not cmds:
                return parts, known, cmds, [], bool(seen)
            # the loans the append committed come back in the state it stored (a lost race worked them out
            # again on a fresh read): the statement takes them from here; any other (a duplicate, a
            # rejection) is read again below
            saved: dict[str, Loan] = {}
            if pending is not None:
                pending.flush(app)  # the facts settled before come before these loans' remittances
            outcomes = app.append(cmds, loans=due, saved=saved)
            known.update({loan_uuid(loan_id): loan for loan_id, loan in saved.items()})
            return parts, known, cmds, outcomes, bool(seen)

        parts, known, cmds, outcomes, any_seen = retrying(
            app.settings.retry_seconds, f"settle {bank} {day}", settle_batch
        )
        on_statement.extend(parts)
        in_hand.update(known)
        funded_by_bank = funded_by_bank or any_seen
        for cmd, outcome in zip(cmds, outcomes, strict=True):
            appended += outcome.status == APPENDED
            if outcome.error:
                rejected.append((cmd.loan_id, outcome.error))
    if not funded_by_bank and candidates is None:  # (the CLI asks the view first, and refuses it itself)
        raise UnknownBank(f"no loan was funded by {bank} (by {day}): nothing to settle")
    to_read = [uuid for uuid in dict.fromkeys(on_statement) if uuid not in in_hand]
    statement = _statement_from(bank, day, [*in_hand.values(), *_read(app, to_read)])
    statement.appended, statement.rejected = appended, rejected
    if rejected:
        return statement  # nothing recorded for the bank-day until every loan's part is in: run it again
    if pending is not None:
        pending.add(bank, statement, days)
    else:
        _record(app, bank, statement, days)
    return statement


def _already_settled(app: Ledger, fact: BankSettlements.Settled, bank: str, day: date) -> Statement:
    statement = statement_of(app, bank, day)
    statement.already_settled = True
    if fact.lines_sha256 != statement.sha256:
        raise SettlementRefused(
            f"{bank} {day}: the loans' remittances no longer give the statement recorded for that day "
            f"(recorded digest {fact.lines_sha256[:12]}..., now {statement.sha256[:12]}...)"
        )
    return statement


def recorded_settlement(app: Ledger, bank: str, day: date) -> BankSettlements.Settled | None:
    """The bank-day's recorded fact, if it was settled."""
    for e in app.repository.event_store.get(BankSettlements.create_id(bank), desc=True):
        if isinstance(e, BankSettlements.Settled) and e.value_date <= day:
            return e if e.value_date == day else None
    return None


def _record(app: Ledger, bank: str, statement: Statement, days: BankDays | None) -> None:
    """The bank-day's fact, once: a concurrent run that recorded it first makes this one a repeat.
    Each event goes with its idempotency record (domain/bank_settlements.py), so `ledger verify` and
    a second writer see it as they see a loan's.

    ``days``: the bank's stream as this run read it when it began. The first attempt saves on it: had
    another run appended to the stream since, the save fails on its version (nothing of it written),
    and the next attempt reads the stream again."""
    for attempt in range(app.settings.max_retries):
        if attempt:
            days = bank_days(app, bank)
        staged = _staged_fact(bank, statement, days)
        if staged is None:
            return
        stream, keys = staged
        try:
            app.save(stream, idempotency=keys)
            return
        except IntegrityError:
            continue
    raise SettlementRefused(f"could not record the settlement of {bank} for {statement.day}: concurrent runs")


def _staged_fact(
    bank: str, statement: Statement, days: BankDays | None
) -> tuple[BankSettlements, list[KeyRecord]] | None:
    """The bank-day's fact staged on the stream as ``days`` has it, with its idempotency records; None
    when the stream holds the day already with the same lines (the statement is then a repeat)."""
    name = stream_name(bank)
    keys: list[KeyRecord] = []
    if days is None:
        stream = BankSettlements(bank=bank, idempotency_key=name)
        keys.append(KeyRecord(name, name, hashlib.sha256(name.encode()).hexdigest(), "settled"))
    else:
        if days.last is not None and days.last.value_date >= statement.day:
            if days.last.value_date != statement.day or days.last.lines_sha256 != statement.sha256:
                raise SettlementRefused(f"{bank} {statement.day}: settled concurrently with other lines")
            statement.already_settled = True
            return None
        stream = stream_at(bank, days.version)
    key = settled_key(bank, statement.day)
    stream.record_day(
        value_date=statement.day,
        loans=statement.loans,
        lines=len(statement.lines),
        principal=statement.total_of("principal"),
        interest=statement.total_of("interest"),
        compensation=statement.total_of("compensation"),
        total=statement.total,
        lines_sha256=statement.sha256,
        idempotency_key=key,
    )
    keys.append(KeyRecord(key, name, statement.sha256, "settled"))
    return stream, keys


@dataclass
class PendingFacts:
    """Bank-days settled and not recorded yet: a caller that settles several banks on one day (the
    simulator) saves the facts that no loan's write comes between in ONE transaction.

    ``run_settle(..., pending=p)`` adds its fact here instead of saving it, and saves those waiting
    before it writes a loan's remittance, so the log holds every event in the order the runs one by
    one would have stored them; the caller calls ``flush`` after its last run. A save that loses a
    race (another run wrote one of the banks' streams) writes nothing, and each fact is then recorded
    alone, as ``run_settle`` records it, reading its stream again."""

    facts: list[tuple[str, Statement, BankDays | None]] = field(default_factory=list)
    # each bank's stream as the caller read it for the day (banks_days, one read for them all): a run
    # takes its bank's from here, once, instead of reading it; a later run of the bank reads again
    days: dict[str, BankDays | None] = field(default_factory=dict)

    def holds(self, bank: str) -> bool:
        return any(b == bank for b, _, _ in self.facts)

    def add(self, bank: str, statement: Statement, days: BankDays | None) -> None:
        if self.holds(bank):  # run_settle saves the bank's waiting fact before it reads the stream again
            raise BrokenInvariant(f"{bank}: a second bank-day would wait on the same version of its stream")
        self.facts.append((bank, statement, days))

    def flush(self, app: Ledger) -> None:
        """Save the facts waiting, in the order they were added (emptied only once they are stored: a
        lost connection retries the flush, and a fact that went in answers as a repeat)."""
        if len(self.facts) > 1:
            staged = [_staged_fact(bank, statement, days) for bank, statement, days in self.facts]
            streams = [stream for stream, _ in filter(None, staged)]
            if not streams:  # every one of them recorded already, with the same lines
                self.facts.clear()
                return
            try:
                app.save(*streams, idempotency=[k for _, keys in filter(None, staged) for k in keys])
                self.facts.clear()
                return
            except IntegrityError:
                pass
        for bank, statement, days in self.facts:
            _record(app, bank, statement, days)
        self.facts.clear()


def stream_at(bank: str, version: int) -> BankSettlements:
    """The bank's stream, ready to record its next day on top of ``version``, without reading it.

    Its state is what its first fact gives (the bank; tests/test_settlement.py pins it equal to the
    stream read back at version 1), so it is made as a new stream is, its opening event dropped
    unsaved, and moved to the stored version: the save is optimistic on that version, and another run
    that appended meanwhile makes it fail with nothing written."""
    stream = BankSettlements(bank=bank, idempotency_key=stream_name(bank))
    stream.collect_events()  # the opening fact is stored already
    stream.version = version
    return stream
