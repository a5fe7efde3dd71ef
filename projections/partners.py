"""Each party's own book: `ledger report partners --by bank|channel|agency|model`.

A party's loans are grouped exactly as `ledger balances --by` groups them (the same
loan lines, so the same loans, amounts and counts), as of a value date and as known
at a recorded time. Beside them, what each role is judged by:

- a channel: the applications it sent by the date, and how many were approved;
- a model version: the decisions it made by the date, and how many were approvals;
- an agency: the loans handed to it by the date (spells: count, and what was owed at each
  hand-over, by the DPD bucket at hand-over), what it collected in them, and the rate;
- every party: its loans' outcomes as of the date (repaid, overdue, written off), the
  principal written off, the part of it recovered, and the net loss.

Rates are Decimal to 4 places, None when there is nothing to divide by. Amounts are
integer fen until ``PartyBook.figures`` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from domain.delinquency import BUCKETS
from domain.loan import INHOUSE
from projections.balances import AMOUNTS, book_lines
from projections.db import ViewDb
from projections.journal_view import micros

BY = ("bank", "channel", "agency", "model")
_RATE = Decimal("0.0001")


def _amount(fen: int) -> Decimal:
    return Decimal(int(fen)).scaleb(-2)


def rate(part: int, whole: int) -> Decimal | None:
    """part / whole to 4 places (half up), None when the whole is 0."""
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(_RATE, rounding=ROUND_HALF_UP)


@dataclass
class Spells:
    """An agency's spells whose loans were in one bucket when it was handed them."""

    assigned: int = 0
    owed_fen: int = 0  # what the loans owed on the days they were handed over
    collected_fen: int = 0  # what it collected in those spells, by the date


@dataclass
class PartyBook:
    key: str
    # the book, as `balances --by` shows it
    loans: int = 0  # owing something on the date
    funded: int = 0  # funded by the date
    fen: dict[str, int] = field(default_factory=lambda: dict.fromkeys(AMOUNTS, 0))
    # outcomes of its loans on the date
    funded_fen: int = 0
    repaid: int = 0
    overdue: int = 0
    written_off: int = 0
    written_off_fen: int = 0  # principal written off
    recovered_fen: int = 0  # of that principal, recovered after the write-off
    # applications (channels) or decisions (model versions)
    applications: int = 0
    approved: int = 0
    declined: int = 0
    # collections (agencies)
    collected_fen: int = 0  # every collection it made by the date, in a spell or not (inhouse: never)
    spells: dict[str, Spells] = field(default_factory=dict)  # by the bucket at hand-over

    def figures(self, by: str) -> dict[str, Any]:
        """What the report shows for this party, grouped ``by``: amounts as Decimal, rates to 4 places."""
        out: dict[str, Any] = {"key": self.key, "loans": self.loans, "funded": self.funded}
        out |= {name: _amount(value) for name, value in self.fen.items()}
        net = self.written_off_fen - self.recovered_fen
        out |= {
            "funded_amount": _amount(self.funded_fen),
            "repaid": self.repaid,
            "overdue": self.overdue,
            "written_off": self.written_off,
            "written_off_amount": _amount(self.written_off_fen),
            "recovered": _amount(self.recovered_fen),
            "net_loss": _amount(net),
            "loss_rate": rate(net, self.funded_fen),
        }
        if by in ("channel", "model"):
            decided = self.approved + self.declined
            out |= {
                "applications": self.applications,
                "approved": self.approved,
                "declined": self.declined,
                "approval_rate": rate(self.approved, decided),
            }
        if by == "agency":
            spells = [self.spells[b] for b in BUCKETS if b in self.spells]
            owed, collected = sum(s.owed_fen for s in spells), sum(s.collected_fen for s in spells)
            out |= {
                "assigned": sum(s.assigned for s in spells),
                "assigned_amount": _amount(owed),
                "collected": _amount(self.collected_fen),
                "collection_rate": rate(collected, owed),
                "by_bucket": [
                    {
                        "bucket": b,
                        "assigned": s.assigned,
                        "assigned_amount": _amount(s.owed_fen),
                        "collected": _amount(s.collected_fen),
                        "collection_rate": rate(s.collected_fen, s.owed_fen),
                    }
                    for b, s in ((b, self.spells[b]) for b in BUCKETS if b in self.spells)
                ],
            }
        return out


def partners(db: ViewDb, as_of: date, by: str, known_at: datetime | None = None) -> list[PartyBook]:
    """Each party of the kind ``by`` with anything to show as of the date, as known at ``known_at``."""
    if by not in BY:
        raise ValueError(f"cannot report partners by {by!r}; one of {', '.join(BY)}")
    parties: dict[str, PartyBook] = {}

    def party(key: str) -> PartyBook:
        found = parties.get(key)
        if found is None:
            found = parties[key] = PartyBook(key)
        return found

    for line in book_lines(db, as_of, known_at, agencies=by == "agency"):
        p = party(line.key(by))
        p.funded += 1
        p.loans += line.fen["total"] > 0
        for name, value in line.fen.items():
            p.fen[name] += value
        p.funded_fen += line.funded_fen
        p.repaid += line.state == "repaid"
        p.overdue += line.state == "overdue"
        p.written_off += line.state == "written_off"
        p.written_off_fen += line.written_off_fen
        p.recovered_fen += min(line.written_off_fen, line.recovered_fen)  # beyond the principal: not a recovery
    day = as_of.toordinal()
    known_us = None if known_at is None else micros(known_at)
    if by in ("channel", "model"):
        for key, applications, approved, declined in _decisions(db, by, day, known_us):
            p = party(key)
            p.applications, p.approved, p.declined = int(applications), int(approved or 0), int(declined or 0)
    if by == "agency":
        _collections(db, day, known_us, party)
    return [parties[k] for k in sorted(parties, key=lambda k: (k == INHOUSE, k))]


def _decisions(db: ViewDb, by: str, day: int, known_us: int | None) -> list[tuple[Any, ...]]:
    """Per channel, the applications by the day and their decisions; per model version, its decisions."""
    decided = "decided_day <= ?" + ("" if known_us is None else " AND decided_at_us <= ?")
    decided_args = [day] + ([] if known_us is None else [known_us])
    counts = (
        f"SUM(CASE WHEN {decided} AND phase <> 'declined' THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {decided} AND phase = 'declined' THEN 1 ELSE 0 END)"
    )
    if by == "channel":
        applied = "applied_day <= ?" + ("" if known_us is None else " AND applied_at_us <= ?")
        return db.query(
            f"SELECT channel, COUNT(*), {counts} FROM proj_loans WHERE {applied} GROUP BY channel",
            [*decided_args, *decided_args, day] + ([] if known_us is None else [known_us]),
        )
    return db.query(
        f"SELECT model_version, COUNT(*), {counts} FROM proj_loans WHERE {decided} GROUP BY model_version",
        [*decided_args, *decided_args, *decided_args],
    )


def _collections(db: ViewDb, day: int, known_us: int | None, party: Any) -> None:
    """Each agency's spells by the day (by bucket at hand-over) and its collections, as known then."""
    assigned = "from_day <= ?" + ("" if known_us is None else " AND assigned_at_us <= ?")
    for agency, bucket, count, owed in db.query(
        f"SELECT agency, bucket, COUNT(*), SUM(owed_fen) FROM proj_assignments WHERE {assigned} "
        "GROUP BY agency, bucket",
        [day] + ([] if known_us is None else [known_us]),
    ):
        spells = party(agency).spells.setdefault(bucket, Spells())
        spells.assigned, spells.owed_fen = int(count), int(owed)
    known = (
        "known_to_us IS NULL" if known_us is None else "known_from_us <= ? AND (known_to_us IS NULL OR known_to_us > ?)"
    )
    for agency, bucket, amount in db.query(
        f"SELECT agency, bucket, SUM(amount_fen) FROM proj_collections WHERE value_day <= ? AND {known} "
        "GROUP BY agency, bucket",
        [day] + ([] if known_us is None else [known_us, known_us]),
    ):
        p = party(agency)
        p.collected_fen += int(amount)
        if bucket is not None:  # collected in a spell (its bucket at hand-over)
            p.spells.setdefault(bucket, Spells()).collected_fen += int(amount)
