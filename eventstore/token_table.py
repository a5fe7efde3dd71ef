"""The API tokens' table, created and upgraded with the store (ledger/tokens.py holds what a token means:
scopes, parties, expiry; only digests of tokens are stored)."""

from __future__ import annotations

from typing import Any

from psycopg.sql import SQL, Composed, Identifier

SQLITE_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS ledger_tokens ("
    " name TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,"
    " created_at TEXT NOT NULL, revoked_at TEXT, party TEXT, expires_on TEXT)"
)
# Columns added since the table was first made: an older store gains them in place (NULL: no party,
# no expiry, which is what its tokens were), when `ledger init` or any owner's command opens it.
ADDED_COLUMNS = ("party", "expires_on")


def postgres_create_table(schema: str) -> list[Composed]:
    return [
        SQL(
            "CREATE TABLE IF NOT EXISTS {}.ledger_tokens ("
            " name text PRIMARY KEY, token_sha256 text NOT NULL UNIQUE, scopes text NOT NULL,"
            " created_at text NOT NULL, revoked_at text, party text, expires_on text)"
        ).format(Identifier(schema)),
        *(
            SQL("ALTER TABLE {}.ledger_tokens ADD COLUMN IF NOT EXISTS {} text").format(
                Identifier(schema), Identifier(column)
            )
            for column in ADDED_COLUMNS
        ),
    ]


def upgrade_sqlite(c: Any) -> None:
    """Add the columns an older ledger_tokens lacks (SQLite has no ADD COLUMN IF NOT EXISTS)."""
    c.execute("SELECT name FROM pragma_table_info('ledger_tokens')")
    present = {row[0] for row in c.fetchall()}
    for column in ADDED_COLUMNS:
        if column not in present:
            c.execute(f"ALTER TABLE ledger_tokens ADD COLUMN {column} TEXT")
