"""Errors the ledger's rules raise: values a caller can act on.

Each carries the facts an operator needs (loan, state, field, command) so the
CLI can render it once without guessing. Nothing is appended when one is raised.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal


class LedgerError(Exception):
    """Base of every rule violation; ``str()`` is the message shown to users."""


class InvalidAmount(LedgerError):
    def __init__(self, field: str, reason: str):
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class InvalidCommand(LedgerError):
    """A line that is not a valid command (syntax, field, type); ``field`` names the first field at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class IllegalTransition(LedgerError):
    def __init__(self, loan_id: str, state: str, command: str, reason: str = ""):
        self.loan_id = loan_id
        self.state = state
        self.command = command
        detail = f": {reason}" if reason else ""
        super().__init__(f"loan {loan_id} is {state}; cannot apply '{command}'{detail}")


class RuleViolation(LedgerError):
    """A command that is legal in this state but breaks a business rule."""

    def __init__(self, loan_id: str, command: str, reason: str):
        self.loan_id = loan_id
        self.command = command
        self.reason = reason
        super().__init__(f"loan {loan_id}: '{command}' rejected: {reason}")


class CostCapExceeded(LedgerError):
    def __init__(self, rate: Decimal, cap: Decimal, since: date | None = None):
        self.rate = rate
        self.cap = cap
        self.since = since
        in_force = f" in force since {since}" if since else ""
        super().__init__(f"annualised cost {rate:.4%} exceeds the cap of {cap:.2%}{in_force}")


class IdempotencyConflict(LedgerError):
    def __init__(self, key: str, loan_id: str):
        self.key = key
        self.loan_id = loan_id
        super().__init__(f"idempotency_key {key!r} was already used (loan {loan_id}) with different content")


class DamagedStream(LedgerError):
    """A loan's stored events skip a version: one was removed or lost. Nothing is guessed around it."""

    def __init__(self, loan: str, found: int, expected: int):
        self.loan, self.found, self.expected = loan, found, expected
        super().__init__(
            f"loan {loan}: its stored events are damaged (version {found} follows version {expected - 1}; "
            f"version {expected} is missing): run `ledger verify`, and restore the loan's events from a backup"
        )


class UnreadableEvent(LedgerError):
    """A loan's stored event cannot be decoded (its state is not JSON, its topic names no event type):
    it was written or changed around the ledger. ``loan`` is the loan's id where known, else its stream."""

    def __init__(self, loan: str, version: int, why: str):
        self.loan, self.version, self.why = loan, version, why
        super().__init__(
            f"loan {loan}: its stored event at version {version} cannot be read ({why}): run `ledger verify`, "
            "and restore the loan's events from a backup"
        )


class BrokenInvariant(Exception):
    """A rule that protects money found broken: a bug, never bad input. Raised, not asserted, so that
    it also holds under ``python -O``."""
