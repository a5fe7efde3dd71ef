"""The end of day in parts: several processes close the same day, a share of the candidates each.

What the end of day appends for a loan depends only on that loan's events and the day (keys
and timestamps derive from (day, loan, action)), so the candidates can be shared out by a
stable hash of their stream id, the rule ``projections rebuild --workers N`` uses, and each
process runs the one-process job on its share: every loan gets the same events as in one
process. The parts' reports add up to the one-process report; the rejections are put back in
the candidates' order, so the command prints what one process prints.

A part that meets an error hands it to the parent, which raises the first part's (a lost store
is StoreUnavailable, as in one process); the other parts finish their shares, which is harmless:
a rerun answers what they stored as duplicates. If the parent is killed or interrupted (Ctrl-C),
its parts stop after the batch in flight, and exit.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from domain.loan import loan_uuid
from eventstore.parts import Part, run_parts
from ledger.config import Settings
from ledger.eod import EodReport, run_eod


@dataclass(frozen=True)
class EodPart(Part):
    job = "the end of day"


def shares(candidates: Iterable[UUID], count: int) -> tuple[bytes, list[bytes]]:
    """All the candidates and each part's, in their given order, as 16 bytes a loan (as open_loan_uuids
    keeps them): the whole list is kept to put the parts' rejections back in its order."""
    whole, out = bytearray(), [bytearray() for _ in range(count)]
    for uuid in candidates:
        whole += uuid.bytes
        out[uuid.int % count] += uuid.bytes
    return bytes(whole), [bytes(share) for share in out]


def _uuids(share: bytes) -> Iterator[UUID]:
    return (UUID(bytes=share[i : i + 16]) for i in range(0, len(share), 16))


def run_eod_in_parts(settings: Settings, day: date, candidates: Iterable[UUID], workers: int) -> EodReport:
    """``run_eod`` over ``candidates`` in ``workers`` processes: the same events and the same report."""
    whole, parts = shares(candidates, workers)
    tasks = [(_part, (settings, day, share, EodPart(i, workers, os.getpid()))) for i, share in enumerate(parts)]
    reports = run_parts(f"the end of day {day} in parts", settings.db_url, tasks)
    return merged(day, reports, _uuids(whole))


def merged(day: date, reports: list[EodReport], order: Iterable[UUID]) -> EodReport:
    """One report from the parts', its rejections in the order of ``order`` (the candidates')."""
    total = EodReport(day)
    rejected = [r for report in reports for r in report.rejected]
    for report in reports:
        total.loans_checked += report.loans_checked
        total.already_closed += report.already_closed
        total.outcomes.update(report.outcomes)
    if rejected:
        wanted = {loan_uuid(loan_id) for loan_id, _ in rejected}
        rank = {uuid: n for n, uuid in enumerate(order) if uuid in wanted}
        # stable: a loan's own rejections keep the order its part gave them
        total.rejected = sorted(rejected, key=lambda r: rank[loan_uuid(r[0])])
    return total


def _part(settings: Settings, day: date, share: bytes, part: EodPart) -> EodReport:
    """One part, in its own process: the one-process end of day over its share."""
    from eventstore.retry import retrying
    from ledger.app import Ledger

    part.still_wanted()
    app = retrying(settings.retry_seconds, "opening the store", lambda: Ledger(settings))
    try:
        # checked after each batch is committed: a part stops at a batch boundary, as one process would be killed
        return run_eod(app, day, candidates=_uuids(share), progress=lambda _: part.still_wanted())
    finally:
        app.close()
