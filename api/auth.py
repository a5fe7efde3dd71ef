"""Who is calling: the bearer token, checked on every request but ``/healthz`` and ``/openapi.json``.

401 without a valid, unrevoked, unexpired token; 403 when it lacks the scope the route needs
(``read`` for GET; ``append`` or ``append:TYPE`` for POST, each command then checked on its type).
The token's name goes into the request's log line; the token itself never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.errors import INVALID_TOKEN, MISSING_SCOPE, MISSING_TOKEN, TOKEN_EXPIRED, ApiError
from api.params import strict_query
from api.services import Coalesced, Services, services
from ledger.tokens import Token, authenticate_digest, token_digest
from projections.parties import LoanScope, scope_of

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Caller:
    token: Token

    def scopes(self) -> list[LoanScope]:
        """The loans this caller sees, as conditions every read applies (none: the platform sees all)."""
        party = self.token.party
        return [] if party is None else [scope_of(party.kind, party.name)]


async def bearer(request: Request) -> Token:
    kind, _, secret = request.headers.get("authorization", "").partition(" ")
    secret = secret.strip()
    if kind.lower() != "bearer" or not secret:
        raise ApiError(401, MISSING_TOKEN, "missing bearer token (Authorization: Bearer TOKEN)", headers=_CHALLENGE)
    svc = services(request)
    token = await _token_checks(svc).get(token_digest(secret))
    if token is None:
        raise ApiError(401, INVALID_TOKEN, "invalid or revoked token", headers=_CHALLENGE)
    log_info = request.scope.get("ledger.log")
    if log_info is not None:
        log_info["token"] = token.name
    if token.expired():
        raise ApiError(401, TOKEN_EXPIRED, f"token {token.name!r} expired on {token.expires_on}", headers=_CHALLENGE)
    return token


def _token_checks(svc: Services) -> Coalesced[str, Token]:
    """The server process's token checks: concurrent requests' tokens, by hash, looked up together in one
    worker-thread call (api/services.py ``Coalesced``): one thread hop and one store round trip per distinct
    token for a burst of requests, each answer read after its request arrived (no cache)."""
    checks: Coalesced[str, Token] | None = svc.token_checks
    if checks is None:

        async def lookup(digests: list[str]) -> dict[str, Token]:
            return await svc.blocking(_authenticate_all, svc, digests)

        checks = Coalesced(lookup)
        svc.token_checks = checks
    return checks


def _authenticate_all(svc: Services, digests: list[str]) -> dict[str, Token]:
    """Blocking: each token hash's unrevoked token (expired or not), leaving out the unknown ones."""
    found = {}
    for digest in digests:
        token = authenticate_digest(svc.ledger, digest)
        if token is not None:
            found[digest] = token
    return found


async def reader(token: Annotated[Token, Depends(bearer)]) -> Caller:
    if not token.can_read():
        raise ApiError(403, MISSING_SCOPE, f"token {token.name!r} lacks the 'read' scope")
    return Caller(token)


async def appender(request: Request) -> Caller:
    """The query string checked (``strict_query``), then the bearer token, then its append scope, in the
    order the other routes' dependencies run them, as ONE dependency: FastAPI's solving of a dependency
    costs more than these checks, and the append routes carry a single request's whole load (issue 29)."""
    await strict_query(request)
    token = await bearer(request)
    if not token.can_append():
        raise ApiError(403, MISSING_SCOPE, f"token {token.name!r} lacks the 'append' scope")
    return Caller(token)


Reader = Annotated[Caller, Depends(reader)]  # a route's caller, with the read scope
# a route's caller, with an append scope, its query string checked: the route's router adds no strict_query
Appender = Annotated[Caller, Depends(appender)]
