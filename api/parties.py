"""What a token may write: its scopes, and for a party's token what that party's role sends.

- the platform (a token without a party): every type its scopes allow, on any loan;
- ``bank:B``: ``funded`` naming bank B, on a loan no other bank funded; ``repaid``, ``reversed``,
  ``refunded`` on B's own loans;
- ``channel:C``: ``applied`` naming channel C, with a loan id no other channel's loan holds;
- ``agency:A``: ``collected`` naming agency A, on loans assigned to A
  (``projections.parties.assigned_to``).

A refusal is the command's answer, as a broken rule is: in a batch, at its index, while the other
commands go on. Another party's loan is answered as an unknown one ("no loan X", 404): a party never
learns from the API that a loan it does not own exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from api.auth import Caller
from api.errors import LOAN_ID_TAKEN, LOAN_NOT_FOUND, MISSING_SCOPE, NOT_YOUR_PARTY
from api.services import Services
from domain.errors import DamagedStream
from ledger.app import DAMAGED_STREAM, IDEMPOTENCY_CONFLICT, REJECTED, Outcome
from ledger.commands import _Command
from ledger.tokens import OWN_LOAN_ONLY, ROLE_WRITES

_LOAN_CHECKED = {"bank": {"funded", *OWN_LOAN_ONLY["bank"]}, "channel": {"applied"}, "agency": {"collected"}}


def _refused(cmd: _Command, code: str, message: str, field: str | None = None) -> Outcome:
    return Outcome(REJECTED, cmd.loan_id, message, code, field)


def _read_loans(svc: Services, loan_ids: list[str]) -> dict[str, Any]:
    """Each loan's current state (None: unknown); a damaged one as its DamagedStream, alone."""
    try:
        return dict(svc.ledger.get_loans(loan_ids))
    except DamagedStream:
        found: dict[str, Any] = {}
        for loan_id in loan_ids:
            try:
                found[loan_id] = svc.ledger.get_loan(loan_id)
            except DamagedStream as e:
                found[loan_id] = e
        return found


async def check_writes(svc: Services, caller: Caller, items: Sequence[_Command | Outcome]) -> list[_Command | Outcome]:
    """``items`` with each command this caller may not send replaced by its refusal."""
    token, party = caller.token, caller.token.party
    loans: dict[str, Any] = {}
    if party is not None:
        wanted = sorted({c.loan_id for c in items if isinstance(c, _Command) and c.type in _LOAN_CHECKED[party.kind]})
        if wanted:
            loans = await svc.blocking(_read_loans, svc, wanted)
    scopes = caller.scopes()
    funded_here: set[str] = set()  # a bank's loans funded earlier in this batch are its own for what follows
    checked: list[_Command | Outcome] = []
    for item in items:
        if not isinstance(item, _Command):
            checked.append(item)
            continue
        cmd, kind = item, item.type
        if not token.can_append(kind):
            role = f" (a {party.kind} token sends only {', '.join(ROLE_WRITES[party.kind])})" if party else ""
            checked.append(_refused(cmd, MISSING_SCOPE, f"token {token.name!r} may not append {kind!r}{role}", "type"))
            continue
        if party is None:
            checked.append(cmd)
            continue
        named = ROLE_WRITES[party.kind][kind]
        if named is not None and getattr(cmd, named) != party.name:
            message = f"a {party} token sends {kind} only with {named} {party.name!r}"
            checked.append(_refused(cmd, NOT_YOUR_PARTY, message, named))
            continue
        loan = loans.get(cmd.loan_id)
        if isinstance(loan, DamagedStream):
            checked.append(_refused(cmd, DAMAGED_STREAM, str(loan)))
            continue
        unknown = _refused(cmd, LOAN_NOT_FOUND, f"no loan {cmd.loan_id}", "loan_id")
        if kind in OWN_LOAN_ONLY[party.kind]:
            mine = cmd.loan_id in funded_here or all(s.owns(loan) for s in scopes)
            checked.append(cmd if mine else unknown)
        elif party.kind == "bank" and kind == "funded":
            if loan is None or loan.bank not in (None, party.name):
                checked.append(unknown)
            else:
                funded_here.add(cmd.loan_id)
                checked.append(cmd)
        elif party.kind == "channel" and kind == "applied" and loan is not None and loan.channel != party.name:
            checked.append(_refused(cmd, LOAN_ID_TAKEN, f"loan id {cmd.loan_id} is taken; choose another", "loan_id"))
        else:
            checked.append(cmd)
    return checked


def as_seen_by(caller: Caller, cmd: _Command, outcome: Outcome) -> Outcome:
    """The answer as this caller may read it: a party is not told which other loan holds a key."""
    if caller.token.party is None or outcome.code != IDEMPOTENCY_CONFLICT:
        return outcome
    message = f"idempotency_key {cmd.idempotency_key!r} was already used with different content"
    return Outcome(outcome.status, outcome.loan_id, message, outcome.code, outcome.field)
