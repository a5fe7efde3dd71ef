"""API tokens: who may call the HTTP API, and with which scopes.

Only the SHA-256 of a token is stored (table ``ledger_tokens``, beside the
store's own tables): a leaked database does not leak a working token, and the
token itself is shown once, when it is created. A token is found by its hash,
then the hashes are compared again in constant time, so the answer's timing
says nothing about how much of a guess was right. Revocation is a row update,
read on every request: it takes effect on the next one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg.sql import SQL, Composed, Identifier

from ledger.sql import StoreSql

SCOPES = ("append", "read")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")

SQLITE_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS ledger_tokens ("
    " name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,"
    " created_at TEXT NOT NULL, revoked_at TEXT)"
)


def postgres_create_table(schema: str) -> Composed:
    return SQL(
        "CREATE TABLE IF NOT EXISTS {}.ledger_tokens ("
        " name text PRIMARY KEY, token_sha256 text NOT NULL UNIQUE, scopes text NOT NULL,"
        " created_at text NOT NULL, revoked_at text)"
    ).format(Identifier(schema))


class TokenError(Exception):
    """A token operation that cannot be done as asked (name taken, unknown, bad scope)."""


@dataclass(frozen=True)
class Token:
    name: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _db(app: Any) -> StoreSql:
    return StoreSql(app.recorder.datastore)


def create_token(app: Any, name: str, scopes: tuple[str, ...] | list[str]) -> str:
    """A new random token for NAME; the caller shows it once, the ledger keeps only its hash."""
    if not NAME_PATTERN.fullmatch(name):
        raise TokenError(f"token name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise TokenError(f"scopes must be among {', '.join(SCOPES)} (got {', '.join(scopes) or 'none'})")
    token = secrets.token_urlsafe(32)
    db = _db(app)
    with db.transaction() as c:
        # names stay unique for good, revoked ones included: a name in the request log means one token
        if c.query("SELECT 1 FROM ledger_tokens WHERE name = ?", (name,)):
            raise TokenError(f"a token named {name!r} already exists (revoked or not); choose another name")
        c.execute(
            "INSERT INTO ledger_tokens (name, token_sha256, scopes, created_at) VALUES (?, ?, ?, ?)",
            (name, _digest(token), ",".join(s for s in SCOPES if s in scopes), datetime.now(UTC).isoformat()),
        )
    return token


def list_tokens(app: Any) -> list[Token]:
    rows = _db(app).query("SELECT name, scopes, created_at, revoked_at FROM ledger_tokens ORDER BY name")
    return [Token(name, tuple(scopes.split(",")), created, revoked) for name, scopes, created, revoked in rows]


def revoke_token(app: Any, name: str) -> Token:
    """Revoke NAME (revoking twice keeps the first time); TokenError when there is no such token."""
    db = _db(app)
    with db.transaction() as c:
        c.execute(
            "UPDATE ledger_tokens SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (datetime.now(UTC).isoformat(), name),
        )
        rows = c.query("SELECT name, scopes, created_at, revoked_at FROM ledger_tokens WHERE name = ?", (name,))
    if not rows:
        raise TokenError(f"no token named {name!r}")
    name, scopes, created, revoked = rows[0]
    return Token(name, tuple(scopes.split(",")), created, revoked)


def authenticate(app: Any, token: str) -> Token | None:
    """The live token this string is, or None (unknown or revoked)."""
    digest = _digest(token)
    db = _db(app)
    statement = "SELECT name, token_sha256, scopes, created_at, revoked_at FROM ledger_tokens WHERE token_sha256 = ?"
    if db.postgres:
        # every request asks this: one autocommit round trip, not BEGIN/SELECT/ROLLBACK
        with app.recorder.datastore.get_connection() as conn:
            rows = [tuple(r.values()) for r in conn.execute(db.sql(statement), (digest,)).fetchall()]
    else:
        rows = db.query(statement, (digest,))
    if not rows:
        return None
    name, stored, scopes, created, revoked = rows[0]
    if not hmac.compare_digest(stored, digest) or revoked is not None:
        return None
    return Token(name, tuple(scopes.split(",")), created)
