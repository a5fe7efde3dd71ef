"""API tokens: who may call the HTTP API, with which scopes, for which party, until when.

Only the SHA-256 of a token is stored (table ``ledger_tokens``, beside the
store's own tables): a leaked database does not leak a working token, and the
token itself is shown once, when it is created. A token is found by its hash,
then the hashes are compared again in constant time, so the answer's timing
says nothing about how much of a guess was right. Revocation is a row update,
read on every request: it takes effect on the next one.

Scopes: ``read`` (GET), ``append`` (POST, every command type the token's role
writes) or ``append:TYPE`` (only that command type). A party (``bank:B``,
``channel:C``, ``agency:A``) narrows the token to that party's loans and to the
commands its role sends (``ROLE_WRITES``); a token without one is the
platform's own. ``expires_on``: the token is refused from that date on
(00:00 in Asia/Shanghai, where the business's calendar runs).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from domain.loan import SHANGHAI
from eventstore.retry import retrying
from eventstore.sql import StoreSql
from ledger.commands import COMMAND_TYPES

SCOPES = ("append", "read")
TYPED_SCOPES = tuple(f"append:{kind}" for kind in COMMAND_TYPES)
PARTY_KINDS = ("bank", "channel", "agency")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PARTY_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # the form of a bank's id in `funded`; channels and agencies alike

# What each role sends the ledger, and the command's field that must name the party itself (None: the
# loan must be the party's own, as its reads see it). A platform token (no party) may send any type.
# Waivers are the platform's: a settlement discount forgives the lender's money, so the lender's own
# collections team grants it, not the outside agency that negotiated it (docs/decisions.md).
ROLE_WRITES: dict[str, dict[str, str | None]] = {
    "bank": {"funded": "bank", "repaid": None, "reversed": None, "refunded": None},
    "channel": {"applied": "channel"},
    "agency": {"collected": "agency"},
}
# Of those, the ones that must also be about a loan the party already owns (a bank's repayment
# of its own loan); `funded` names the bank and so makes the loan its own.
OWN_LOAN_ONLY: dict[str, frozenset[str]] = {
    "bank": frozenset({"repaid", "reversed", "refunded"}),
    "channel": frozenset(),
    "agency": frozenset({"collected"}),
}


class TokenError(Exception):
    """A token operation that cannot be done as asked (name taken, unknown, bad scope)."""


@dataclass(frozen=True)
class Party:
    kind: str  # bank | channel | agency
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Token:
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None
    party: Party | None = None
    expires_on: date | None = None

    def can_read(self) -> bool:
        return "read" in self.scopes

    def can_append(self, kind: str | None = None) -> bool:
        """Any append at all (``kind`` None), or this command type: by scope, then by the party's role."""
        if kind is None:
            return any(s == "append" or s.startswith("append:") for s in self.scopes)
        if "append" not in self.scopes and f"append:{kind}" not in self.scopes:
            return False
        return self.party is None or kind in ROLE_WRITES[self.party.kind]

    def expired(self, today: date | None = None) -> bool:
        return self.expires_on is not None and (today or datetime.now(SHANGHAI).date()) >= self.expires_on


def parse_party(text: str) -> Party:
    kind, sep, name = text.partition(":")
    if not sep or kind not in PARTY_KINDS or not PARTY_NAME.fullmatch(name):
        raise TokenError(
            f"party {text!r} must be bank:NAME, channel:NAME or agency:NAME (NAME 1-64 letters, digits, '_' or '-')"
        )
    return Party(kind, name)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _db(app: Any) -> StoreSql:
    return StoreSql(app.recorder.datastore)


def _checked_scopes(scopes: tuple[str, ...] | list[str], party: Party | None) -> tuple[str, ...]:
    allowed = (*SCOPES, *TYPED_SCOPES)
    unknown = sorted(set(scopes) - set(allowed))
    if unknown or not scopes:
        raise TokenError(
            f"scopes must be append, read or append:TYPE with TYPE one of {', '.join(COMMAND_TYPES)} "
            f"(got {', '.join(scopes) or 'none'})"
        )
    if party is not None:
        role = ROLE_WRITES[party.kind]
        outside = sorted(s for s in set(scopes) if s.startswith("append:") and s.split(":", 1)[1] not in role)
        if outside:
            raise TokenError(f"a {party.kind} token may append only {', '.join(role)}; remove {', '.join(outside)}")
    return tuple(s for s in allowed if s in scopes)  # one order, whatever the order given


def create_token(
    app: Any,
    name: str,
    scopes: tuple[str, ...] | list[str],
    *,
    party: str | None = None,
    expires_on: date | None = None,
    today: date | None = None,
) -> str:
    """A new random token for NAME; the caller shows it once, the ledger keeps only its hash."""
    if not NAME_PATTERN.fullmatch(name):
        raise TokenError(f"token name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    owner = None if party is None else parse_party(party)
    ordered = _checked_scopes(scopes, owner)
    if expires_on is not None and expires_on <= (today or datetime.now(SHANGHAI).date()):
        raise TokenError(f"--expires {expires_on} is not after today: the token would never work")
    token = secrets.token_urlsafe(32)
    db = _db(app)
    with db.transaction() as c:
        # names stay unique for good, revoked ones included: a name in the request log means one token
        if c.query("SELECT 1 FROM ledger_tokens WHERE name = ?", (name,)):
            raise TokenError(f"a token named {name!r} already exists (revoked or not); choose another name")
        c.execute(
            "INSERT INTO ledger_tokens (name, token_sha256, scopes, created_at, party, expires_on)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                name,
                _digest(token),
                ",".join(ordered),
                datetime.now(UTC).isoformat(),
                None if owner is None else str(owner),
                None if expires_on is None else expires_on.isoformat(),
            ),
        )
    return token


_COLUMNS = "name, scopes, created_at, revoked_at, party, expires_on"


def _token(row: tuple[Any, ...]) -> Token:
    name, scopes, created, revoked, party, expires = row
    return Token(
        name,
        tuple(scopes.split(",")),
        created,
        revoked,
        None if party is None else parse_party(party),
        None if expires is None else date.fromisoformat(expires),
    )


def list_tokens(app: Any) -> list[Token]:
    return [_token(row) for row in _db(app).query(f"SELECT {_COLUMNS} FROM ledger_tokens ORDER BY name")]


def revoke_token(app: Any, name: str) -> Token:
    """Revoke NAME (revoking twice keeps the first time); TokenError when there is no such token."""
    db = _db(app)
    with db.transaction() as c:
        c.execute(
            "UPDATE ledger_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (datetime.now(UTC).isoformat(), name),
        )
        rows = c.query(f"SELECT {_COLUMNS} FROM ledger_tokens WHERE name = ?", (name,))
    if not rows:
        raise TokenError(f"no token named {name!r}")
    return _token(rows[0])


def authenticate(app: Any, token: str) -> Token | None:
    """The unrevoked token this string is (expired or not: the caller says which), or None.

    A lost connection is retried like every other store call (``settings.retry_seconds``): a
    database restart delays the answer, it does not turn a valid token into an error.
    """
    return authenticate_digest(app, _digest(token))


def token_digest(token: str) -> str:
    """The hash the ledger keeps of a token (what a web session carries instead of the token)."""
    return _digest(token)


def authenticate_digest(app: Any, digest: str) -> Token | None:
    """As ``authenticate``, from the token's hash (``token_digest``): the web view's session."""
    db = _db(app)
    statement = f"SELECT token_sha256, {_COLUMNS} FROM ledger_tokens WHERE token_sha256 = ?"

    def lookup() -> list[tuple[Any, ...]]:
        if db.postgres:
            # every request asks this: one autocommit round trip, not BEGIN/SELECT/ROLLBACK
            with app.recorder.datastore.get_connection() as conn:
                return [tuple(r.values()) for r in conn.execute(db.sql(statement), (digest,)).fetchall()]
        return db.query(statement, (digest,))

    rows = retrying(app.settings.retry_seconds, "checking the token", lookup)
    if not rows:
        return None
    stored, *row = rows[0]
    found = _token(tuple(row))
    if not hmac.compare_digest(stored, digest) or found.revoked_at is not None:
        return None
    return found
