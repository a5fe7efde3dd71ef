"""Which loans a party sees: one definition per kind of party, used by every read and by the API's
write checks, as SQL on the book (``proj_loans`` aliased ``l``) and as a test of one loan.

- ``bank:B``: the loans B funded (a loan's bank never changes once funded);
- ``channel:C``: the loans whose application came through C;
- ``agency:A``: the loans assigned to A, from ``assigned_to`` below, the one place that must learn
  where assignments are kept. Until the ledger records assignments it refuses, rather than guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Condition = tuple[str, Sequence[Any]]  # SQL on proj_loans aliased l, and its parameters


class PartyUnsupported(Exception):
    """This kind of party cannot be scoped by this ledger (yet): its reads are refused, not guessed."""


@dataclass(frozen=True)
class LoanScope:
    """The loans one party sees: ``condition`` selects them in the book, ``owns`` tests one loan aggregate."""

    description: str
    condition: Condition
    owns: Callable[[Any], bool]


def funded_by(bank: str) -> LoanScope:
    return LoanScope(f"bank {bank}", ("l.bank = ?", (bank,)), lambda loan: loan is not None and loan.bank == bank)


def sent_by(channel: str) -> LoanScope:
    return LoanScope(
        f"channel {channel}", ("l.channel = ?", (channel,)), lambda loan: loan is not None and loan.channel == channel
    )


def assigned_to(agency: str) -> LoanScope:
    """The loans assigned to ``agency``: plug the ledger's record of assignments in here (a condition on
    ``l``, e.g. ``l.agency = ?``, and a test of a Loan's current assignment); every read and write of an
    agency's token goes through it."""
    raise PartyUnsupported(
        f"agency {agency}: this ledger does not record which loans are assigned to an agency yet, "
        "so an agency's reads and collections cannot be scoped and are refused"
    )


SCOPES: dict[str, Callable[[str], LoanScope]] = {"bank": funded_by, "channel": sent_by, "agency": assigned_to}


def scope_of(kind: str, name: str) -> LoanScope:
    return SCOPES[kind](name)


def conditions(scopes: Sequence[LoanScope]) -> list[Condition]:
    return [s.condition for s in scopes]


def owned(scopes: Sequence[LoanScope], loan: Any) -> bool:
    """Seen by every one of ``scopes`` (a party's own, and any filters asked for)."""
    return all(s.owns(loan) for s in scopes)
