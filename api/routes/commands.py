"""``POST /v1/commands`` and ``POST /v1/commands/batch``: appends, through the process's write lane."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from api import schemas
from api.auth import Appender, appender
from api.body import body_text, decode_batch, parse_json_text, read_body, rejected, single_command
from api.errors import error, json_response, outcome_error, rejection_status
from api.parties import as_seen_by, check_writes
from api.services import services
from domain.errors import InvalidCommand
from ledger.app import APPENDED, DUPLICATE, INVALID_COMMAND, REJECTED, Outcome
from ledger.commands import MAX_LINE_BYTES, _Command

router = APIRouter(tags=["commands"])  # Appender checks the query string first, as strict_query does elsewhere
SINGLE = "/v1/commands"
ANNOUNCED = "ledger.lane_announced"  # a single's place among the requests on their way to the write lane


@router.post(
    SINGLE,
    summary="Append one command",
    status_code=201,
    responses={
        201: {"model": schemas.Accepted, "description": "appended"},
        200: {"model": schemas.Accepted, "description": "duplicate: this key with this content was stored before"},
        403: {"model": schemas.Rejected, "description": "the token may not send this command (scope, party)"},
        404: {"model": schemas.Rejected, "description": "a party's token: no such loan of its own"},
        409: {
            "model": schemas.Rejected,
            "description": "the idempotency key was used with other content; the loan's stored events are damaged; "
            "a channel's loan id is taken",
        },
        422: {"model": schemas.Rejected, "description": "an invalid command or a broken rule"},
        503: {"model": schemas.Rejected, "description": "the loan kept changing under concurrent writers: retry"},
        **schemas.errors(400, 401, 413),
    },
    openapi_extra={"requestBody": schemas.body("Command")},
)
async def post_command(request: Request, caller: Appender) -> Response:
    svc = services(request)
    body = await read_body(request)
    if len(body) > MAX_LINE_BYTES:
        message = f"command is longer than {MAX_LINE_BYTES} bytes"
        return json_response(422, {"status": REJECTED, "loan_id": None, "error": error(INVALID_COMMAND, message)})
    text = body_text(body)
    data = parse_json_text(text)
    try:
        cmd = single_command(data, text, svc.settings.max_amount)
    except InvalidCommand as e:
        return _answer(rejected(data, e), status=422)
    [item] = await check_writes(svc, caller, [cmd])
    if isinstance(item, Outcome):
        return _answer(item)
    [outcome] = await svc.lane.append([cmd], request.scope.get(ANNOUNCED))
    return _answer(as_seen_by(caller, cmd, outcome))


class DirectSingle:
    """``POST /v1/commands`` from the request log straight to ``post_command``: FastAPI's routing (every
    router's routes matched in turn), its exception and exit-stack middleware and its dependency solving
    cost more than the endpoint's own work (issue 29: the API's aim is set on this one route).

    What the route answers stays FastAPI's to say: the same dependency (``appender``: query string,
    token, scope, in that order), the same endpoint, and an exception answered by the handler the
    application installed for it (api/errors.py), found as Starlette finds it; one without a handler
    goes on to the request log's 500, as before. Any other method or path, and a server mounted under
    a root path, go through FastAPI as ever. tests/test_api.py holds both ways to the same answers.
    """

    def __init__(self, app: ASGIApp):
        self.app = app
        self._route: APIRoute | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != SINGLE or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        if self._route is None:
            self._route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == SINGLE)
        scope["route"], scope["endpoint"], scope["path_params"] = self._route, post_command, {}
        request = Request(scope, receive, send)
        scope[ANNOUNCED] = announced = services(request).lane.announce()
        try:
            response = await post_command(request, await appender(request))
        except Exception as e:
            handler = _handler_for(scope["app"].exception_handlers, e)
            if handler is None:
                raise
            response = handler(request, e)
            if inspect.isawaitable(response):
                response = await response
        finally:
            announced.withdraw()
        await response(scope, receive, send)


def _handler_for(handlers: dict[Any, Callable[..., Any]], e: Exception) -> Callable[..., Any] | None:
    """The application's handler for ``e`` as Starlette's ExceptionMiddleware looks it up: by status for an
    HTTPException, then by the class's MRO; a handler for ``Exception`` itself is Starlette's outermost
    middleware's, past the request log."""
    if isinstance(e, StarletteHTTPException) and e.status_code in handlers:
        return handlers[e.status_code]
    for cls in type(e).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _answer(outcome: Outcome, status: int | None = None) -> Response:
    if outcome.status == APPENDED:
        return json_response(201, {"status": APPENDED, "loan_id": outcome.loan_id})
    if outcome.status == DUPLICATE:
        return json_response(200, {"status": DUPLICATE, "loan_id": outcome.loan_id})
    status = status or rejection_status(outcome)
    headers = {"Retry-After": "1"} if status == 503 else None
    return json_response(
        status, {"status": REJECTED, "loan_id": outcome.loan_id, "error": outcome_error(outcome)}, headers
    )


@router.post(
    "/v1/commands/batch",
    summary="Append up to 10,000 commands; each is answered at its index",
    responses={
        200: {"model": schemas.BatchResult},
        422: {"model": schemas.Error, "description": 'the body is not {"commands": [...]}'},
        **schemas.errors(400, 401, 403, 413),
    },
    openapi_extra={"requestBody": schemas.body("Batch")},
)
async def post_batch(request: Request, caller: Appender) -> Response:
    svc = services(request)
    body = await read_body(request)
    decoded = await svc.blocking(decode_batch, body, svc.settings.max_amount)  # off the event loop
    checked = await check_writes(svc, caller, decoded)
    commands = [c for c in checked if isinstance(c, _Command)]
    appended = iter(await svc.lane.append(commands))
    results: list[dict[str, Any]] = []
    totals = dict.fromkeys((APPENDED, DUPLICATE, REJECTED), 0)
    for index, item in enumerate(checked):
        outcome = as_seen_by(caller, item, next(appended)) if isinstance(item, _Command) else item
        totals[outcome.status] += 1
        row: dict[str, Any] = {"index": index, "status": outcome.status, "loan_id": outcome.loan_id}
        if outcome.status == REJECTED:
            row["error"] = outcome_error(outcome)
        results.append(row)
    return json_response(200, {"results": results, **totals})
