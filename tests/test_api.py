"""The HTTP API in process (FastAPI's TestClient), on SQLite and PostgreSQL: the many small cases."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from decimal import Decimal as D

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import applied, approved, declined, domain_example, funded, repaid

from api.app import MAX_BODY_BYTES, create_app
from cli.main import cli
from ledger.config import Settings
from ledger.tokens import create_token, revoke_token


class Api:
    def __init__(self, client: TestClient, ledger, tokens: dict[str, str]):
        self.client, self.ledger, self.tokens = client, ledger, tokens

    def auth(self, who: str = "rw") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def post(self, path: str, body, who: str = "rw"):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(path, content=content, headers=self.auth(who))

    def get(self, path: str, who: str = "rw", **params):
        return self.client.get(path, params=params, headers=self.auth(who))


@pytest.fixture
def api(store_url):
    app = create_app(Settings(db_url=store_url))
    ledger = app.state.ledger
    tokens = {
        "rw": create_token(ledger, "rw", ["append", "read"]),
        "reader": create_token(ledger, "reader", ["read"]),
        "writer": create_token(ledger, "writer", ["append"]),
    }
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, ledger, tokens)


def cli_json(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return json.loads(result.output)


# ---- single appends -------------------------------------------------------------------
def test_appended_201_then_duplicate_200_then_conflict_409(api):
    first = api.post("/v1/commands", applied("L1"))
    assert (first.status_code, first.json()) == (201, {"status": "appended", "loan_id": "L1"})
    again = api.post("/v1/commands", applied("L1"))
    assert (again.status_code, again.json()) == (200, {"status": "duplicate", "loan_id": "L1"})
    other = api.post("/v1/commands", applied("L1", principal="900.00"))
    assert other.status_code == 409
    assert other.json()["status"] == "rejected"
    error = other.json()["error"]
    assert (error["code"], error["field"]) == ("idempotency_conflict", "idempotency_key")
    assert "app-L1" in error["message"] and "different content" in error["message"]
    assert len(api.ledger.loan_events("L1")) == 1


def test_a_bank_callback_retried_after_a_timeout_is_a_duplicate(api):
    for cmd in domain_example("L1"):
        assert api.post("/v1/commands", cmd).status_code == 201
    callback = repaid("L1", ref="BANKA-R-77", amount="300.00")
    assert api.post("/v1/commands", callback).status_code == 201
    retry = api.post("/v1/commands", callback)
    assert (retry.status_code, retry.json()["status"]) == (200, "duplicate")
    # 1,000.00 + 3.50 interest + the fee up to the cost ceiling (6.90 - 3.50 = 3.40), less the 300.00 paid
    assert api.get("/v1/loans/L1", as_of="2026-03-08").json()["balances"]["total"] == "706.90"


def test_a_broken_rule_is_422_naming_loan_and_state(api):
    response = api.post("/v1/commands", funded("L9"))
    assert response.status_code == 422
    assert response.json()["status"] == "rejected"
    assert "L9" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "command, field",
    [
        (applied("L1", principal="10.001"), "principal"),
        (applied("L1", colour="red"), "colour: unknown field"),
        ({k: v for k, v in applied("L1").items() if k != "term_days"}, "term_days: required field is missing"),
        (applied("L1", occurred_at="2026-02-28T10:00:00"), "occurred_at"),
        (applied("L 1"), "loan_id"),
        ([applied("L1")], "expected a JSON object"),
    ],
)
def test_an_invalid_command_is_422_naming_the_field(api, command, field):
    response = api.post("/v1/commands", command)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["message"]
    assert api.ledger.loan_events("L1") == []


def test_money_as_a_json_number_is_never_a_float(api):
    """As with `ledger append`: whole yuan as an integer is exact; a fraction must be sent as a string."""
    whole = json.dumps(applied("L1")).replace('"principal": "1000.00"', '"principal": 1000')
    assert api.post("/v1/commands", whole.encode()).status_code == 201
    assert api.get("/v1/loans/L1").json()["events"][0]["principal"] == "1000.00"
    fraction = json.dumps(applied("L2")).replace('"principal": "1000.00"', '"principal": 1000.1000000000000001')
    response = api.post("/v1/commands", fraction.encode())
    assert response.status_code == 422, response.text
    # as written, not rounded
    assert "JSON number 1000.1000000000000001 is a float" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"type": "applied",', "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"amount": NaN}', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
    ],
)
def test_a_body_that_is_not_json_is_400(api, body, message):
    for path in ("/v1/commands", "/v1/commands/batch"):
        response = api.post(path, body)
        assert response.status_code == 400, response.text
        assert message in response.json()["error"]["message"]


def test_a_body_over_10_mib_is_413_and_nothing_is_appended(api):
    padding = " " * (MAX_BODY_BYTES + 1 - len(json.dumps({"commands": [applied("L1")]})))
    body = json.dumps({"commands": [applied("L1")]}).replace("{", "{" + padding, 1).encode()
    assert len(body) == MAX_BODY_BYTES + 1
    response = api.post("/v1/commands/batch", body)
    assert response.status_code == 413
    assert "10 MiB" in response.json()["error"]["message"]
    assert api.ledger.loan_events("L1") == []


def test_a_single_command_over_64_kib_is_422(api):
    response = api.post("/v1/commands", applied("L1", channel="x" * 70_000))
    assert response.status_code == 422
    assert "65536 bytes" in response.json()["error"]["message"]


# ---- batches -----------------------------------------------------------------------------
def test_a_batch_answers_each_command_at_its_index_like_append(api):
    api.post("/v1/commands", applied("L1"))
    batch = [
        applied("L1"),  # duplicate
        approved("L1"),
        funded("L1"),
        funded("L2"),  # no such loan
        {"type": "repaid", "loan_id": "L1"},  # invalid
        applied("L3"),
        applied("L3", principal="999.00"),  # its key again with other content
    ]
    response = api.post("/v1/commands/batch", {"commands": batch})
    assert response.status_code == 200
    out = response.json()
    assert [(r["index"], r["status"], r["loan_id"]) for r in out["results"]] == [
        (0, "duplicate", "L1"),
        (1, "appended", "L1"),
        (2, "appended", "L1"),
        (3, "rejected", "L2"),
        (4, "rejected", "L1"),
        (5, "appended", "L3"),
        (6, "rejected", "L3"),
    ]
    assert (out["appended"], out["duplicate"], out["rejected"]) == (3, 1, 3)
    assert all(("error" in r) == (r["status"] == "rejected") for r in out["results"])
    assert "amount: required field is missing" in out["results"][4]["error"]["message"]


def test_a_batch_over_10000_commands_is_413_and_nothing_is_appended(api):
    batch = [applied(f"L{i}") for i in range(10_001)]
    response = api.post("/v1/commands/batch", {"commands": batch})
    assert response.status_code == 413
    assert "10000" in response.json()["error"]["message"]
    assert api.ledger.loan_events("L0") == []


@pytest.mark.parametrize("body", [[applied("L1")], {"commands": applied("L1")}, {"commands": [], "extra": 1}])
def test_a_batch_body_of_the_wrong_shape_is_422(api, body):
    response = api.post("/v1/commands/batch", body)
    assert response.status_code == 422
    assert '{"commands": [...]}' in response.json()["error"]["message"]


# ---- tokens ------------------------------------------------------------------------------
def test_no_token_or_a_wrong_token_is_401(api):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {api.tokens['rw']}"}):
        for method, path in (("POST", "/v1/commands"), ("GET", "/v1/loans/L1"), ("GET", "/v1/balances")):
            response = api.client.request(method, path, headers=headers, content=b"{}")
            assert response.status_code == 401, (headers, path)
            assert response.json()["error"]["code"] in ("missing_token", "invalid_token")
    assert api.client.get("/healthz").status_code == 200  # the one open path


def test_a_revoked_token_is_refused_on_the_next_request(api):
    assert api.post("/v1/commands", applied("L1")).status_code == 201
    revoke_token(api.ledger, "rw")
    response = api.post("/v1/commands", applied("L2"))
    assert response.status_code == 401
    assert api.ledger.loan_events("L2") == []


def test_a_token_without_the_scope_is_403(api):
    assert api.post("/v1/commands", applied("L1"), who="reader").status_code == 403
    assert api.ledger.loan_events("L1") == []
    assert api.post("/v1/commands/batch", {"commands": []}, who="reader").status_code == 403
    assert api.get("/v1/loans/L1", who="writer").status_code == 403
    assert api.get("/v1/balances", who="writer").status_code == 403
    assert api.get("/v1/projections", who="writer").status_code == 403
    assert api.post("/v1/commands", applied("L1"), who="writer").status_code == 201
    assert api.get("/v1/loans/L1", who="reader").status_code == 200


def test_only_a_hash_of_a_token_is_stored(api):
    from projections.db import ViewDb

    rows = ViewDb(api.ledger.recorder.datastore).query("SELECT * FROM ledger_tokens")
    stored = json.dumps([[str(v) for v in row] for row in rows])
    assert all(token not in stored for token in api.tokens.values())


# ---- reads -------------------------------------------------------------------------------
def test_a_loan_reads_as_loan_show_json_and_404_when_unknown(api, store_url):
    for cmd in [*domain_example("L1"), repaid("L1", ref="R1", amount="300.00")]:
        api.post("/v1/commands", cmd)
    response = api.get("/v1/loans/L1", as_of="2026-03-20")
    assert response.status_code == 200
    assert response.json() == cli_json("loan", "show", "L1", "--as-of", "2026-03-20", "--json", "--db", store_url)
    assert response.json()["state"] == "overdue"
    missing = api.get("/v1/loans/NOPE")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": {"code": "loan_not_found", "message": "no loan NOPE", "field": "loan_id"}},
    )


def test_known_at_shows_what_the_ledger_knew_then(api):
    for cmd in domain_example("L1"):
        api.post("/v1/commands", cmd)
    before = api.get("/v1/loans/L1").json()["events"][-1]["recorded_at"]
    api.post("/v1/commands", repaid("L1", ref="R1", amount="300.00"))
    then = api.get("/v1/loans/L1", as_of="2026-03-20", known_at=before).json()
    now = api.get("/v1/loans/L1", as_of="2026-03-20").json()
    assert len(then["events"]) == 3 and len(now["events"]) == 4
    assert then["balances"]["total"] != now["balances"]["total"]
    early = api.get("/v1/loans/L1", known_at="2000-01-01T00:00:00+00:00")
    assert early.status_code == 404 and "known at" in early.json()["error"]["message"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"as_of": "2026-13-01"}, "as_of"),
        ({"as_of": "20260301"}, "as_of"),
        ({"known_at": "2026-03-01T10:00:00"}, "known_at"),
        ({"known_at": "yesterday"}, "known_at"),
    ],
)
def test_bad_read_parameters_are_422_naming_them(api, params, message):
    api.post("/v1/commands", applied("L1"))
    for path in ("/v1/loans/L1", "/v1/balances"):
        response = api.get(path, **params)
        assert response.status_code == 422, response.text
        assert message in response.json()["error"]["message"]


def test_balances_read_as_the_cli_prints_them(api, store_url):
    for loan in ("L1", "L2"):
        for cmd in domain_example(loan):
            api.post("/v1/commands", cmd)
    for by in ("bank", "state", "bucket", "product"):
        response = api.get("/v1/balances", as_of="2026-03-20", by=by)
        assert response.status_code == 200
        expected = cli_json("balances", "--as-of", "2026-03-20", "--by", by, "--json", "--db", store_url)
        assert response.json() == expected
    assert api.get("/v1/balances", by="colour").status_code == 422


def test_projections_show_position_head_and_lag(api):
    api.post("/v1/commands", applied("L1"))
    rows = api.get("/v1/projections").json()
    assert [set(r) for r in rows] == [{"name", "position", "head", "lag"}]
    assert rows[0]["head"] >= 1


# ---- operations --------------------------------------------------------------------------
def test_healthz_is_503_when_the_store_does_not_answer(store_url):
    # a lost store is retried for retry_seconds before the answer (30 s by default, the whole of this
    # test's time on PostgreSQL): 1 s gives the same 503
    app = create_app(Settings(db_url=store_url, retry_seconds=1.0))
    with TestClient(app, raise_server_exceptions=False) as client:
        ledger = app.state.ledger
        assert client.get("/healthz").json() == {"status": "ok"}
        ledger.recorder.datastore.close()
        if hasattr(ledger.recorder.datastore, "pool"):  # PostgreSQL: a closed pool refuses connections
            assert client.get("/healthz").status_code == 503
        else:  # SQLite reopens its file on demand: make the file unreadable instead
            ledger.recorder.datastore.pool._db_name = "/nonexistent/dir/ledger.db"  # noqa: SLF001
            assert client.get("/healthz").status_code == 503


def test_an_unexpected_error_is_500_with_a_request_id_and_a_logged_traceback(api, capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(api.ledger, "loan_with_events", broken)
    response = api.get("/v1/loans/L1")
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["error"] == {"code": "internal", "message": "internal error", "field": None}
    err = capsys.readouterr().err
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any("disk on fire" in e.get("traceback", "") and e["request_id"] == body["request_id"] for e in logged)
    assert any(e.get("status") == 500 and e["request_id"] == body["request_id"] for e in logged)


def test_each_request_logs_one_json_line_without_token_body_or_personal_data(api, capsys):
    capsys.readouterr()
    secret_name = "Zhang Wei-Personal"
    api.post("/v1/commands", applied("L1", borrower={"name": secret_name, "phone": "13800138000"}))
    api.get("/v1/loans/L1", who="reader")
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines()]
    assert [(e["method"], e["path"], e["status"], e["token"]) for e in lines] == [
        ("POST", "/v1/commands", 201, "rw"),
        ("GET", "/v1/loans/L1", 200, "reader"),
    ]
    assert all({"request_id", "duration_ms"} <= set(e) for e in lines)
    assert secret_name not in err and "13800138000" not in err
    assert all(token not in err for token in api.tokens.values())


def test_the_openapi_document_describes_every_endpoint_and_the_commands(api):
    doc = api.client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/v1/commands",
        "/v1/commands/batch",
        "/v1/loans/{loan_id}",
        "/v1/balances",
        "/v1/projections",
        "/healthz",
    } <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    assert {"Applied", "Funded", "Repaid", "Command", "Batch"} <= set(schemas)
    assert doc["paths"]["/v1/commands"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Command"
    }
    assert {"201", "200", "409", "422", "400", "401", "403", "413"} <= set(
        doc["paths"]["/v1/commands"]["post"]["responses"]
    )
    # the answers several reads share, each described the same way wherever it can come
    damaged = "a loan's stored events are damaged: `ledger verify`"
    no_such_loan = "no such loan (or not the token's party's)"
    for path, answers in (
        ("/v1/loans/{loan_id}", {"404": no_such_loan, "409": damaged}),
        ("/v1/loans/{loan_id}/events", {"404": no_such_loan, "409": damaged}),
        ("/v1/balances", {"409": damaged}),
    ):
        responses = doc["paths"][path]["get"]["responses"]
        assert {code: responses[code]["description"] for code in answers} == answers, path


def test_a_body_streamed_without_a_length_is_cut_off_at_10_mib(api):
    def chunks():
        for _ in range(11):
            yield b" " * (1024 * 1024)

    response = api.client.post("/v1/commands/batch", content=chunks(), headers=api.auth())
    assert response.status_code == 413
    assert "10 MiB" in response.json()["error"]["message"]


def test_requests_appended_together_each_get_their_own_answer(api):
    """Concurrent requests share one Ledger.append call (group commit); each answer is its own command's."""
    import asyncio

    import httpx

    app = api.client.app

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", headers=api.auth()) as client:
            bodies = [applied(f"OK{i}") if i % 2 else funded(f"NO{i}") for i in range(40)]
            return bodies, await asyncio.gather(*(client.post("/v1/commands", json=b) for b in bodies))

    bodies, responses = asyncio.run(main())
    for body, response in zip(bodies, responses, strict=True):
        assert response.json()["loan_id"] == body["loan_id"]
        assert response.status_code == (201 if body["type"] == "applied" else 422)


def test_an_amount_over_the_configured_limit_is_refused_over_http_too(store_url):
    """One validation path: LEDGER_MAX_AMOUNT binds the API as it binds ledger append."""
    app = create_app(Settings(db_url=store_url, max_amount=D("100.00")))
    token = create_token(app.state.ledger, "w", ["append"])
    headers = {"Authorization": f"Bearer {token}"}
    over = repaid(amount="100.01")
    with TestClient(app, raise_server_exceptions=False) as client:
        single = client.post("/v1/commands", content=json.dumps(over).encode(), headers=headers)
        batch = client.post("/v1/commands/batch", content=json.dumps({"commands": [over]}).encode(), headers=headers)
    assert single.status_code == 422 and "over the limit of 100.00" in single.json()["error"]["message"]
    assert "over the limit of 100.00" in batch.json()["results"][0]["error"]["message"]


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=300)
    | st.sampled_from(["1e309", "-0.00", "2026-02-30"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60)
@given(
    base=st.sampled_from([applied("F1"), approved("F1"), funded("F1"), repaid("F1")]),
    field=st.sampled_from(
        ["loan_id", "idempotency_key", "occurred_at", "amount", "principal", "term_days", "borrower"]
    ),
    value=_json_values,
)
def test_bad_input_is_never_a_500(api, base, field, value):
    command = {**base, field: value}
    for path, body in (("/v1/commands", command), ("/v1/commands/batch", {"commands": [command, value]})):
        response = api.post(path, body)
        assert response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/json"


def test_token_cli_creates_once_lists_without_secrets_and_revokes(store_url):
    from ledger.app import Ledger
    from ledger.tokens import authenticate

    def run(*args):
        return CliRunner().invoke(cli, [*args, "--db", store_url])

    assert run("init").exit_code == 0
    created = run("token", "create", "collections", "--scope", "read", "--scope", "append", "--json")
    assert created.exit_code == 0
    out = json.loads(created.output)
    assert (out["name"], out["scopes"]) == ("collections", ["append", "read"]) and len(out["token"]) >= 43
    assert run("token", "create", "collections", "--scope", "read").exit_code == 1  # a name is never reused
    assert run("token", "create", "nosccope").exit_code == 2  # --scope is required
    assert run("token", "create", "x", "--scope", "admin").exit_code == 2
    listed = run("token", "list", "--json")
    assert out["token"] not in listed.output
    assert [(t["name"], t["scopes"], t["revoked_at"]) for t in json.loads(listed.output)] == [
        ("collections", ["append", "read"], None)
    ]
    app = Ledger(Settings(db_url=store_url))
    try:
        assert authenticate(app, out["token"]).name == "collections"
        assert run("token", "revoke", "collections").exit_code == 0
        assert authenticate(app, out["token"]) is None
        assert run("token", "revoke", "nobody").exit_code == 1
        assert json.loads(run("token", "list", "--json").output)[0]["revoked_at"] is not None
    finally:
        app.close()


def test_the_append_routes_refuse_in_the_order_every_route_does(api):
    """The query string, then the token, then its scope: an unknown parameter is 422 before a missing or
    bad token is 401, and a read-only token is 403, on the append routes as on the reads (the append
    routes check all three in one dependency since issue 29)."""
    bodies = {"/v1/commands": applied("Q1"), "/v1/commands/batch": {"commands": [applied("Q1")]}}
    for path, body in bodies.items():
        content = json.dumps(body).encode()
        refusals = [
            api.client.post(f"{path}?colour=red", content=content),
            api.client.post(path, content=content),
            api.client.post(path, content=content, headers={"Authorization": "Bearer nope"}),
            api.client.post(f"{path}?colour=red", content=content, headers=api.auth("reader")),
            api.client.post(path, content=content, headers=api.auth("reader")),
        ]
        answers = [(r.status_code, r.json()["error"]["code"], r.json()["error"]["field"]) for r in refusals]
        assert answers == [
            (422, "unknown_parameter", "colour"),
            (401, "missing_token", None),
            (401, "invalid_token", None),
            (422, "unknown_parameter", "colour"),
            (403, "missing_scope", None),
        ], path
        assert refusals[1].headers["www-authenticate"] == "Bearer"
        assert "'reader' lacks the 'append' scope" in refusals[4].json()["error"]["message"]
        twice = api.client.post(f"{path}?x=1&x=2", content=content, headers=api.auth("writer"))
        assert (twice.status_code, twice.json()["error"]["code"]) == (422, "unknown_parameter")
    assert api.get("/v1/loans/Q1").status_code == 404  # nothing refused was appended


# ---- POST /v1/commands past FastAPI's routing (issue 29) ----------------------------------------------
_WHO = ("rw", "reader", "writer", "bank", "expired", "wrong", "none")
_LOANS = ("D1", "D2")


@st.composite
def single_requests(draw):
    """What a client may send to POST /v1/commands: commands valid or not, for loans in any state, raw
    bodies that are not commands, query strings, and every kind of token."""
    loan = draw(st.sampled_from(_LOANS))
    command = draw(
        st.sampled_from([applied, approved, declined, funded, repaid, lambda loan_id: funded(loan_id, bank="BANKB")])
    )(loan)
    kind = draw(st.sampled_from(["command", "command", "broken", "raw"]))
    if kind == "broken":  # a field dropped or replaced by any JSON value
        field = draw(st.sampled_from(sorted(command)))
        if draw(st.booleans()):
            del command[field]
        else:
            command[field] = draw(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.just([1]))
    body = json.dumps(command).encode()
    if kind == "raw":
        body = draw(st.sampled_from([b"", b"{", b"[1]", b"\xff\xfe", b'{"a": 1, "a": 2}', b" " * 70_000, b"null"]))
    query = draw(st.sampled_from(["", "", "?colour=red", "?x=1&x=2", "?"]))
    return query, body, draw(st.sampled_from(_WHO))


@pytest.fixture
def two_apps(tmp_path):
    """The application twice, each on a store of its own: as built, and with POST /v1/commands left to
    FastAPI's routing as before issue 29 (the direct path taken out of its middleware)."""
    from api.routes.commands import DirectSingle

    clients, secrets = [], []
    for name in ("direct", "routed"):
        app = create_app(Settings(db_url=f"sqlite:///{tmp_path}/{name}.db"))
        if name == "routed":
            app.user_middleware = [m for m in app.user_middleware if m.cls is not DirectSingle]
        ledger = app.state.ledger
        secrets.append(
            {
                "rw": create_token(ledger, "rw", ["append", "read"]),
                "reader": create_token(ledger, "reader", ["read"]),
                "writer": create_token(ledger, "writer", ["append"]),
                "bank": create_token(ledger, "bank", ["append"], party="bank:BANKB"),
                "expired": create_token(ledger, "old", ["append"], expires_on=date(2099, 1, 1)),
                "wrong": "not-a-token",
            }
        )
        with sqlite3.connect(tmp_path / f"{name}.db") as con:  # as a day passing leaves it: create refuses a past day
            con.execute("UPDATE ledger_tokens SET expires_on = '2026-01-01' WHERE name = 'old'")
        clients.append(TestClient(app, raise_server_exceptions=False).__enter__())
    yield list(zip(clients, secrets, strict=True))
    for client in clients:
        client.__exit__(None, None, None)


@settings(max_examples=60)
@given(st.lists(single_requests(), min_size=1, max_size=6))
def test_a_single_posted_directly_is_answered_as_fastapis_route_answered_it(two_apps, requests):
    """Status, headers (but the request id) and body, request after request, on stores kept in step."""
    for query, body, who in requests:
        answers = []
        for client, secrets in two_apps:
            headers = {"Content-Type": "application/json"}
            if who != "none":
                headers["Authorization"] = f"Bearer {secrets[who]}"
            response = client.post(f"/v1/commands{query}", content=body, headers=headers)
            kept = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
            answers.append((response.status_code, kept, response.content))
        assert answers[0] == answers[1], (query, body[:200], who)


def _unsafe_bodies() -> list[tuple[bytes, bool]]:
    """Commands carrying characters the ledger refuses (True), escaped or raw, in values, keys and personal
    data; and safe ones laid out oddly (False): a newline between members, a line end. (A byte order mark
    is refused as JSON the body is not, 400, with the decoder's reason.)"""
    bodies = []
    for bad in ("\u0000", "\ud800", "\u202e", "\x1b", "\t"):
        for field in ("channel", "idempotency_key"):
            command = {**applied("P1"), field: f"x{bad}y"}
            bodies.append((json.dumps(command).encode(), True))  # escaped: \u0000
            bodies.append((json.dumps(command, ensure_ascii=False).encode("utf-8", "surrogatepass"), True))  # raw
    bodies.append((json.dumps({**applied("P1"), "borrower": {"name\u0000": "x"}}).encode(), True))
    bodies.append((json.dumps({**applied("P1"), "\u202ekey": "x"}).encode(), True))
    text = json.dumps(applied("P1"))
    bodies += [(text.replace(", ", ",\n").encode(), False), (("\ufeff" + text).encode(), True)]
    bodies.append(((text + "\r\n").encode(), False))
    return bodies


@pytest.mark.parametrize("content_type", ["application/json", None])
@pytest.mark.parametrize("body, refused", _unsafe_bodies())
def test_unsafe_characters_are_refused_by_the_direct_single_as_by_the_route_and_nothing_stored_breaks_a_read(
    two_apps, body, refused, content_type
):
    """The direct path searches the body once for unsafe characters (issue 29): escaped or raw, in a value,
    a key or the borrower's data, it refuses them as FastAPI's route does; the rest is stored and reads back."""
    answers = []
    for client, secrets in two_apps:
        headers = {"Authorization": f"Bearer {secrets['rw']}"}
        if content_type:
            headers["Content-Type"] = content_type
        response = client.post("/v1/commands", content=body, headers=headers)
        read = client.get("/v1/loans/P1", headers=headers)
        assert read.status_code == (404 if refused else 200), response.text
        answers.append((response.status_code, response.content))
    assert answers[0] == answers[1]
    assert answers[0][0] in ((400, 422) if refused else (201,)), answers[0]


def _answers_and_log_lines(two_apps, capsys, method, path, body, who, headers=None):
    """Each app's answer (but its request id and date) and its request log lines (but id and duration)."""
    answers = []
    for client, secrets in two_apps:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if who is not None:
            sent["Authorization"] = f"Bearer {secrets[who]}"
        capsys.readouterr()
        response = client.request(method, path, content=body, headers=sent)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
        for line in lines:
            line.pop("request_id")
            line.pop("duration_ms", None)
            if "traceback" in line:  # its frames differ by the way taken; what was raised does not
                line["traceback"] = line["traceback"].strip().splitlines()[-1]
        kept = {k: v for k, v in response.headers.items() if k not in ("x-request-id", "date")}
        seen = response.json() if response.content else None
        if isinstance(seen, dict):
            seen.pop("request_id", None)  # a 500's, each its own
        answers.append((response.status_code, kept, seen, lines))
    return answers


_GOOD = json.dumps(applied("S1")).encode()


@pytest.mark.parametrize(
    ("method", "path", "body", "who", "headers"),
    [
        ("GET", "/v1/commands", b"", "rw", None),
        ("HEAD", "/v1/commands", b"", "rw", None),
        ("PUT", "/v1/commands", _GOOD, "rw", None),
        ("OPTIONS", "/v1/commands", b"", "rw", None),
        ("POST", "/v1/commands/", _GOOD, "rw", None),
        ("POST", "/v1/commands", _GOOD, "expired", None),  # its name logged, as FastAPI's route logs it
        ("POST", "/v1/commands", _GOOD, "rw", {"Content-Type": "text/plain"}),
        ("POST", "/v1/commands", b"x" * (MAX_BODY_BYTES + 1), "rw", None),
        ("POST", "/v1/commands", b"x" * (MAX_BODY_BYTES + 1), None, None),  # 401 before 413
        ("POST", "/v1/commands?x=1", b"x" * (MAX_BODY_BYTES + 1), "reader", None),  # 422 before 403
        ("POST", "/v1/commands", b"\xff" * 70_000, "rw", None),  # over 64 KiB before not UTF-8
        ("POST", "/v1/commands", _GOOD.replace(b'"S1"', b'"S1\\u0000"'), "rw", None),
        ("POST", "/v1/commands", _GOOD.replace(b'"B1"', b'"B\\ud8001"'), "rw", None),
        ("POST", "/v1/commands", _GOOD.replace(b'"app"', b'"a\x7fp"'), "rw", None),
        ("POST", "/v1/commands", _GOOD.replace(b'"app"', b'"a\x00p"'), "rw", None),
        ("POST", "/v1/commands", b"\xef\xbb\xbf" + _GOOD, "rw", None),
    ],
)
def test_a_single_is_answered_and_logged_as_fastapis_route_on_what_the_generated_requests_miss(
    two_apps, capsys, method, path, body, who, headers
):
    """Other methods and paths (left to FastAPI), refusals with several things wrong at once, escaped and
    raw unsafe characters: the same answer and the same request log line both ways."""
    direct, routed = _answers_and_log_lines(two_apps, capsys, method, path, body, who, headers)
    assert direct == routed
    assert len(direct[3]) >= 1 and direct[3][-1]["status"] == direct[0]


def test_a_single_meeting_a_failure_is_answered_and_logged_as_fastapis_route(two_apps, capsys, monkeypatch):
    """The store down at the token check (503, Retry-After), an unexpected error in the append (500, its
    traceback logged): the handlers the application installed answer the direct path as they answer FastAPI's."""
    import api.auth
    from eventstore.retry import StoreUnavailable

    def down(*args):
        raise StoreUnavailable("the store is down")

    with monkeypatch.context() as patched:
        patched.setattr(api.auth, "_authenticate_all", down)
        direct, routed = _answers_and_log_lines(two_apps, capsys, "POST", "/v1/commands", _GOOD, "rw")
    assert direct == routed
    assert (direct[0], direct[1].get("retry-after")) == (503, "5")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    for client, _ in two_apps:
        monkeypatch.setattr(client.app.state.ledger, "append", broken)
    direct, routed = _answers_and_log_lines(two_apps, capsys, "POST", "/v1/commands", _GOOD, "rw")
    assert direct == routed
    assert direct[0] == 500 and direct[3][0]["traceback"] == "RuntimeError: disk on fire"
