"""What the write side and the read side both need of a loan's stream once read from the store:
a damaged stream named by its loan, and a stream's events typed as the Loan's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol, OriginatorVersionError

from domain.errors import BrokenInvariant, DamagedStream, UnreadableEvent
from domain.loan import Loan

DAMAGE = (OriginatorVersionError, UnreadableEvent)  # what ``damage_named`` names


@contextmanager
def damage_named(loan: str | Callable[[], str]) -> Iterator[None]:
    """The library's version error says which version, never which loan: an operator needs both.

    ``loan`` may be a function, called only when a stream is damaged: finding a name can cost a
    query, which must not be paid for every healthy loan (a rebuild of 1M loans paid it 1M times).
    """
    try:
        yield
    except OriginatorVersionError as e:
        raise DamagedStream(loan if isinstance(loan, str) else loan(), *e.args) from None
    except UnreadableEvent as e:
        raise UnreadableEvent(loan if isinstance(loan, str) else loan(), e.version, e.why) from None


def loan_event(e: DomainEventProtocol[UUID]) -> Loan.Event:
    """A loan's stream holds only the Loan's own events; the library's reads type them as the bare protocol."""
    if not isinstance(e, Loan.Event):
        raise BrokenInvariant(f"{type(e).__name__} in a loan's stream")
    return e
