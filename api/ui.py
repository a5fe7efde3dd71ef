"""The auditor's web view, ``/ui/``: server-rendered pages (Jinja2 templates, one stylesheet served
here; no JavaScript, no CDN) over the same reads as the API.

- **Access**: ``/ui/login`` takes a token once; the session cookie carries the token's hash (what the
  store keeps, never the token) and the time of login, signed with the server's session key
  (``LEDGER_UI_SESSION_KEY``, or a random key per process). Every page looks the token up again, so a
  revoked or expired token ends its sessions. Read scope is required; a party's token sees only its
  own loans, through the API's own scoping (``api.auth.Caller.scopes``, ``projections.parties``).
- **Read-only**: every page is a GET; the only POSTs are login and logout, refused from another
  origin, and the cookie is ``SameSite=Strict`` (``Secure`` when served over TLS).
- **No personal data**: a loan's page shows ids, amounts, dates and hashes; never a borrower's id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from api import params
from api.auth import Caller
from api.errors import ApiError
from api.services import Services, services
from domain.errors import DamagedStream
from domain.money import fmt
from eventstore.verify_runs import last_verify_run
from ledger.eod import funded_loan_ids
from ledger.tokens import Token, authenticate, authenticate_digest, token_digest
from projections import book as book_projection
from projections import runner
from projections.audit_trail import export_rows
from projections.balances import AMOUNTS, portfolio, trial_balance
from projections.dataset import rows
from projections.lists import BadCursor, decode_cursor, loan_page
from projections.loan_view import show_loan, today_in_shanghai
from projections.model_report import model_report, plot_models
from projections.parties import owned
from projections.reports import cohort_table, last_data_day, plot_vintage, roll_rate_percentages, roll_rates

HERE = Path(__file__).resolve().parent
SESSION_KEY_ENV = "LEDGER_UI_SESSION_KEY"
COOKIE = "ledger_ui"
SESSION_SECONDS = 8 * 3600  # a working day; then the token is asked for again
MAX_LOGIN_BODY = 4096  # a token is 64 characters or so; a login form is never larger
MAX_TOKEN = 512
PAGE = 50  # loans a list page shows
BOOK_GROUPINGS = ("bank", "channel", "agency", "bucket")
MAX_SEARCH = 64  # a loan id is at most 64 characters (ledger.commands)
MAX_TIMELINE = 2000  # events a loan page lists (a loan's stream is far shorter; a bound all the same)

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
static = StaticFiles(directory=str(HERE / "static"))


BOOK_CACHE_SIZE = 64  # book pages kept (each a few groups of figures): the latest asked for
BOOK_VIEW = book_projection.NAME
_BOOK_CACHE: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
_BOOK_CACHE_LOCK = threading.Lock()


class _LoginNeeded(Exception):
    """No valid session: the page answers with a redirect to the login form."""


def session_key() -> bytes:
    """The key sessions are signed with: the environment's (shared by ``ledger serve``'s workers), or
    a random one for this process (sessions then end when it stops)."""
    global _KEY
    if _KEY is None:
        given = os.environ.get(SESSION_KEY_ENV, "")
        _KEY = given.encode() if len(given) >= 32 else secrets.token_bytes(32)
    return _KEY


_KEY: bytes | None = None


def _sign(payload: str) -> str:
    return hmac.new(session_key(), payload.encode(), hashlib.sha256).hexdigest()


def session_cookie(digest: str, now: float | None = None) -> str:
    payload = f"{digest}.{int(now if now is not None else time.time())}"
    return f"{payload}.{_sign(payload)}"


def session_digest(cookie: str | None, now: float | None = None) -> str | None:
    """The token hash a session cookie carries, if the cookie is ours, intact and not past its time."""
    if not cookie or len(cookie) > 256:
        return None
    payload, _, mac = cookie.rpartition(".")
    digest, _, issued = payload.partition(".")
    if not hmac.compare_digest(mac, _sign(payload)) or not issued.isdigit():
        return None
    age = (now if now is not None else time.time()) - int(issued)
    return digest if 0 <= age <= SESSION_SECONDS else None


async def _caller(request: Request) -> Caller:
    digest = session_digest(request.cookies.get(COOKIE))
    if digest is None:
        raise _LoginNeeded
    svc = services(request)
    token = await svc.blocking(authenticate_digest, svc.ledger, digest)
    if token is None or token.expired() or not token.can_read():
        raise _LoginNeeded
    log_info = request.scope.get("ledger.log")
    if log_info is not None:
        log_info["token"] = token.name
    return Caller(token)


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers["Cache-Control"] = "no-store"  # a page shows a party's book: no cache keeps it
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; form-action 'self'; frame-ancestors 'none'"
    return response


def _to_login() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=303)


def _error(request: Request, caller: Caller | None, status: int, message: str) -> HTMLResponse:
    return _render(request, "error.html", status, caller=caller, message=message)


def _form_value(request: Request, name: str) -> str | None:
    """A query parameter; an empty field of a submitted form is no value."""
    value = request.query_params.get(name)
    return value.strip() or None if value is not None else None


def _same_origin(request: Request) -> bool:
    """A POST from a page of this server (or a client that says nothing of its origin)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == request.headers.get("host", "")


@router.get("/ui", response_class=HTMLResponse)
async def ui_root() -> Response:
    return RedirectResponse("/ui/", status_code=307)


@router.get("/ui/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    return _render(request, "login.html", caller=None, message=None)


@router.post("/ui/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    if not _same_origin(request):
        return _render(request, "login.html", 403, caller=None, message="login refused: the form came from elsewhere")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            return _render(request, "login.html", 413, caller=None, message="the form is too large")
    try:
        fields = parse_qs(body.decode("utf-8"), max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        fields = {}
    secret = (fields.get("token") or [""])[0].strip()
    if not secret or len(secret) > MAX_TOKEN:
        return _render(request, "login.html", 401, caller=None, message="enter a token")
    svc = services(request)
    token: Token | None = await svc.blocking(authenticate, svc.ledger, secret)
    if token is None:
        return _render(request, "login.html", 401, caller=None, message="invalid or revoked token")
    if token.expired():
        return _render(request, "login.html", 401, caller=None, message=f"token {token.name!r} expired")
    if not token.can_read():
        message = f"token {token.name!r} lacks the 'read' scope"
        return _render(request, "login.html", 403, caller=None, message=message)
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(
        COOKIE,
        session_cookie(token_digest(secret)),
        max_age=SESSION_SECONDS,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/ui/logout", response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    if not _same_origin(request):
        return _error(request, None, 403, "logout refused: the form came from elsewhere")
    response = _to_login()
    response.delete_cookie(COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


def _dates(request: Request, caller: Caller) -> tuple[date, datetime | None] | HTMLResponse:
    """``as_of`` (default today in Asia/Shanghai) and ``known_at`` from the query; an error page if bad."""
    try:
        day = params.day(_form_value(request, "as_of"), "as_of") or today_in_shanghai()
        moment = params.moment(_form_value(request, "known_at"), "known_at")
    except ApiError as e:
        return _error(request, caller, 422, str(e))
    return day, moment


async def _page(request: Request) -> tuple[Caller, date, datetime | None] | Response:
    """A page's caller, ``as_of`` and ``known_at``; else the login redirect or the error page to answer."""
    try:
        caller = await _caller(request)
    except _LoginNeeded:
        return _to_login()
    dates = _dates(request, caller)
    if isinstance(dates, HTMLResponse):
        return dates
    return caller, *dates


@router.get("/ui/", response_class=HTMLResponse)
async def book(request: Request) -> Response:
    page = await _page(request)
    if isinstance(page, Response):
        return page
    caller, day, moment = page
    by = _form_value(request, "by") or "bank"
    if by not in BOOK_GROUPINGS:
        return _error(request, caller, 422, f"by: {by[:64]!r} is not one of {', '.join(BOOK_GROUPINGS)}")
    svc = services(request)
    where = [s.condition for s in caller.scopes()]

    def read() -> dict[str, Any]:
        db = svc.caught_up_views()
        # the book's figures are a function of these and of what the views hold: the same question at
        # the same position of the views is answered from memory (a big book takes seconds to add up)
        key = (svc.settings.db_url, day, moment, by, tuple(where), runner.position(db, BOOK_VIEW))
        with _BOOK_CACHE_LOCK:
            if key in _BOOK_CACHE:
                _BOOK_CACHE.move_to_end(key)
                return _BOOK_CACHE[key]
        groups = portfolio(db, day, by, moment, where_loans=where)
        rows = [{"key": g.key, "loans": g.loans, **{k: fmt(v) for k, v in g.amounts.items()}} for g in groups]
        found = {"groups": rows, "trial_balance": fmt(trial_balance(db, day, moment, where_loans=where))}
        with _BOOK_CACHE_LOCK:
            _BOOK_CACHE[key] = found
            while len(_BOOK_CACHE) > BOOK_CACHE_SIZE:
                _BOOK_CACHE.popitem(last=False)
        return found

    try:
        found = await svc.blocking(read)
    except DamagedStream as e:
        return _error(request, caller, 409, f"{e} (run `ledger verify`)")
    return _render(
        request,
        "book.html",
        caller=caller,
        as_of=day,
        known_at=moment,
        by=by,
        groupings=BOOK_GROUPINGS,
        amounts=AMOUNTS,
        **found,
    )


@router.get("/ui/loans", response_class=HTMLResponse)
async def loans(request: Request) -> Response:
    page = await _page(request)
    if isinstance(page, Response):
        return page
    caller, day, _ = page
    search = _form_value(request, "q")
    cursor = _form_value(request, "cursor")
    if search is not None and len(search) > MAX_SEARCH:
        return _error(request, caller, 422, f"q: a loan id is at most {MAX_SEARCH} characters")
    if cursor is not None:
        try:
            decode_cursor("loan", cursor)
        except BadCursor as e:
            return _error(request, caller, 422, f"cursor: {e}")
    svc = services(request)
    conditions = [s.condition for s in caller.scopes()]
    if search is not None:  # loan ids starting with what was typed (LIKE's own characters taken literally)
        escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(("l.loan_id LIKE ? ESCAPE '\\'", (escaped + "%",)))

    def read() -> tuple[list[dict[str, Any]], str | None]:
        return loan_page(svc.caught_up_views(), day, where_loans=conditions, cursor=cursor, limit=PAGE)

    rows, next_cursor = await svc.blocking(read)
    query = {"as_of": day.isoformat(), **({"q": search} if search else {})}
    next_url = f"/ui/loans?{urlencode({**query, 'cursor': next_cursor})}" if next_cursor else None
    first_url = f"/ui/loans?{urlencode(query)}" if cursor else None
    return _render(
        request,
        "loans.html",
        caller=caller,
        as_of=day,
        q=search or "",
        rows=rows,
        next_url=next_url,
        first_url=first_url,
    )


@router.get("/ui/loans/{loan_id}", response_class=HTMLResponse)
async def loan(request: Request, loan_id: str) -> Response:
    page = await _page(request)
    if isinstance(page, Response):
        return page
    caller, day, moment = page
    known = f" known at {moment.isoformat()}" if moment else ""
    if len(loan_id) > MAX_SEARCH:
        return _error(request, caller, 404, f"no loan {loan_id[:MAX_SEARCH]}{known}")
    svc = services(request)
    scopes = caller.scopes()

    def read() -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        view = show_loan(svc.ledger, loan_id, day, moment, lambda one: owned(scopes, one))
        if view is None:
            return None
        return view, timeline(svc, loan_id, day, moment)

    try:
        found = await svc.blocking(read)
    except DamagedStream as e:
        return _error(request, caller, 409, f"{e} (run `ledger verify`)")
    if found is None:
        return _error(request, caller, 404, f"no loan {loan_id}{known}")
    view, events = found
    return _render(
        request,
        "loan.html",
        caller=caller,
        loan=view,
        events=events,
        as_of=day,
        known_at=moment,
        known_at_text="" if moment is None else moment.isoformat(),
    )


def timeline(svc: Services, loan_id: str, as_of: date, known_at: datetime | None) -> list[dict[str, Any]]:
    """The loan's events as recorded (up to ``known_at``), each with its chain hash, the allocation of
    money in as of ``as_of``, and ``late`` when it was recorded after an event valued later than it."""
    loan, _ = svc.ledger.loan_with_events(loan_id, known_at)
    allocations: dict[str, dict[str, str]] = {}
    if loan is not None and loan.terms is not None and loan.funded_on is not None and loan.funded_on <= as_of:
        for applied in loan.position(as_of).applied:
            paid = {k: fmt(v) for k, v in applied.allocation.paid.as_dict().items() if v}
            if applied.allocation.overpayment:
                paid["overpayment"] = fmt(applied.allocation.overpayment)
            allocations[applied.movement.key] = paid
    rows: list[dict[str, Any]] = []
    latest: date | None = None
    for row in _recorded(svc, loan_id, known_at):
        value_date = row["value_date"]
        late = value_date is not None and latest is not None and value_date < latest
        if value_date is not None and (latest is None or value_date > latest):
            latest = value_date
        key = row["idempotency_key"]
        rows.append(
            {
                "version": row["version"],
                "type": row["type"],
                "occurred_at": row["occurred_at"],
                "recorded_at": row["recorded_at_utc"],
                "value_date": value_date,
                "amount": None if row["amount"] is None else fmt(row["amount"]),
                "allocation": allocations.get(key) if key else None,
                "hash": row["hash"],
                "late": late,
            }
        )
        if len(rows) >= MAX_TIMELINE:
            break
    return rows


def _recorded(svc: Services, loan_id: str, known_at: datetime | None) -> Iterator[dict[str, Any]]:
    cut = None if known_at is None else known_at.astimezone(UTC)
    for row in export_rows(svc.ledger, loan_id):
        if cut is not None and row["recorded_at_utc"] > cut:
            break  # recording order: nothing after this was known then
        yield row


# ---- the reports: the vintage and model-monitoring charts, drawn by the code `ledger report` runs ----
# They cover every loan and application of the book, so only the platform's tokens see them (a party's
# token is refused, as ``GET /v1/reports/models`` refuses it).

CHARTS = ("vintage", "models")
_PLOTTING = threading.Lock()  # matplotlib's pyplot keeps global state: one chart drawn at a time


def _platform_only(request: Request, caller: Caller) -> HTMLResponse | None:
    if caller.token.party is None:
        return None
    message = f"token {caller.token.name!r} is a party's: the reports cover the whole book"
    return _error(request, caller, 403, message)


@router.get("/ui/reports", response_class=HTMLResponse)
async def reports_page(request: Request) -> Response:
    try:
        caller = await _caller(request)
    except _LoginNeeded:
        return _to_login()
    refused = _platform_only(request, caller)
    if refused is not None:
        return refused
    dates = _dates(request, caller)
    if isinstance(dates, HTMLResponse):
        return dates
    day, moment = dates
    query = urlencode({"as_of": day.isoformat(), **({"known_at": moment.isoformat()} if moment else {})})
    svc = services(request)
    last = await svc.blocking(last_verify_run, svc.ledger)
    return _render(
        request,
        "reports.html",
        caller=caller,
        as_of=day,
        known_at=moment,
        known_at_text="" if moment is None else moment.isoformat(),
        query=query,
        verify=last,
    )


@router.get("/ui/charts/{name}.png")
async def chart(request: Request, name: str) -> Response:
    try:
        caller = await _caller(request)
    except _LoginNeeded:
        return Response(status_code=401)
    if name not in CHARTS or caller.token.party is not None:
        return Response(status_code=404 if name not in CHARTS else 403)
    dates = _dates(request, caller)
    if isinstance(dates, HTMLResponse):
        return Response(status_code=422)
    day, moment = dates
    svc = services(request)
    draw = _draw_vintage if name == "vintage" else _draw_models
    png = await svc.blocking(draw, svc.ledger, day, moment)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


def _drawn(plot: Callable[[str], Any]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="ledger-chart-") as folder, _PLOTTING:
        path = Path(folder) / "chart.png"
        plot(str(path))
        return path.read_bytes()


def _draw_vintage(app: Any, day: date, _known_at: datetime | None) -> bytes:
    """`ledger report vintage --as-of DAY` (weekly cohorts), the same steps as cli/report.py."""
    loans = [app.repository.get(i) for i in funded_loan_ids(app)]
    until = min(day, last_data_day(loans) or day)
    cohorts = cohort_table(loans, until, "week", None)
    rates = roll_rate_percentages(roll_rates(loans, until))
    return _drawn(lambda path: plot_vintage(cohorts, rates, until, "week", None, path))


def _draw_models(app: Any, day: date, known_at: datetime | None) -> bytes:
    """`ledger report models --as-of DAY [--known-at T] --out F.png` (monthly periods)."""
    moment = known_at or datetime.now(UTC)
    report = model_report(rows(app, day, moment), day, moment, "month")
    return _drawn(lambda path: plot_models(report, path))
