"""`ledger token create|list|revoke`: who may call the HTTP API."""

from __future__ import annotations

import sys

import click

from cli.common import EXIT_PROBLEM, echo_json, open_ledger, store_options
from ledger.tokens import SCOPES, TokenError, create_token, list_tokens, revoke_token


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
    type=click.Choice(SCOPES),
    help="append (POST) or read (GET); repeat for both.",
)
@store_options
def token_create(name: str, scopes: tuple[str, ...], db_url: str | None, as_json: bool) -> None:
    """Create a token NAME and print it, once: it cannot be shown again."""
    app = open_ledger(db_url)
    try:
        secret = create_token(app, name, scopes)
    except TokenError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_PROBLEM)
    ordered = [s for s in SCOPES if s in scopes]
    if as_json:
        echo_json({"name": name, "token": secret, "scopes": ordered})
    else:
        click.echo(f"token {name} ({', '.join(ordered)}); store it now, it is not shown again:")
        click.echo(secret)


@token.command("list")
@store_options
def token_list(db_url: str | None, as_json: bool) -> None:
    """Names, scopes, creation and revocation times (never the tokens)."""
    rows = list_tokens(open_ledger(db_url))
    if as_json:
        echo_json(
            [
                {"name": t.name, "scopes": list(t.scopes), "created_at": t.created_at, "revoked_at": t.revoked_at}
                for t in rows
            ]
        )
        return
    for t in rows:
        revoked = f"  revoked {t.revoked_at}" if t.revoked_at else ""
        click.echo(f"{t.name}  {','.join(t.scopes)}  created {t.created_at}{revoked}")


@token.command("revoke")
@click.argument("name")
@store_options
def token_revoke(name: str, db_url: str | None, as_json: bool) -> None:
    """Revoke NAME: refused from the next request on."""
    try:
        t = revoke_token(open_ledger(db_url), name)
    except TokenError as e:
        click.echo(f"Error: {e}", err=True)
        sys.exit(EXIT_PROBLEM)
    if as_json:
        echo_json({"name": t.name, "revoked_at": t.revoked_at})
    else:
        click.echo(f"token {t.name} revoked at {t.revoked_at}")
