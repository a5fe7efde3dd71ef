"""`ledger token create|list|revoke`: who may call the HTTP API."""

from __future__ import annotations

import sys

import click

from cli.common import EXIT_PROBLEM, echo_json, open_ledger, parse_day, store_options
from ledger.tokens import ROLE_WRITES, SCOPES, TYPED_SCOPES, Token, TokenError, create_token, list_tokens
from ledger.tokens import revoke_token as revoke

_ROLES = "; ".join(f"{kind}: {', '.join(types)}" for kind, types in ROLE_WRITES.items())


@click.group()
def token() -> None:
    """Bearer tokens for the HTTP API (only a hash of each is stored)."""


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice((*SCOPES, *TYPED_SCOPES)),
    metavar="append|read|append:TYPE",
    help="append (POST), read (GET), or append:TYPE (only that command type); repeat for more.",
)
@click.option(
    "--party",
    metavar="bank:B|channel:C|agency:A",
    help=f"Only this party's loans, and only what its role writes ({_ROLES}).",
)
@click.option("--expires", metavar="DATE", help="Refused from this date on (00:00 Asia/Shanghai).")
@store_options
def token_create(
    name: str, scopes: tuple[str, ...], party: str | None, expires: str | None, db_url: str | None, as_json: bool
) -> None:
    """Create a token NAME and print it, once: it cannot be shown again."""
    expires_on = parse_day(expires, "--expires")
    app = open_ledger(db_url)
    try:
        secret = create_token(app, name, scopes, party=party, expires_on=expires_on)
    except TokenError as e:
        if "already exists" in str(e):
            click.echo(f"Error: {e}", err=True)
            sys.exit(EXIT_PROBLEM)
        raise click.UsageError(str(e)) from None
    [made] = [t for t in list_tokens(app) if t.name == name]
    if as_json:
        echo_json({"token": secret, **_row(made)})
    else:
        click.echo(f"token {name} ({_describe(made)}); store it now, it is not shown again:")
        click.echo(secret)


def _row(t: Token) -> dict[str, object]:
    return {
        "name": t.name,
        "scopes": list(t.scopes),
        "party": None if t.party is None else str(t.party),
        "expires": t.expires_on,
        "created_at": t.created_at,
        "revoked_at": t.revoked_at,
    }


def _describe(t: Token) -> str:
    party = f", party {t.party}" if t.party else ""
    expires = f", expires {t.expires_on}" if t.expires_on else ""
    return ", ".join(t.scopes) + party + expires


@token.command("list")
@store_options
def token_list(db_url: str | None, as_json: bool) -> None:
    """Names, scopes, parties, expiry, creation and revocation times (never the tokens)."""
    rows = list_tokens(open_ledger(db_url))
    if as_json:
        echo_json([_row(t) for t in rows])
        return
    for t in rows:
        party = f"  party {t.party}" if t.party else ""
        expired = " (expired)" if t.expired() else ""
        expires = f"  expires {t.expires_on}{expired}" if t.expires_on else ""
        revoked = f"  revoked {t.revoked_at}" if t.revoked_at else ""
        click.echo(f"{t.name}  {','.join(t.scopes)}{party}{expires}  created {t.created_at}{revoked}")


@token.command("revoke")
@click.argument("name")
@store_options
def token_revoke(name: str, db_url: str | None, as_json: bool) -> None:
    """Revoke NAME: refused from the next request on."""
    try:
        t = revoke(open_ledger(db_url), name)
    except TokenError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_PROBLEM)
    if as_json:
        echo_json({"name": t.name, "revoked_at": t.revoked_at})
    else:
        click.echo(f"token {t.name} revoked at {t.revoked_at}")
