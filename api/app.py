"""The HTTP API of CONTRACT.md ("HTTP API"): the CLI's application code, over HTTP.

Bodies are read here, capped at 10 MiB while they stream in, decoded with the
ledger's own ``decode_json`` (no JSON number ever becomes a float) and
validated by the same ``command_from_dict`` as ``ledger append``: there is one
validation path, and appends go through ``Ledger.append`` (idempotency, rules,
conflict retries) via the process's write lane. Reads reuse ``loan show``'s
view and the balances projection.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TextIO, TypeVar

import anyio
from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send

from api import schemas
from domain.errors import InvalidCommand
from domain.money import fmt
from ledger.app import APPENDED, DUPLICATE, REJECTED, Ledger, Outcome
from ledger.commands import MAX_LINE_BYTES, _Command, command_from_dict, decode_json
from ledger.config import Settings, settings_from_env
from ledger.store import LedgerPostgresRecorder, LedgerSQLiteRecorder
from ledger.tokens import Token, authenticate
from projections import runner
from projections.balances import GROUPINGS, portfolio, trial_balance
from projections.jsonable import to_jsonable
from projections.loan_view import loan_view, today_in_shanghai

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_BATCH = 10_000
READ_THREADS = 8  # blocking store calls at once for reads and token checks: under the connection pool's size

log = logging.getLogger("ledger.api")
_random = random.Random()

_T = TypeVar("_T")


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    payload = json.dumps(to_jsonable(body), ensure_ascii=False, separators=(",", ":"))
    return Response(payload, status_code=status, media_type="application/json", headers=headers)


def create_app(settings: Settings) -> FastAPI:
    from api.writer import WriteLane

    _setup_logging()
    ledger = Ledger(settings)
    lane = WriteLane(ledger)
    sqlite = settings.db_url.startswith("sqlite")
    catch_up_lock = lane.lock if sqlite else threading.Lock()  # one projection runner per process
    limiter = anyio.CapacityLimiter(READ_THREADS)

    async def blocking(fn: Callable[..., _T], *args: Any) -> _T:
        return await to_thread.run_sync(fn, *args, limiter=limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await lane.close()  # in-flight appends are answered before the store closes
        ledger.close()

    app = FastAPI(
        title="loan-ledger",
        version="1",
        description="Append commands to the ledger and read loans and balances. See docs/api.md.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ledger = ledger
    app.state.lane = lane
    app.add_middleware(RequestLog)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError) -> Response:
        return json_response(e.status, e.body, e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> Response:
        return json_response(e.status_code, {"error": str(e.detail)}, getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, e: RequestValidationError) -> Response:
        parts = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
        return json_response(422, {"error": "; ".join(parts)})

    def scope(name: str) -> Callable[[Request], Awaitable[Token]]:
        async def check(request: Request) -> Token:
            kind, _, secret = request.headers.get("authorization", "").partition(" ")
            secret = secret.strip()
            if kind.lower() != "bearer" or not secret:
                raise ApiError(401, {"error": "missing bearer token"}, {"WWW-Authenticate": "Bearer"})
            token = await blocking(authenticate, ledger, secret)
            if token is None:
                raise ApiError(401, {"error": "invalid or revoked token"}, {"WWW-Authenticate": "Bearer"})
            request.scope["ledger.log"]["token"] = token.name
            if name not in token.scopes:
                raise ApiError(403, {"error": f"token {token.name!r} lacks the {name!r} scope"})
            return token

        return check

    can_append, can_read = Depends(scope("append")), Depends(scope("read"))

    @app.post(
        "/v1/commands",
        summary="Append one command",
        status_code=201,
        dependencies=[can_append],
        responses={
            201: {"model": schemas.Accepted, "description": "appended"},
            200: {"model": schemas.Accepted, "description": "duplicate: this key with this content was stored before"},
            409: {"model": schemas.Rejected, "description": "the idempotency key was used with other content"},
            422: {"model": schemas.Rejected, "description": "invalid command or a broken rule"},
            **schemas.ERRORS,
        },
        openapi_extra={"requestBody": schemas.body("Command")},
    )
    async def post_command(request: Request) -> Response:
        body = await read_body(request)
        if len(body) > MAX_LINE_BYTES:
            return json_response(422, {"status": REJECTED, "error": f"command is longer than {MAX_LINE_BYTES} bytes"})
        data = parse_json(body)
        try:
            cmd = command_from_dict(data, max_amount=settings.max_amount)
        except InvalidCommand as e:
            return json_response(422, {"status": REJECTED, "loan_id": _loan_id_of(data), "error": str(e)})
        [outcome] = await lane.append([cmd])
        if outcome.status == APPENDED:
            return json_response(201, {"status": APPENDED, "loan_id": outcome.loan_id})
        if outcome.status == DUPLICATE:
            return json_response(200, {"status": DUPLICATE, "loan_id": outcome.loan_id})
        conflict = await blocking(_key_taken_by_other_content, ledger, cmd)
        return json_response(
            409 if conflict else 422, {"status": REJECTED, "loan_id": outcome.loan_id, "error": outcome.error}
        )

    @app.post(
        "/v1/commands/batch",
        summary="Append up to 10,000 commands; each is answered at its index",
        dependencies=[can_append],
        responses={200: {"model": schemas.BatchResult}, **schemas.ERRORS},
        openapi_extra={"requestBody": schemas.body("Batch")},
    )
    async def post_batch(request: Request) -> Response:
        data = parse_json(await read_body(request))
        if not isinstance(data, dict) or set(data) != {"commands"} or not isinstance(data["commands"], list):
            raise ApiError(422, {"error": 'the body must be {"commands": [...]} and nothing else'})
        items = data["commands"]
        if len(items) > MAX_BATCH:
            raise ApiError(413, {"error": f"{len(items)} commands; a batch holds at most {MAX_BATCH}"})
        checked = await blocking(_validate_all, items, settings.max_amount)
        appended = iter(await lane.append([c for c in checked if isinstance(c, _Command)]))
        results, totals = [], dict.fromkeys((APPENDED, DUPLICATE, REJECTED), 0)
        for index, item in enumerate(checked):
            outcome = next(appended) if isinstance(item, _Command) else item
            totals[outcome.status] += 1
            row: dict[str, Any] = {"index": index, "status": outcome.status, "loan_id": outcome.loan_id}
            if outcome.error:
                row["error"] = outcome.error
            results.append(row)
        return json_response(200, {"results": results, **totals})

    @app.get(
        "/v1/loans/{loan_id}",
        summary="One loan as of a value date, as known at a time (the `ledger loan show --json` shape)",
        dependencies=[can_read],
        responses={200: {"model": schemas.LoanView}, 404: {"model": schemas.Error}, **schemas.ERRORS},
    )
    async def get_loan(loan_id: str, as_of: str | None = None, known_at: str | None = None) -> Response:
        day = _day(as_of, "as_of") or today_in_shanghai()
        moment = _moment(known_at, "known_at")

        def read() -> dict[str, Any] | None:
            events = ledger.loan_events(loan_id, moment)
            loan = ledger.get_loan(loan_id, moment) if events else None
            return None if loan is None else loan_view(loan, events, day, moment)

        view = await blocking(read)
        if view is None:
            known = f" known at {moment.isoformat()}" if moment else ""
            raise ApiError(404, {"error": f"no loan {loan_id}{known}"})
        return json_response(200, view)

    @app.get(
        "/v1/balances",
        summary="Portfolio balances and the trial balance (the `ledger balances --json` shape)",
        dependencies=[can_read],
        responses={200: {"model": schemas.Balances}, **schemas.ERRORS},
    )
    async def get_balances(as_of: str | None = None, by: str = "bank", known_at: str | None = None) -> Response:
        day = _day(as_of, "as_of") or today_in_shanghai()
        moment = _moment(known_at, "known_at")
        if by not in GROUPINGS:
            raise ApiError(422, {"error": f"by: {by!r} is not one of {', '.join(GROUPINGS)}"})

        def read() -> dict[str, Any]:
            with catch_up_lock:
                runner.catch_up(ledger)  # answer from everything appended so far, as the CLI does
            db = runner.views(ledger)
            groups = portfolio(db, day, by, moment)
            out: dict[str, Any] = {
                "as_of": day,
                "by": by,
                "groups": [
                    {"key": g.key, "loans": g.loans, **{k: fmt(v) for k, v in g.amounts.items()}} for g in groups
                ],
                "trial_balance": fmt(trial_balance(db, day, moment)),
            }
            if moment:
                out["known_at"] = moment
            return out

        return json_response(200, await blocking(read))

    @app.get(
        "/v1/projections",
        summary="Position, head and lag of each projection",
        dependencies=[can_read],
        responses={200: {"model": list[schemas.ProjectionStatus]}, **schemas.ERRORS},
    )
    async def get_projections() -> Response:
        rows = await blocking(runner.status, ledger)
        return json_response(
            200, [{"name": s.name, "position": s.position, "head": s.head, "lag": s.lag} for s in rows]
        )

    @app.get(
        "/v1/reports/models",
        summary="Risk-model monitoring per version, overall and per period (the `ledger report models --json` shape)",
        dependencies=[can_read],
        responses={200: {"model": schemas.ModelReport}, **schemas.ERRORS},
    )
    async def get_model_report(as_of: str, known_at: str | None = None, period: str = "month") -> Response:
        from projections.dataset import rows
        from projections.model_report import PERIODS, model_report

        day = _day(as_of, "as_of")
        if day is None:  # never: as_of is required, and FastAPI answers 422 without it
            raise ApiError(422, {"error": "as_of: required (YYYY-MM-DD)"})
        moment = _moment(known_at, "known_at") or datetime.now(UTC)
        if period not in PERIODS:
            raise ApiError(422, {"error": f"period: {period!r} is not one of {', '.join(PERIODS)}"})
        return json_response(200, await blocking(lambda: model_report(rows(ledger, day, moment), day, moment, period)))

    @app.get("/healthz", summary="200 when the store answers, else 503", responses={503: {"model": schemas.Health}})
    async def healthz() -> Response:
        try:
            with anyio.fail_after(5):
                await blocking(ledger.recorder.max_notification_id)
        except Exception:
            log.warning(json.dumps({"event": "health_check_failed", "traceback": traceback.format_exc()}))
            return json_response(503, {"status": "unavailable"})
        return json_response(200, {"status": "ok"})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc.setdefault("components", {}).setdefault("schemas", {}).update(schemas.command_schemas())
            doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            doc["security"] = [{"bearer": []}]
            doc["paths"]["/healthz"]["get"]["security"] = []
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """The factory `ledger serve` hands to uvicorn (each worker process builds its own)."""
    return create_app(settings_from_env())


# ---- request bodies ---------------------------------------------------------------
async def read_body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it passes the cap (before anything is parsed)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, {"error": f"body is over {MAX_BODY_BYTES} bytes (10 MiB)"})
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, {"error": f"body is over {MAX_BODY_BYTES} bytes (10 MiB)"})
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ApiError(400, {"error": f"body is not UTF-8 (byte {e.start})"}) from None
    try:
        return decode_json(text)
    except RecursionError:
        raise ApiError(400, {"error": "body is not valid JSON: nested too deeply"}) from None
    except ValueError as e:
        raise ApiError(400, {"error": f"body is not valid JSON: {e}"}) from None


def _validate_all(items: list[Any], max_amount: Decimal) -> list[_Command | Outcome]:
    checked: list[_Command | Outcome] = []
    for item in items:
        try:
            checked.append(command_from_dict(item, max_amount=max_amount))
        except InvalidCommand as e:
            checked.append(Outcome(REJECTED, _loan_id_of(item), str(e)))
    return checked


def _loan_id_of(data: Any) -> str | None:
    value = data.get("loan_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _key_taken_by_other_content(ledger: Ledger, cmd: _Command) -> bool:
    """Was this rejection a key reused with other content (409) rather than a broken rule (422)?"""
    recorder = ledger.recorder
    # config.store_env installs one of these; the base type Application declares lacks find_keys
    assert isinstance(recorder, (LedgerSQLiteRecorder, LedgerPostgresRecorder))
    record = recorder.find_keys([cmd.idempotency_key]).get(cmd.idempotency_key)
    return record is not None and (record.content_hash != cmd.content_hash or record.loan_id != cmd.loan_id)


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else _bad_day(value, name)
    except ValueError:
        return _bad_day(value, name)


def _bad_day(value: str, name: str) -> date:
    raise ApiError(422, {"error": f"{name}: {value!r} is not a date (YYYY-MM-DD)"})


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    # an unencoded '+' in a query string arrives as a space: read "...T10:00:00 08:00" as meant
    text = value[:19] + value[19:].replace(" ", "+")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.utcoffset() is None:
        raise ApiError(422, {"error": f"{name}: {value!r} is not an ISO 8601 timestamp with offset"})
    return moment


# ---- logging -----------------------------------------------------------------------
class _Stderr(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _setup_logging() -> None:
    if not log.handlers:
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


class RequestLog:
    """One JSON line per request (never a token, a body or personal data), and the last word on errors:
    an exception nothing else handled is answered 500 with the request id and logged with its traceback."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{_random.getrandbits(64):016x}"  # an id to find a line by, not a secret: no urandom per request
        info: dict[str, Any] = {"request_id": request_id, "token": None}
        scope["ledger.log"] = info
        status, started, t0 = 500, False, time.perf_counter()

        async def send_logged(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started, status = True, message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        except Exception:
            log.error(json.dumps({"request_id": request_id, "event": "error", "traceback": traceback.format_exc()}))
            if not started:
                body = json.dumps({"error": "internal error", "request_id": request_id}).encode()
                await send_logged(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "token": info["token"],
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - t0) * 1000, 2),
                    }
                )
            )
