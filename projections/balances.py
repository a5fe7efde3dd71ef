"""Portfolio balances and the trial balance, answered from the value-dated, bitemporal journal.

As of a date D: point lines valued on or before D, run lines (and the cost
ceiling's floor runs) clamped to the nights before D. As known at T (optional):
only the rows that held at T, and only the fundings and write-offs recorded by
T. Each loan's state and bucket as of D come from its own receivables in the
journal (for a written-off loan, the memo of what its borrower still owes) and
its due date, by the domain's own DPD and bucket rules: the figures `loan show`
derives from the loan's events. Sums are integer fen in SQL, Decimal from here on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from domain.delinquency import BUCKETS, bucket, days_past_due
from domain.journal import BANK_INTEREST, MEMO, OVERPAYMENTS, RECEIVABLE, RECOVERY
from domain.loan import INHOUSE
from domain.money import fmt
from projections.db import ViewDb
from projections.journal_view import micros
from projections.parties import Condition, holders

PARTS = ("principal", "interest", "fee", "penalty")
GROUPINGS = ("bank", "product", "bucket", "state", "channel", "agency", "model")
STATES = ("funded", "overdue", "repaid", "written_off")
AMOUNTS = (*PARTS, "overpayment", "total")

# A line's balance as of a day (passed _AS_OF_DAYS times): a run counts its nights before that day; a
# floor run (the cost ceiling, domain/journal.py) the floor of its numerator over those nights. Integer
# division of non-negative integers: the same floor on both engines.
_NIGHTS = "((CASE WHEN until_day < ? THEN until_day ELSE ? END) - value_day)"
_AS_OF = (
    "CASE WHEN until_day IS NULL THEN amount_fen "
    f"WHEN run_divisor = 1 THEN amount_fen * {_NIGHTS} "
    "ELSE (CASE WHEN amount_fen < 0 THEN -1 ELSE 1 END) * "
    f"((run_offset + ABS(amount_fen) * {_NIGHTS}) / run_divisor - run_offset / run_divisor) END"
)
_AS_OF_DAYS = _AS_OF.count("?")


def _fen_to_amount(fen: int) -> Decimal:
    return Decimal(int(fen)).scaleb(-2)


@dataclass
class Group:
    key: str
    loans: int = 0  # loans with receivables on the book (owing): what the demo's book and a lender count
    funded: int = 0  # every loan funded by the date, repaid and written off included
    fen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AMOUNTS, 0))

    @property
    def amounts(self) -> dict[str, Decimal]:
        return {name: _fen_to_amount(value) for name, value in self.fen.items()}


def _lines(as_of: date, known_at: datetime | None) -> tuple[str, list[Any]]:
    """The WHERE for lines valued by ``as_of`` as the views knew them at ``known_at`` (now when None)."""
    day = as_of.toordinal()
    if known_at is None:
        return "value_day <= ? AND known_to_us IS NULL", [day]
    t = micros(known_at)
    return "value_day <= ? AND known_from_us <= ? AND (known_to_us IS NULL OR known_to_us > ?)", [day, t, t]


def trial_balance(
    db: ViewDb, as_of: date, known_at: datetime | None = None, *, where_loans: Sequence[Condition] = ()
) -> Decimal:
    """Sum of every signed line as of the date: zero, or the book is broken. ``where_loans``: only the
    lines of the loans these conditions on ``proj_loans l`` select (a party's own book)."""
    if known_at is None and _mostly_quiet(db, as_of):  # the quiet loans from their sums, the others' lines
        return _quiet_trial_balance(db, as_of, where_loans)
    return _summed_trial_balance(db, as_of, known_at, where_loans)


def _mostly_quiet(db: ViewDb, as_of: date) -> bool:
    """At most a third of the loans still change after the date: reading the others' lines a loan at a
    time then beats one pass over every line (measured, docs/decisions.md); both give the same sum."""
    [(moving, every)] = db.query(
        "SELECT (SELECT COUNT(*) FROM proj_loan_sums WHERE quiet_day > ?), (SELECT COUNT(*) FROM proj_loan_sums)",
        (as_of.toordinal(),),
    )
    return int(moving) * 3 <= int(every)


def _summed_trial_balance(
    db: ViewDb, as_of: date, known_at: datetime | None, where_loans: Sequence[Condition]
) -> Decimal:
    """The trial balance from every line: the full computation (and the only one as known at a time)."""
    where, params = _lines(as_of, known_at)
    where, params = _of_loans(where, params, where_loans)
    day = as_of.toordinal()
    [(total,)] = db.query(f"SELECT SUM({_AS_OF}) FROM proj_journal WHERE {where}", [day] * _AS_OF_DAYS + params)
    return _fen_to_amount(total or 0)


# The loans whose lines change with the date after ``day``: only their lines are summed (proj_loan_sums
# holds every loan with a line, so a loan not in it has none).
_NOT_QUIET = "loan_id IN (SELECT loan_id FROM proj_loan_sums WHERE quiet_day > ?)"


def _quiet_rows(day: int, where_loans: Sequence[Condition], also: str = "") -> tuple[str, list[Any]]:
    """The WHERE on ``proj_loan_sums q`` for the loans quiet by ``day`` (and ``also``) that ``where_loans``
    select, with its arguments."""
    sql = (
        "q.quiet_day <= ?"
        + (f" AND {also}" if also else "")
        + "".join(
            f" AND EXISTS (SELECT 1 FROM proj_loans l WHERE l.loan_id = q.loan_id AND {condition})"
            for condition, _ in where_loans
        )
    )
    return sql, [day, *(arg for _, args in where_loans for arg in args)]


def _quiet_trial_balance(db: ViewDb, as_of: date, where_loans: Sequence[Condition]) -> Decimal:
    """As now known: each loan quiet by the date gives its total_fen, the others their lines as of it."""
    day = as_of.toordinal()
    where, params = _lines(as_of, None)
    where, params = _of_loans(f"{where} AND {_NOT_QUIET}", [*params, day], where_loans)
    quiet, quiet_args = _quiet_rows(day, where_loans)
    # proj_journal named before proj_loan_sums: a rebuild's swap (runner._swap) locks the journal first
    [(other_total, quiet_total)] = db.query(
        f"SELECT (SELECT SUM({_AS_OF}) FROM proj_journal WHERE {where}), "
        f"(SELECT SUM(q.total_fen) FROM proj_loan_sums q WHERE {quiet})",
        [*[day] * _AS_OF_DAYS, *params, *quiet_args],
    )
    return _fen_to_amount(int(quiet_total or 0) + int(other_total or 0))


def account_balances(db: ViewDb, as_of: date, known_at: datetime | None = None) -> dict[str, Decimal]:
    """Each account's balance as of the date (debit +), in account order."""
    where, params = _lines(as_of, known_at)
    day = as_of.toordinal()
    rows = db.query(
        f"SELECT account, SUM({_AS_OF}) FROM proj_journal WHERE {where} GROUP BY account ORDER BY account",
        [day] * _AS_OF_DAYS + params,
    )
    return {account: _fen_to_amount(total) for account, total in rows}


def _of_loans(where: str, params: list[Any], where_loans: Sequence[Condition]) -> tuple[str, list[Any]]:
    """``where`` on proj_journal narrowed to the lines of the loans ``where_loans`` select."""
    for condition, args in where_loans:
        where += f" AND EXISTS (SELECT 1 FROM proj_loans l WHERE l.loan_id = proj_journal.loan_id AND {condition})"
        params = [*params, *args]
    return where, params


def portfolio(
    db: ViewDb, as_of: date, by: str, known_at: datetime | None = None, *, where_loans: Sequence[Condition] = ()
) -> list[Group]:
    """Loans funded by the date (as known at ``known_at``), grouped by one of GROUPINGS; ``where_loans``:
    only the loans these conditions on ``proj_loans l`` select.

    ``agency``: the agency holding the loan on the date as known then, ``inhouse`` for the rest.
    """
    if by not in GROUPINGS:
        raise ValueError(f"cannot group balances by {by!r}; one of {', '.join(GROUPINGS)}")
    if known_at is None:  # as now known: the loans quiet by the date from their sums (docs/decisions.md)
        groups = _quiet_groups(db, as_of, by, where_loans)
    else:
        groups = _summed_groups(db, as_of, by, known_at, where_loans)
    order = {name: i for i, name in enumerate(BUCKETS if by == "bucket" else STATES if by == "state" else ())}
    return [groups[k] for k in sorted(groups, key=lambda k: (order.get(k, len(order)), k))]


def _summed_groups(
    db: ViewDb, as_of: date, by: str, known_at: datetime | None, where_loans: Sequence[Condition]
) -> dict[str, Group]:
    """The groups from every loan's lines, a loan at a time: the full computation."""
    groups: dict[str, Group] = {}
    for line in _loan_lines(db, as_of, known_at, agencies=by == "agency", where_loans=where_loans, summed=True):
        key = line.key(by)
        group = groups.get(key) or groups.setdefault(key, Group(key))
        group.funded += 1
        group.loans += line.fen["total"] > 0  # "loans": those with something on the book
        fen = group.fen
        for name, value in line.fen.items():
            fen[name] += value
    return groups


def _judged(as_of: date, due: date, written_off: bool, still_due: bool, receivable: bool, owed: int) -> tuple[str, int]:
    """A loan's state and DPD as of the date: ``still_due``: its memo of what a written-off borrower still
    owes is above zero; ``receivable``: its principal, interest and fee are; ``owed``: its receivables."""
    if written_off:  # off the book; its DPD by the same rule, on what its borrower still owes (the memo)
        return "written_off", days_past_due(as_of, due, still_due)
    dpd = days_past_due(as_of, due, receivable)
    return ("repaid" if owed == 0 else "overdue" if dpd > 0 else "funded"), dpd


_KEYS = {
    "bank": "l.bank",
    "product": "l.product",
    "channel": "l.channel",
    "model": "l.model_version",
    "agency": "a.agency",
    "bucket": "NULL",  # (judged per row from the due day and the flags)
    "state": "NULL",
}


def _quiet_groups(db: ViewDb, as_of: date, by: str, where_loans: Sequence[Condition]) -> dict[str, Group]:
    """The groups as now known, in one query: a loan quiet by the date (proj_loan_sums.quiet_day) brings its
    sums, any other its lines summed as of the date; the loans are then added up in SQL by what decides
    their group, state and DPD (the grouping's key, the due day, written off or not, and the signs of what
    is owed), and each such row judged here by the domain's rules: the same figures as loan by loan."""
    day = as_of.toordinal()
    where, params = _lines(as_of, None)
    sums = _sums(outcomes=False)
    journal = f"SELECT loan_id, {', '.join(sums)} FROM proj_journal WHERE {where} AND {_NOT_QUIET} GROUP BY loan_id"
    columns = (*(f"{part}_fen" for part in PARTS), "overpayment_fen", "still_due_fen")
    picked = ", ".join(
        f"CASE WHEN q.quiet_day <= ? THEN q.{column} ELSE COALESCE(s.{name}, 0) END AS {name}"
        for name, column in zip((*PARTS, "overpayment", "still_due"), columns, strict=True)
    )
    held_sql, held_args = holders(day, None) if by == "agency" else ("", [])
    loans = (
        f"SELECT {_KEYS[by]} AS k, l.due_day AS due_day, "
        "CASE WHEN l.written_off_day IS NOT NULL AND l.written_off_day <= ? THEN 1 ELSE 0 END AS wo, "
        f"{picked} FROM proj_loans l LEFT JOIN proj_loan_sums q ON q.loan_id = l.loan_id "
        f"LEFT JOIN ({journal}) s ON s.loan_id = l.loan_id"
        + ("" if not held_sql else f" LEFT JOIN ({held_sql}) a ON a.loan_id = l.loan_id")
        + " WHERE l.funded_day <= ?"
        + "".join(f" AND {condition}" for condition, _ in where_loans)
    )
    owed = "principal + interest + fee + penalty"
    statement = (
        "SELECT k, due_day, wo, CASE WHEN still_due > 0 THEN 1 ELSE 0 END, "
        "CASE WHEN principal + interest + fee > 0 THEN 1 ELSE 0 END, "
        f"CASE WHEN {owed} > 0 THEN 1 WHEN {owed} = 0 THEN 0 ELSE -1 END, COUNT(*), "
        f"{', '.join(f'SUM({name})' for name in (*PARTS, 'overpayment'))} "
        f"FROM ({loans}) t GROUP BY 1, 2, 3, 4, 5, 6"
    )
    args: list[Any] = [day, *[day] * len(columns)]  # wo, then each picked column
    args += [*[day] * _AS_OF_DAYS * len(PARTS), *params, day]  # the journal's sums, its WHERE, _NOT_QUIET
    args += [*held_args, day, *(arg for _, condition_args in where_loans for arg in condition_args)]
    groups: dict[str, Group] = {}
    for key, due_day, wo, still_due, receivable, owed_sign, count, *fen_sums in db.query(statement, args):
        fen = [int(value or 0) for value in fen_sums]
        owed_fen = sum(fen[: len(PARTS)])
        state, dpd = _judged(as_of, date.fromordinal(due_day), wo == 1, still_due == 1, receivable == 1, owed_fen)
        if by == "bucket":
            key = bucket(dpd)
        elif by == "state":
            key = state
        elif by == "model":
            key = key or ""
        elif by == "agency":
            key = key or INHOUSE
        group = groups.get(key) or groups.setdefault(key, Group(key))
        group.funded += count
        group.loans += count if owed_sign > 0 else 0
        for name, value in zip(AMOUNTS, (*fen, owed_fen), strict=True):
            group.fen[name] += value
    return groups


@dataclass(frozen=True)
class LoanLine:
    """One funded loan as of a date: its state and delinquency from its journal, amounts in fen."""

    loan_id: str
    bank: str
    product: str
    due_date: date
    state: str
    dpd: int
    fen: dict[str, int]
    channel: str = ""
    model_version: str = ""
    agency: str = INHOUSE  # who holds it on the date (when the lines were read with ``agencies``)
    funded_fen: int = 0  # the principal funded
    written_off_fen: int = 0  # principal written off by the date
    recovered_fen: int = 0  # received after the write-off and applied to the debt (recovery income)

    @property
    def bucket(self) -> str:
        return bucket(self.dpd)

    def key(self, by: str) -> str:
        """The group this loan falls in, by one of GROUPINGS."""
        if by == "bank":
            return self.bank
        if by == "product":
            return self.product
        if by == "bucket":
            return self.bucket
        if by == "state":
            return self.state
        if by == "channel":
            return self.channel
        if by == "agency":
            return self.agency
        if by == "model":
            return self.model_version
        raise ValueError(f"no grouping {by!r}")

    @property
    def amounts(self) -> dict[str, Decimal]:
        return {name: _fen_to_amount(value) for name, value in self.fen.items()}


def loan_lines(
    db: ViewDb,
    as_of: date,
    known_at: datetime | None = None,
    *,
    bank: str | None = None,
    where_loans: Sequence[Condition] = (),
) -> Iterator[LoanLine]:
    """Funded loans (of ``bank``, or all; only those ``where_loans`` select) in loan_id order, as of the
    date and as known at ``known_at``."""
    return _loan_lines(db, as_of, known_at, bank=bank, ordered=True, where_loans=where_loans)


def book_lines(
    db: ViewDb, as_of: date, known_at: datetime | None = None, *, agencies: bool = False
) -> Iterator[LoanLine]:
    """Every funded loan as ``portfolio`` groups it (in no set order), with its principal written off and
    recovered; ``agencies``: with the agency holding it."""
    return _loan_lines(db, as_of, known_at, agencies=agencies, outcomes=True)


def _loan_lines(
    db: ViewDb,
    as_of: date,
    known_at: datetime | None,
    *,
    bank: str | None = None,
    ordered: bool = False,
    agencies: bool = False,
    outcomes: bool = False,
    where_loans: Sequence[Condition] = (),
    summed: bool = False,
) -> Iterator[LoanLine]:
    """``summed``: every loan from its lines (the full computation), not a quiet loan from its sums."""
    day = as_of.toordinal()
    where, params = _lines(as_of, known_at)
    known_us = None if known_at is None else micros(known_at)
    rows = _portfolio_rows(
        db,
        day,
        where,
        params,
        known_us,
        bank=bank,
        ordered=ordered,
        agencies=agencies,
        outcomes=outcomes,
        where_loans=where_loans,
        summed=summed,
    )
    for loan_id, bank_of, product, due_day, written_off_day, written_off_at_us, parties, *amounts in rows:
        principal, interest, fee, penalty, overpaid, still_due, written_off_fen, recovered_fen = amounts
        due = date.fromordinal(due_day)
        owed = principal + interest + fee + penalty
        written_off = (
            written_off_day is not None
            and written_off_day <= day
            and (known_us is None or written_off_at_us <= known_us)
        )
        state, dpd = _judged(as_of, due, written_off, still_due > 0, principal + interest + fee > 0, owed)
        fen = {
            "principal": principal,
            "interest": interest,
            "fee": fee,
            "penalty": penalty,
            "overpayment": overpaid,
            "total": owed,
        }
        channel, model_version, principal_fen, agency = parties
        yield LoanLine(
            loan_id,
            bank_of,
            product,
            due,
            state,
            dpd,
            fen,
            channel,
            model_version or "",
            agency or INHOUSE,
            principal_fen,
            written_off_fen,
            recovered_fen,
        )


def _sums(outcomes: bool) -> list[str]:
    """A loan's sums over its lines in proj_journal (params: [day] * _AS_OF_DAYS for each of PARTS)."""
    sums = [f"SUM(CASE WHEN account = '{RECEIVABLE}{part}' THEN {_AS_OF} ELSE 0 END) AS {part}" for part in PARTS]
    sums.append(f"-SUM(CASE WHEN account = '{OVERPAYMENTS}' THEN amount_fen ELSE 0 END) AS overpayment")
    # what a written-off borrower still owes of principal, interest and fee (memo accounts: point lines only)
    memo_due = ", ".join(f"'{MEMO}{part}'" for part in ("principal", "interest", "fee"))
    sums.append(f"SUM(CASE WHEN account IN ({memo_due}) THEN amount_fen ELSE 0 END) AS still_due")
    if outcomes:  # (two more sums over every line: only the partners report needs them)
        sums.append(
            f"-SUM(CASE WHEN entry = 'write_off' AND account = '{RECEIVABLE}principal' THEN amount_fen ELSE 0 END)"
            " AS written_off"
        )
        sums.append(f"-SUM(CASE WHEN account = '{RECOVERY}' THEN amount_fen ELSE 0 END) AS recovered")
    return sums


def _portfolio_rows(
    db: ViewDb,
    day: int,
    where: str,
    params: list[Any],
    known_us: int | None,
    *,
    bank: str | None = None,
    ordered: bool = False,
    agencies: bool = False,
    outcomes: bool = False,
    where_loans: Sequence[Condition] = (),
    summed: bool = False,
) -> Iterator[tuple[Any, ...]]:
    """Per funded loan: its facts, its parties (channel, model version, and with ``agencies`` the agency
    holding it on the day), its receivables and overpayment as of the day, and with ``outcomes`` its
    principal written off and recoveries (else 0), in fen."""
    sums = _sums(outcomes)
    funded = "l.funded_day <= ?" + ("" if known_us is None else " AND l.funded_at_us <= ?")
    held, held_sql, held_args = ("NULL", "", []) if not agencies else ("a.agency", *holders(day, known_us))
    names = (*PARTS, "overpayment", "still_due", *(("written_off", "recovered") if outcomes else ()))
    quiet = known_us is None and not summed  # as now known: a loan quiet by the day from proj_loan_sums
    if quiet:
        where, params = f"{where} AND {_NOT_QUIET}", [*params, day]
        picked = [f"CASE WHEN q.quiet_day <= ? THEN q.{name}_fen ELSE COALESCE(s.{name}, 0) END" for name in names]
    else:
        picked = [f"COALESCE(s.{name}, 0)" for name in names]
    statement = (
        f"SELECT l.loan_id, l.bank, l.product, l.due_day, l.written_off_day, l.written_off_at_us, "
        f"l.channel, l.model_version, l.principal_fen, {held}, "
        + ", ".join(picked)
        + ("" if outcomes else ", 0, 0")
        + " FROM proj_loans l"
        + (" LEFT JOIN proj_loan_sums q ON q.loan_id = l.loan_id" if quiet else "")
        + f" LEFT JOIN (SELECT loan_id, {', '.join(sums)} FROM proj_journal WHERE {where} "
        f"GROUP BY loan_id) s ON s.loan_id = l.loan_id"
        + ("" if not agencies else f" LEFT JOIN ({held_sql}) a ON a.loan_id = l.loan_id")
        + f" WHERE {funded}"
        + ("" if bank is None else " AND l.bank = ?")
        + "".join(f" AND {condition}" for condition, _ in where_loans)
        + (" ORDER BY l.loan_id" if ordered else "")
    )
    args: list[Any] = [day] * len(names) if quiet else []
    args += [day] * _AS_OF_DAYS * len(PARTS) + params + held_args + [day] + ([] if known_us is None else [known_us])
    args += [] if bank is None else [bank]
    args += [arg for _, condition_args in where_loans for arg in condition_args]
    for loan_id, bank_of, product, due_day, wo_day, wo_at, channel, model, funded, agency, *fen in db.stream(
        statement, args
    ):
        parties = (channel, model, int(funded), agency)
        yield (loan_id, bank_of, product, due_day, wo_day, wo_at, parties, *(int(f) for f in fen))


def open_loan_ids(db: ViewDb, day: date) -> list[str]:
    """Loans the end of ``day`` may concern: funded, not written off, past due and not settled by then."""
    d = day.toordinal()
    return [
        r[0]
        for r in db.query(
            "SELECT loan_id FROM proj_loans WHERE phase = 'funded' AND due_day < ? "
            "AND (settled_day IS NULL OR settled_day > ?) ORDER BY loan_id",
            (d, d),
        )
    ]


def open_loan_uuids(db: ViewDb, day: date) -> Iterator[UUID]:
    """The loans of ``open_loan_ids``, in the same order, as the store's stream ids.

    One query, read to the end before the first id is handed out (no transaction stays open
    while the end of day writes), kept as 16 bytes a loan: a 1M-loan book's candidates take
    16 MB, where a list of ids and their UUIDs took ~15 times that.
    """
    d, ids = day.toordinal(), bytearray()
    for (loan_uuid,) in db.stream(
        "SELECT loan_uuid FROM proj_loans WHERE phase = 'funded' AND due_day < ? "
        "AND (settled_day IS NULL OR settled_day > ?) ORDER BY loan_id",
        (d, d),
    ):
        ids += UUID(loan_uuid).bytes
    return (UUID(bytes=bytes(ids[i : i + 16])) for i in range(0, len(ids), 16))


@dataclass(frozen=True)
class BankPayable:
    """What the book owes a funding bank as of a date: principal funded, remitted, compensated, still owed."""

    bank: str
    funded: Decimal  # principal the bank advanced
    remitted: Decimal  # principal remitted to it (net of reversals carried over)
    compensated: Decimal  # principal paid to it under its guarantee
    interest: Decimal  # its yield remitted (with the compensation's)
    owed: Decimal  # funding payable: funded - remitted - compensated


def bank_payables(
    db: ViewDb, as_of: date, known_at: datetime | None = None, *, where_loans: Sequence[Condition] = ()
) -> list[BankPayable]:
    """Per bank, from the journal's funding payable and bank interest lines (point lines: no runs);
    ``where_loans``: only the loans these conditions on ``proj_loans l`` select (a party's own book).
    As now known, with most loans quiet by the date, the quiet loans from their sums (as trial_balance)."""
    if known_at is None and _mostly_quiet(db, as_of):
        return _quiet_bank_payables(db, as_of, where_loans)
    return _summed_bank_payables(db, as_of, known_at, where_loans)


_PAYABLE = "account LIKE 'funding_payable:%'"
_PAYABLE_SUMS = {  # BankPayable's amounts, in its order
    "funded": f"-SUM(CASE WHEN {_PAYABLE} AND entry = 'funding' THEN amount_fen ELSE 0 END)",
    "remitted": f"SUM(CASE WHEN {_PAYABLE} AND entry LIKE 'remitted:%' THEN amount_fen ELSE 0 END)",
    "compensated": f"SUM(CASE WHEN {_PAYABLE} AND entry LIKE 'compensated:%' THEN amount_fen ELSE 0 END)",
    "interest": f"SUM(CASE WHEN account = '{BANK_INTEREST}' THEN amount_fen ELSE 0 END)",
    "owed": f"-SUM(CASE WHEN {_PAYABLE} THEN amount_fen ELSE 0 END)",
}
# the same amounts from a quiet loan's proj_loan_sums row
_QUIET_PAYABLE_SUMS = {
    "funded": "q.funded_fen",
    "remitted": "q.remitted_fen",
    "compensated": "q.compensated_fen",
    "interest": "q.bank_interest_fen",
    "owed": "q.payable_fen",
}
_PAYABLE_COLUMNS = ", ".join(f"{sql} AS {name}" for name, sql in _PAYABLE_SUMS.items())
_PAYABLE_LINES = f"({_PAYABLE} OR account = '{BANK_INTEREST}')"


def _summed_bank_payables(
    db: ViewDb, as_of: date, known_at: datetime | None, where_loans: Sequence[Condition]
) -> list[BankPayable]:
    """From every funding payable and bank interest line: the full computation (the only one as known at)."""
    where, params = _lines(as_of, known_at)
    where, params = _of_loans(where, params, where_loans)
    rows = db.query(
        f"SELECT bank, {_PAYABLE_COLUMNS} FROM proj_journal WHERE {where} AND {_PAYABLE_LINES} "
        "GROUP BY bank ORDER BY bank",
        params,
    )
    return [BankPayable(bank, *(_fen_to_amount(int(v or 0)) for v in values)) for bank, *values in rows]


def _quiet_bank_payables(db: ViewDb, as_of: date, where_loans: Sequence[Condition]) -> list[BankPayable]:
    """As now known: each loan quiet by the date gives its payable sums (proj_loan_sums), the others their
    lines as of it; a bank is listed when either part has a line of it, as in the full computation."""
    day = as_of.toordinal()
    where, params = _lines(as_of, None)
    where, params = _of_loans(f"{where} AND {_NOT_QUIET} AND {_PAYABLE_LINES}", [*params, day], where_loans)
    quiet, quiet_args = _quiet_rows(day, where_loans, "q.payable_lines > 0")
    # one statement, so both parts see the same views; proj_journal named before proj_loan_sums: a
    # rebuild's swap (runner._swap) locks the journal first
    quiet_sums = ", ".join(f"SUM({sql}) AS {name}" for name, sql in _QUIET_PAYABLE_SUMS.items())
    rows = db.query(
        f"SELECT bank, {', '.join(f'SUM({name})' for name in _PAYABLE_SUMS)} FROM ("
        f"SELECT bank, {_PAYABLE_COLUMNS} FROM proj_journal WHERE {where} GROUP BY bank UNION ALL "
        f"SELECT q.bank AS bank, {quiet_sums} FROM proj_loan_sums q WHERE {quiet} GROUP BY q.bank"
        ") parts GROUP BY bank ORDER BY bank",
        [*params, *quiet_args],
    )
    return [BankPayable(bank, *(_fen_to_amount(int(v or 0)) for v in values)) for bank, *values in rows]


def bank_payables_json(payables: list[BankPayable]) -> list[dict[str, str]]:
    """As ``balances --json`` and ``GET /v1/balances`` give them: amounts with 2 places."""
    return [
        {
            "bank": b.bank,
            "funded": fmt(b.funded),
            "remitted": fmt(b.remitted),
            "compensated": fmt(b.compensated),
            "interest": fmt(b.interest),
            "owed": fmt(b.owed),
        }
        for b in payables
    ]
