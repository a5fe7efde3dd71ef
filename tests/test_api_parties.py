"""Tokens per party, per command type and with an expiry (issue 24): a party reads and writes only
its own loans, through every route of the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from support.commands import applied, approved, assigned, collected, funded, recalled, repaid
from support.tamper import raw

from api.app import create_app
from cli.main import cli
from ledger.app import Ledger
from ledger.config import Settings
from ledger.settle import run_settle
from ledger.tokens import TokenError, authenticate, create_token
from projections.balances import GROUPINGS

# Two banks and two channels, crossed; every party's amounts are its own (no figure of one appears in
# another's book by chance): BANKA lends 1000/1100, BANKB 2000/2200; one loan of each channel is only
# applied (no bank yet).
BOOK = {
    "AA1": ("CHAN1", "BANKA", "1000.00"),
    "AA2": ("CHAN2", "BANKA", "1100.00"),
    "BB1": ("CHAN1", "BANKB", "2000.00"),
    "BB2": ("CHAN2", "BANKB", "2200.00"),
    "NEW1": ("CHAN1", None, "1300.00"),
    "NEW2": ("CHAN2", None, "2600.00"),
}
AS_OF = "2026-03-20"
# Collection agencies: AGENCY1 holds AA1 and had AA2 (recalled: no longer its to see); AGENCY2 holds BB2.
HELD = {"AA1": "AGENCY1", "BB2": "AGENCY2"}


def book_commands() -> list[dict[str, Any]]:
    commands = []
    for loan_id, (channel, bank, principal) in BOOK.items():
        commands.append(applied(loan_id, channel=channel, principal=principal, borrower_id=f"B-{loan_id}"))
        if bank is None:
            continue
        commands.append(approved(loan_id, principal=principal))
        ref = f"{bank}-D-{loan_id}"
        commands.append(funded(loan_id, bank=bank, bank_ref=ref, idempotency_key=ref, amount=principal))
        commands.append(repaid(loan_id, ref=f"{bank}-R-{loan_id}", amount="100.00"))
    commands.append(assigned("AGENCY1", "2026-03-17", loan_id="AA2"))
    commands.append(recalled("2026-03-19", loan_id="AA2"))
    commands += [assigned(agency, "2026-03-18", loan_id=loan_id) for loan_id, agency in HELD.items()]
    return commands


class Api:
    def __init__(self, client: TestClient, ledger: Ledger):
        self.client, self.ledger, self.tokens = client, ledger, {}

    def token(self, name: str, scopes: list[str], party: str | None = None) -> str:
        self.tokens[name] = create_token(self.ledger, name, scopes, party=party)
        return name

    def get(self, path: str, who: str, **params: Any):
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    def post(self, path: str, body: Any, who: str):
        return self.client.post(path, json=body, headers={"Authorization": f"Bearer {self.tokens[who]}"})


@pytest.fixture
def api(store_url):
    app = create_app(Settings(db_url=store_url))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, app.state.ledger)


@pytest.fixture
def book(api):
    api.token("platform", ["append", "read"])
    out = api.post("/v1/commands/batch", {"commands": book_commands()}, "platform").json()
    assert out["rejected"] == 0, out
    for party in ("bank:BANKA", "bank:BANKB", "channel:CHAN1", "channel:CHAN2", "agency:AGENCY1", "agency:AGENCY2"):
        api.token(party.replace(":", "-"), ["read", "append"], party)
    return api


@pytest.fixture
def settled_book(book):
    """The book with the repayments' day settled with each bank (issue 26): a statement is the bank's alone."""
    for bank in BANKS:
        statement = run_settle(book.ledger, bank, date.fromisoformat(SETTLED_ON), date.fromisoformat(SETTLED_ON))
        assert statement.loans == 2, statement
    return book


# ---- every GET route, from the OpenAPI document ----------------------------------------------------
# A value for each query parameter a route may require; a new route with a required parameter not
# here fails this test until one is added (so no route escapes it).
REQUIRED_VALUES = {"as_of": AS_OF, "from": "2026-01-01", "to": "2026-12-31"}
BANKS = ("BANKA", "BANKB")
SETTLED_ON = "2026-03-08"  # the repayments' day (support.commands.repaid)


def get_routes(api: Api) -> list[tuple[str, list[str], list[str]]]:
    """(path, required query parameters, every query parameter) of each GET route."""
    doc = api.client.get("/openapi.json").json()
    routes = []
    for path, operations in doc["paths"].items():
        if "get" not in operations:
            continue
        query = [p for p in operations["get"].get("parameters", []) if p["in"] == "query"]
        routes.append((path, [p["name"] for p in query if p["required"]], [p["name"] for p in query]))
    return routes


# Routes whose answer covers every application of the book (the model report): only the platform reads them.
PLATFORM_ONLY = {"/v1/reports/models"}


def responses_for(api: Api, who: str) -> list[tuple[str, int, Any]]:
    """Every GET route, each loan of the book in its path, its required parameters filled in."""
    answers = []
    for path, required, accepted in get_routes(api):
        missing = [name for name in required if name not in REQUIRED_VALUES]
        assert not missing, f"{path} requires {missing}: give it a value in REQUIRED_VALUES"
        query = {name: REQUIRED_VALUES[name] for name in required}
        if "as_of" in accepted:
            query["as_of"] = AS_OF
        paths = [path.replace("{loan_id}", loan_id) for loan_id in BOOK] if "{loan_id}" in path else [path]
        if "{bank}" in path:  # each bank's settlement of the settled day
            paths = [p.replace("{bank}", bank).replace("{date}", SETTLED_ON) for p in paths for bank in BANKS]
        assert not any("{" in p for p in paths), f"fill the path parameters of {path}"
        queries = [{**query, "by": by} for by in GROUPINGS] if "by" in accepted else [query]
        for concrete in paths:
            for q in queries:
                response = api.get(concrete, who, **q)
                answers.append((concrete, response.status_code, response.json()))
    return answers


def strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings_in(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return [str(value)] if value is not None else []


def others(party_kind: str, name: str) -> tuple[set[str], set[str]]:
    """The loans this party must never see, and the figures and names that would betray them."""
    if party_kind == "agency":
        hidden = {loan_id for loan_id in BOOK if HELD.get(loan_id) != name}
        names = {agency for agency in HELD.values() if agency != name}
    else:
        position = {"channel": 0, "bank": 1}[party_kind]
        hidden = {loan_id for loan_id, facts in BOOK.items() if facts[position] != name}
        names = {facts[position] for facts in BOOK.values() if facts[position] not in (None, name)}
    words = {loan_id for loan_id in hidden} | {f"B-{loan_id}" for loan_id in hidden}
    words |= {BOOK[loan_id][2] for loan_id in hidden}  # their principals
    return hidden, words | names


@pytest.mark.parametrize(
    "party", ["bank:BANKA", "bank:BANKB", "channel:CHAN1", "channel:CHAN2", "agency:AGENCY1", "agency:AGENCY2"]
)
def test_a_party_token_never_receives_another_partys_loan_event_or_amount_on_any_get_route(settled_book, party):
    kind, name = party.split(":")
    hidden, words = others(kind, name)
    answers = responses_for(settled_book, party.replace(":", "-"))
    assert {path for path, _, _ in answers} >= {"/v1/loans", "/v1/balances", "/v1/journal"}
    for path, status, body in answers:
        loan = path.split("/")[3] if path.startswith("/v1/loans/") else None
        if loan in hidden:
            assert status == 404 and body["error"]["code"] == "loan_not_found", (path, body)  # never 403
            continue
        if path.startswith("/v1/banks/") and (kind, name) != ("bank", path.split("/")[3]):
            assert (status, body["error"]["code"]) == (404, "not_found"), (path, body)  # another bank's: none
            continue
        if path in PLATFORM_ONLY:  # a report over the whole book: refused to a party, never cut to its share
            assert (status, body["error"]["code"]) == (403, "missing_scope"), (path, body)
            continue
        assert status == 200, (path, status, body)
        seen = strings_in(body)
        leaked = [s for s in seen for word in words if s == word or re.search(rf"\b{re.escape(word)}\b", s)]
        assert not leaked, (path, leaked)
    own = [loan_id for loan_id in BOOK if loan_id not in hidden]
    assert all(status == 200 for path, status, _ in answers if path.split("/")[-1] in own)
    listed = {row["loan_id"] for _, _, body in answers if "loans" in body for row in body["loans"]}
    assert listed == {loan_id for loan_id in own if BOOK[loan_id][1] is not None}  # the funded ones: the book


def test_a_party_sees_its_own_figures_and_the_platform_sees_everything(book):
    platform = book.get("/v1/balances", "platform", as_of=AS_OF, by="bank").json()
    banka = book.get("/v1/balances", "bank-BANKA", as_of=AS_OF, by="bank").json()
    assert [g["key"] for g in platform["groups"]] == ["BANKA", "BANKB"]
    assert banka["groups"] == [platform["groups"][0]] and banka["trial_balance"] == "0.00"
    chan2 = book.get("/v1/balances", "channel-CHAN2", as_of=AS_OF, by="bank").json()
    loans = {loan_id: book.get(f"/v1/loans/{loan_id}", "platform", as_of=AS_OF).json() for loan_id in ("AA2", "BB2")}
    assert [(g["key"], g["loans"], g["principal"]) for g in chan2["groups"]] == [
        ("BANKA", 1, loans["AA2"]["balances"]["principal"]),
        ("BANKB", 1, loans["BB2"]["balances"]["principal"]),
    ]
    journal = book.get("/v1/journal", "bank-BANKB", **{"from": "2026-03-01", "to": "2026-03-31"}).json()
    assert journal["lines"] and {line["loan_id"] for line in journal["lines"]} == {"BB1", "BB2"}


def test_an_agency_collects_only_on_the_loans_it_holds_and_only_in_its_own_name(book):
    """AGENCY1 holds AA1; AA2 was recalled from it; BB2 is AGENCY2's."""
    mine = collected("AGENCY1", AS_OF, amount="10.00", loan_id="AA1")
    assert book.post("/v1/commands", mine, "agency-AGENCY1").status_code == 201
    for loan_id in ("AA2", "BB2", "BB1"):  # recalled from it, another agency's, never its own
        refused = book.post(
            "/v1/commands", {**mine, "loan_id": loan_id, "idempotency_key": f"c-{loan_id}"}, "agency-AGENCY1"
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (404, "loan_not_found"), loan_id
    other = book.post("/v1/commands", {**mine, "idempotency_key": "c-2", "agency": "AGENCY2"}, "agency-AGENCY1")
    assert (other.status_code, other.json()["error"]["code"]) == (403, "not_your_party")
    assert [e["type"] for e in book.get("/v1/loans/AA1/events", "agency-AGENCY1").json()["events"]][-1] == "collected"


# ---- writes by role --------------------------------------------------------------------------------
def test_a_bank_writes_only_its_own_movements(book):
    own = book.post("/v1/commands", repaid("AA1", ref="BANKA-R2", amount="10.00"), "bank-BANKA")
    assert own.status_code == 201
    theirs = book.post("/v1/commands", repaid("BB1", ref="BANKA-R3", amount="10.00"), "bank-BANKA")
    unknown = book.post("/v1/commands", repaid("NOPE", ref="BANKA-R4", amount="10.00"), "bank-BANKA")
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"] == {"code": "loan_not_found", "message": "no loan BB1", "field": "loan_id"}
    named = book.post("/v1/commands", funded("NEW1", bank="BANKB", amount="1300.00"), "bank-BANKA")
    assert (named.status_code, named.json()["error"]["field"]) == (403, "bank")
    for command in (applied("X1", channel="CHAN1"), approved("NEW1"), {**repaid("AA1"), "type": "written_off"}):
        response = book.post("/v1/commands", command, "bank-BANKA")
        assert (response.status_code, response.json()["error"]["code"]) in (
            (403, "missing_scope"),
            (422, "invalid_command"),
        )
    refunded_twice = book.post("/v1/commands", funded("BB1", bank="BANKA", amount="2000.00"), "bank-BANKA")
    assert refunded_twice.status_code == 404  # BANKB's loan: not even its existence is told
    assert len(book.ledger.loan_events("BB1")) == 4


def test_a_bank_funds_and_repays_in_one_batch_and_each_refusal_is_at_its_index(book):
    book.post("/v1/commands", approved("NEW1", principal="1300.00"), "platform")
    batch = [
        funded("NEW1", bank="BANKA", amount="1300.00"),
        repaid("NEW1", ref="BANKA-R-NEW1", amount="50.00"),  # its own now: funded just before
        repaid("BB2", ref="BANKA-R-BB2", amount="50.00"),  # another bank's
        applied("X9", channel="CHAN1"),  # not a bank's to send
    ]
    out = book.post("/v1/commands/batch", {"commands": batch}, "bank-BANKA").json()
    assert [(r["status"], (r.get("error") or {}).get("code")) for r in out["results"]] == [
        ("appended", None),
        ("appended", None),
        ("rejected", "loan_not_found"),
        ("rejected", "missing_scope"),
    ]


def test_a_channel_applies_only_in_its_own_name_and_never_learns_of_anothers_loan(book):
    assert book.post("/v1/commands", applied("C1-NEW", channel="CHAN1"), "channel-CHAN1").status_code == 201
    other = book.post("/v1/commands", applied("C1-X", channel="CHAN2"), "channel-CHAN1")
    assert (other.status_code, other.json()["error"]["code"], other.json()["error"]["field"]) == (
        403,
        "not_your_party",
        "channel",
    )
    taken = book.post("/v1/commands", applied("BB2", channel="CHAN1", idempotency_key="k-BB2"), "channel-CHAN1")
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "loan_id_taken")
    assert "CHAN2" not in taken.text and "funded" not in taken.text
    key_clash = book.post("/v1/commands", applied("C1-Y", channel="CHAN1", idempotency_key="app-NEW2"), "channel-CHAN1")
    assert key_clash.status_code == 409 and "loan NEW2" not in key_clash.json()["error"]["message"]
    assert book.post("/v1/commands", approved("C1-NEW"), "channel-CHAN1").status_code == 403


def test_a_typed_scope_appends_only_its_type(book):
    book.token("callbacks", ["append:repaid"], "bank:BANKA")
    assert book.post("/v1/commands", repaid("AA2", ref="CB-1", amount="5.00"), "callbacks").status_code == 201
    refused = book.post("/v1/commands", funded("NEW1", bank="BANKA", amount="1300.00"), "callbacks")
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "missing_scope")
    assert book.get("/v1/loans/AA2", "callbacks").status_code == 403  # no read scope


# ---- tokens: expiry, the CLI, an older store ---------------------------------------------------------
def test_an_expired_token_is_401_and_says_so(book):
    assert book.get("/v1/loans/AA1", "bank-BANKA").status_code == 200
    with raw(book.ledger.settings.db_url) as con:
        con.execute("UPDATE ledger_tokens SET expires_on = '2026-01-01' WHERE name = 'bank-BANKA'")
    response = book.get("/v1/loans/AA1", "bank-BANKA")
    assert (response.status_code, response.json()["error"]["code"]) == (401, "token_expired")
    assert "2026-01-01" in response.json()["error"]["message"]


def test_token_create_with_a_party_and_an_expiry_prints_them_once_and_lists_them(store_url):
    def run(*args):
        return CliRunner().invoke(cli, [*args, "--db", store_url])

    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    made = run("token", "create", "bank-a", "--scope", "read", "--scope", "append:repaid", "--party", "bank:BANKA")
    assert made.exit_code == 0, made.output
    created = run(
        "token", "create", "ch", "--scope", "append", "--party", "channel:CHAN1", "--expires", tomorrow, "--json"
    )
    out = json.loads(created.output)
    assert {k: out[k] for k in ("name", "scopes", "party", "expires")} == {
        "name": "ch",
        "scopes": ["append"],
        "party": "channel:CHAN1",
        "expires": tomorrow,
    }
    listed = json.loads(run("token", "list", "--json").output)
    assert [(t["name"], t["scopes"], t["party"], t["expires"]) for t in listed] == [
        ("bank-a", ["read", "append:repaid"], "bank:BANKA", None),
        ("ch", ["append"], "channel:CHAN1", tomorrow),
    ]
    assert out["token"] not in json.dumps(listed)
    for bad in (
        ["--scope", "append:written_off", "--party", "bank:BANKA"],  # not a bank's to send
        ["--scope", "read", "--party", "broker:X"],
        ["--scope", "read", "--party", "bank:"],
        ["--scope", "read", "--expires", "2020-01-01"],
        ["--scope", "read", "--expires", "20300101"],
        ["--scope", "append:nothing"],
    ):
        result = run("token", "create", "bad", *bad)
        assert result.exit_code == 2, (bad, result.output)
    assert [t["name"] for t in json.loads(run("token", "list", "--json").output)] == ["bank-a", "ch"]


def test_an_older_token_table_is_upgraded_in_place_and_its_tokens_keep_working(store_url):
    app = Ledger(Settings(db_url=store_url))
    secret = create_token(app, "old", ["read"])
    app.close()
    with raw(store_url) as con:  # the table as it was before parties and expiry
        for column in ("party", "expires_on"):
            con.execute(f"ALTER TABLE ledger_tokens DROP COLUMN {column}")
    app = Ledger(Settings(db_url=store_url))  # what `ledger init` or any owner's command does
    try:
        token = authenticate(app, secret)
        assert token is not None and (token.name, token.party, token.expires_on) == ("old", None, None)
        create_token(app, "new", ["read"], party="bank:BANKA")
        with pytest.raises(TokenError, match="already exists"):
            create_token(app, "old", ["read"])
    finally:
        app.close()
