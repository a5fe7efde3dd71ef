"""Lists, a loan's events and the journal over HTTP, strict query parameters and the one error shape
(issue 24 item 4; issue 25's single date parser and loan-id sniffer), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from support.commands import applied, assigned, domain_example, funded, recalled, repaid

from api.app import create_app
from cli.main import cli
from ledger.commands import loan_id_of
from ledger.config import Settings
from ledger.tokens import create_token

LOANS = ["L1", "L2", "L3", "L4", "L5"]


class Api:
    def __init__(self, client: TestClient, token: str):
        self.client, self.headers = client, {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **params):
        return self.client.get(path, params=params, headers=self.headers)

    def post(self, path: str, body):
        return self.client.post(path, json=body, headers=self.headers)


@pytest.fixture
def api(store_url):
    app = create_app(Settings(db_url=store_url))
    token = create_token(app.state.ledger, "rw", ["append", "read"])
    with TestClient(app, raise_server_exceptions=False) as client:
        api = Api(client, token)
        commands = [c for loan_id in LOANS for c in domain_example(loan_id)]
        commands.append(repaid("L2", ref="R-L2", amount="1012.00", value_date="2026-03-15"))  # paid off
        assert api.post("/v1/commands/batch", {"commands": commands}).json()["rejected"] == 0
        yield api


def pages(api: Api, path: str, key: str, **params) -> tuple[list[list], list]:
    """Every page of a list, following next_cursor; the cursors seen."""
    found, cursors, cursor = [], [], None
    while True:
        body = api.get(path, **params, **({"cursor": cursor} if cursor else {})).json()
        found.append(body[key])
        cursor = body["next_cursor"]
        cursors.append(cursor)
        if cursor is None:
            return found, cursors


def test_loans_page_in_loan_id_order_and_the_cli_gives_the_same_pages(api, store_url):
    found, cursors = pages(api, "/v1/loans", "loans", as_of="2026-03-20", limit=2)
    assert [[row["loan_id"] for row in page] for page in found] == [["L1", "L2"], ["L3", "L4"], ["L5"]]
    assert cursors[-1] is None
    cursor = None
    for page in found:
        args = ["loan", "list", "--as-of", "2026-03-20", "--limit", "2", "--json", "--db", store_url]
        out = json.loads(CliRunner().invoke(cli, [*args, *(["--cursor", cursor] if cursor else [])]).output)
        assert out["loans"] == page and out["more"] == (out["next_cursor"] is not None)
        cursor = out["next_cursor"]
    assert cursor is None


def test_loans_filter_by_state_bucket_bank_and_channel(api):
    overdue = api.get("/v1/loans", as_of="2026-03-20", state="overdue").json()["loans"]
    assert [row["loan_id"] for row in overdue] == ["L1", "L3", "L4", "L5"]
    assert [r["loan_id"] for r in api.get("/v1/loans", as_of="2026-03-20", state="repaid").json()["loans"]] == ["L2"]
    assert api.get("/v1/loans", as_of="2026-03-20", bucket="M1", limit=1).json()["next_cursor"] is not None
    assert api.get("/v1/loans", as_of="2026-03-20", bank="BANKB").json()["loans"] == []
    assert len(api.get("/v1/loans", as_of="2026-03-20", channel="app").json()["loans"]) == 5
    assert api.get("/v1/loans", channel="partner").json() == {
        "as_of": api.get("/v1/loans").json()["as_of"],
        "loans": [],
        "next_cursor": None,
    }


def test_loans_filter_by_the_agency_holding_them_now(api):
    commands = [assigned("AG1", "2026-03-17", loan_id="L1"), assigned("AG1", "2026-03-17", loan_id="L3")]
    commands += [recalled("2026-03-19", loan_id="L3"), assigned("AG2", "2026-03-19", loan_id="L3")]
    assert api.post("/v1/commands/batch", {"commands": commands}).json()["rejected"] == 0
    listed = {a: [r["loan_id"] for r in api.get("/v1/loans", agency=a).json()["loans"]] for a in ("AG1", "AG2", "AG3")}
    assert listed == {"AG1": ["L1"], "AG2": ["L3"], "AG3": []}


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"state": "sleeping"}, "state"),
        ({"as_of": "20260301"}, "as_of"),  # the CLI used to take this form; the one parser does not
    ],
)
def test_a_bad_list_parameter_is_422_naming_it(api, params, field):
    response = api.get("/v1/loans", **params)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field


def test_a_cursor_of_another_list_is_refused(api):
    line_cursor = api.get("/v1/journal", **{"from": "2026-03-01", "to": "2026-03-31", "limit": 1}).json()["next_cursor"]
    response = api.get("/v1/loans", cursor=line_cursor)
    assert (response.status_code, response.json()["error"]["field"]) == (422, "cursor")


def test_a_loans_events_page_in_version_order(api):
    found, _ = pages(api, "/v1/loans/L2/events", "events", limit=2)
    assert [[e["version"] for e in page] for page in found] == [[1, 2], [3, 4]]
    assert [e["type"] for page in found for e in page] == ["applied", "scored", "funded", "repaid"]
    assert api.get("/v1/loans/NOPE/events").status_code == 404


def test_the_journal_pages_through_a_date_range_and_balances(api):
    whole = api.get("/v1/journal", **{"from": "2026-03-01", "to": "2026-03-31", "limit": 1000}).json()
    found, _ = pages(api, "/v1/journal", "lines", **{"from": "2026-03-01", "to": "2026-03-31", "limit": 7})
    assert [line for page in found for line in page] == whole["lines"]
    ids = [line["line_id"] for line in whole["lines"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    debits = sum(Decimal(line["debit"]) for line in whole["lines"])
    credits = sum(Decimal(line["credit"]) for line in whole["lines"])
    assert debits == credits > 0  # double entry, over any range
    funding = [line for line in whole["lines"] if line["value_date"] == "2026-03-01" and line["nights"] is None]
    assert {line["loan_id"] for line in funding} == set(LOANS)
    early = api.get("/v1/journal", **{"from": "2026-02-01", "to": "2026-02-28"}).json()
    assert early["lines"] == [] and early["next_cursor"] is None
    backwards = api.get("/v1/journal", **{"from": "2026-03-31", "to": "2026-03-01"})
    assert (backwards.status_code, backwards.json()["error"]["field"]) == (422, "to")
    assert api.get("/v1/journal", **{"from": "2026-03-01"}).status_code == 422  # to is required


def test_an_accrual_run_is_cut_to_the_nights_in_the_range(api):
    """L1 accrues 0.50 of interest a night from 2026-03-01: three nights in 03-02..03-04."""
    lines = api.get("/v1/journal", **{"from": "2026-03-02", "to": "2026-03-04", "limit": 1000}).json()["lines"]
    interest = [x for x in lines if x["loan_id"] == "L1" and x["nights"] is not None and x["debit"] != "0.00"]
    assert interest and all(x["nights"] == 3 for x in interest)
    assert {(x["value_date"], x["last_date"]) for x in interest} == {("2026-03-02", "2026-03-04")}
    assert "1.50" in {x["debit"] for x in interest}


# ---- unknown parameters, on every route ------------------------------------------------------------
def test_a_typo_in_a_query_parameter_is_422_not_an_answer_for_today(api):
    """Reproduction: GET /v1/loans/L1?asof=2026-03-20 answered 200 for today."""
    response = api.get("/v1/loans/L1", asof="2026-03-20")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "unknown_parameter"
    assert response.json()["error"]["field"] == "asof"
    assert "as_of" in response.json()["error"]["message"]  # it names what the route takes


def test_every_route_refuses_an_unknown_or_repeated_query_parameter(api):
    doc = api.get("/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method in operations:
            url = path.replace("{loan_id}", "L1") + "?colour=red"
            response = api.client.request(method.upper(), url, headers=api.headers, content=b"{}")
            assert response.status_code == 422, (method, path, response.text)
            assert response.json()["error"] == {
                "code": "unknown_parameter",
                "message": response.json()["error"]["message"],
                "field": "colour",
            }
    twice = api.client.get("/v1/loans/L1?as_of=2026-03-20&as_of=2026-03-01", headers=api.headers)
    assert (twice.status_code, twice.json()["error"]["field"]) == (422, "as_of")


# ---- the error shape ---------------------------------------------------------------------------------
def test_every_error_has_code_message_and_field_in_single_and_batch_answers(api):
    single = api.post("/v1/commands", {k: v for k, v in applied("L9").items() if k != "term_days"})
    assert single.status_code == 422
    assert single.json() == {
        "status": "rejected",
        "loan_id": "L9",
        "error": {
            "code": "invalid_command",
            "message": "applied for loan L9: term_days: required field is missing",
            "field": "term_days",
        },
    }
    batch = api.post("/v1/commands/batch", {"commands": [funded("NOPE"), applied("L1", principal="1.00")]}).json()
    assert [r["error"]["code"] for r in batch["results"]] == ["illegal_transition", "invalid_command"]
    assert batch["results"][1]["error"]["field"] == "principal"
    for response, code in (
        (api.client.get("/v1/nowhere", headers=api.headers), "not_found"),
        (api.client.delete("/v1/commands", headers=api.headers), "method_not_allowed"),
        (api.client.get("/v1/loans/L1"), "missing_token"),
        (api.client.post("/v1/commands", content=b"{", headers=api.headers), "invalid_json"),
    ):
        body = response.json()
        assert set(body["error"]) == {"code", "message", "field"} and body["error"]["code"] == code, body


def test_one_loan_id_sniffer_for_lines_and_objects():
    for data in ({"loan_id": "L1"}, '{"loan_id": "L1", "x": }', b'{"loan_id": "L1"}', '{"loan_id": "L1"}'):
        assert loan_id_of(data) == ("L1" if data != '{"loan_id": "L1", "x": }' else None)
    for bad in ({"loan_id": "L 1"}, {"loan_id": 7}, "[1]", b"\xff", {"loan_id": "x" * 65}, None):
        assert loan_id_of(bad) is None
