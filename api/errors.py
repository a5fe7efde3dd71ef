"""Every error the API answers, in one shape: ``{"error": {"code", "message", "field"}}``.

``code`` is what a client acts on (a stable word), ``message`` what a person reads, ``field`` the
request's field or parameter at fault (null when no one is). A rejected command (alone or in a
batch) carries the same object. The HTTP status of a rejection follows from its code alone.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import DamagedStream
from eventstore.retry import StoreUnavailable
from ledger.app import (
    CONTENTION,
    DAMAGED_STREAM,
    IDEMPOTENCY_CONFLICT,
    ILLEGAL_TRANSITION,
    INVALID_COMMAND,
    RULE_VIOLATION,
    Outcome,
)
from projections.jsonable import to_jsonable
from projections.runner import ProjectionFailed

log = logging.getLogger("ledger.api")

# Refusals of the API itself, beside the ledger's reason codes (ledger.app.REASON_CODES)
MISSING_TOKEN, INVALID_TOKEN, TOKEN_EXPIRED = "missing_token", "invalid_token", "token_expired"
MISSING_SCOPE = "missing_scope"  # the token may not do this (scope, or the party's role)
NOT_YOUR_PARTY = "not_your_party"  # the command names another party than the token's own
LOAN_NOT_FOUND, NOT_FOUND, METHOD_NOT_ALLOWED = "loan_not_found", "not_found", "method_not_allowed"
LOAN_ID_TAKEN = "loan_id_taken"
INVALID_JSON, INVALID_BODY, BODY_TOO_LARGE, BATCH_TOO_LARGE = (
    "invalid_json",
    "invalid_body",
    "body_too_large",
    "batch_too_large",
)
INVALID_PARAMETER, UNKNOWN_PARAMETER = "invalid_parameter", "unknown_parameter"
STORE_UNAVAILABLE, PROJECTION_STOPPED, INTERNAL = "store_unavailable", "projection_stopped", "internal"

# The status of a rejected command, by its code
STATUS_OF = {
    INVALID_COMMAND: 422,
    ILLEGAL_TRANSITION: 422,
    RULE_VIOLATION: 422,
    IDEMPOTENCY_CONFLICT: 409,
    DAMAGED_STREAM: 409,
    LOAN_ID_TAKEN: 409,
    CONTENTION: 503,
    MISSING_SCOPE: 403,
    NOT_YOUR_PARTY: 403,
    LOAN_NOT_FOUND: 404,
}


def error(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "field": field}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.status, self.headers = status, headers
        self.body = {**extra, "error": error(code, message, field)}


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(to_jsonable(body), ensure_ascii=False, separators=(",", ":"))
    return Response(payload, status_code=status, media_type="application/json", headers=headers)


def outcome_error(outcome: Outcome) -> dict[str, Any]:
    return error(outcome.code or RULE_VIOLATION, outcome.error or "rejected", outcome.field)


def rejection_status(outcome: Outcome) -> int:
    return STATUS_OF.get(outcome.code or RULE_VIOLATION, 422)


def install(app: FastAPI) -> None:
    """The handlers that turn every exception a route may raise into the one error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> Response:
        return json_response(e.status, e.body, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> Response:
        code = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(e.status_code, f"http_{e.status_code}")
        return json_response(e.status_code, {"error": error(code, str(e.detail))}, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> Response:
        problems = list(e.errors())
        first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
        field = str(first["loc"][-1]) if first["loc"] else None
        parts = [f"{err['loc'][-1] if err['loc'] else 'request'}: {err['msg']}" for err in problems]
        return json_response(422, {"error": error(INVALID_PARAMETER, "; ".join(parts), field)})

    @app.exception_handler(DamagedStream)
    async def _damaged(request: Request, e: DamagedStream) -> Response:
        log.warning(json.dumps({"event": "damaged_stream", "loan_id": e.loan, "path": request.url.path}))
        return json_response(409, {"error": error(DAMAGED_STREAM, str(e))})

    @app.exception_handler(ProjectionFailed)
    async def _projection(request: Request, e: ProjectionFailed) -> Response:
        if isinstance(e.__cause__, DamagedStream):
            return await _damaged(request, e.__cause__)
        return json_response(503, {"error": error(PROJECTION_STOPPED, str(e))}, {"Retry-After": "5"})

    @app.exception_handler(StoreUnavailable)
    async def _unavailable(request: Request, e: StoreUnavailable) -> Response:
        return json_response(503, {"error": error(STORE_UNAVAILABLE, str(e))}, {"Retry-After": "5"})
