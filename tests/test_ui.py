"""The auditor's web view (issue 27) in process, on SQLite and PostgreSQL: the session, the party rules,
as of / known at, the timeline, errors as pages, and every page's HTML (labelled fields, headed tables).
tests/test_ui_browser.py drives the same pages in a real browser."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from support.commands import applied, approved, funded
from ui_book import AS_OF, BEFORE_REPAYMENTS, append, build

from api import ui
from api.app import create_app
from cli.main import cli
from ledger.config import Settings
from ledger.tokens import revoke_token


class Ui:
    def __init__(self, client: TestClient, book: dict[str, Any]):
        self.client, self.tokens, self.between = client, book["tokens"], book["between"]

    def login(self, who: str) -> Any:
        self.client.cookies.clear()
        return self.client.post("/ui/login", data={"token": self.tokens[who]}, follow_redirects=False)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, follow_redirects=False)

    def api(self, path: str, who: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return self.client.get(path, params=params, headers=headers).json()


@pytest.fixture
def web(store_url):
    app = create_app(Settings(db_url=store_url))
    with TestClient(app, raise_server_exceptions=False, base_url="http://testserver") as client:
        yield Ui(client, build(app.state.ledger))


def cells(html: str, table_class: str | None = None) -> list[list[str]]:
    """The text of each row's cells (th and td) of the page's tables, or of the one with that class."""
    parser = _Cells(table_class)
    parser.feed(html)
    return parser.rows


class _Cells(HTMLParser):
    def __init__(self, table_class: str | None):
        super().__init__()
        self.want, self.inside, self.rows, self.cell = table_class, False, [], None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.inside = self.want is None or dict(attrs).get("class") == self.want
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data


def test_pages_ask_for_a_token_once_and_keep_only_its_hash_in_a_strict_httponly_cookie(web):
    assert web.get("/ui/").headers["location"] == "/ui/login"
    assert web.get("/ui/loans/L1").headers["location"] == "/ui/login"
    answer = web.login("platform")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; under TLS it is marked Secure (next test)
    assert web.tokens["platform"] not in cookie
    page = web.get("/ui/", as_of=AS_OF)
    assert page.status_code == 200 and "Book as of 2026-03-20" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_the_cookie_is_secure_under_tls(store_url):
    app = create_app(Settings(db_url=store_url))
    with TestClient(app, raise_server_exceptions=False, base_url="https://testserver") as client:
        book = build(app.state.ledger)
        answer = client.post("/ui/login", data={"token": book["tokens"]["banka"]}, follow_redirects=False)
    assert answer.status_code == 303 and "Secure" in answer.headers["set-cookie"]


def test_a_bad_token_a_token_without_read_and_a_foreign_form_get_no_session(web):
    for secret, status, message in (
        ("not-a-token", 401, "invalid or revoked token"),
        (web.tokens["writer"], 403, "token &#39;writer&#39; lacks the &#39;read&#39; scope"),
        ("", 401, "enter a token"),
    ):
        answer = web.client.post("/ui/login", data={"token": secret}, follow_redirects=False)
        assert answer.status_code == status and message in answer.text
        assert "set-cookie" not in answer.headers
    foreign = web.client.post(
        "/ui/login", data={"token": web.tokens["platform"]}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    too_big = web.client.post("/ui/login", content=b"token=" + b"x" * 5000, headers={"content-type": "text/plain"})
    assert too_big.status_code == 413


def test_a_tampered_expired_or_revoked_session_is_sent_back_to_the_login(web, store_url):
    web.login("banka")
    good = web.client.cookies.get(ui.COOKIE)
    digest, issued, mac = good.split(".")
    web.client.cookies.set(ui.COOKIE, f"{digest}.{int(issued) + 1}.{mac}", path="/ui")
    assert web.get("/ui/").headers["location"] == "/ui/login"
    assert ui.session_digest(good, now=int(issued) + ui.SESSION_SECONDS + 1) is None
    assert ui.session_digest(good, now=int(issued) + 60) == digest
    web.login("banka")
    assert web.get("/ui/").status_code == 200
    ledger = web.client.app.state.ledger  # type: ignore[attr-defined]
    revoke_token(ledger, "banka")
    assert web.get("/ui/").headers["location"] == "/ui/login"


def test_a_bank_sees_its_own_loans_and_another_banks_loan_is_unknown(web):
    web.login("banka")
    book = cells(web.get("/ui/", as_of=AS_OF).text)
    assert [row[0] for row in book[1:]] == ["BANKA"]
    listed = cells(web.get("/ui/loans", as_of=AS_OF).text)
    assert [row[0] for row in listed[1:]] == ["L1"]
    foreign = web.get("/ui/loans/L2", as_of=AS_OF)
    unknown = web.get("/ui/loans/NOPE", as_of=AS_OF)
    assert foreign.status_code == unknown.status_code == 404
    assert "no loan L2" in foreign.text and "BANKB" not in foreign.text
    assert cells(web.get("/ui/loans", q="L2").text)[1:] == [["No loans."]]
    web.login("platform")
    assert [row[0] for row in cells(web.get("/ui/", as_of=AS_OF).text)[1:]] == ["BANKA", "BANKB"]
    assert web.get("/ui/loans/L2", as_of=AS_OF).status_code == 200


def test_the_book_shows_the_apis_balances_and_trial_balance_by_each_grouping(web):
    web.login("banka")
    for by in ui.BOOK_GROUPINGS:
        page = web.get("/ui/", as_of=AS_OF, by=by)
        api = web.api("/v1/balances", "banka", as_of=AS_OF, by=by)
        shown = cells(page.text)[1:]
        expected = [[g["key"], str(g["loans"]), *(g[a] for a in ui.AMOUNTS)] for g in api["groups"]]
        assert shown == expected, by
        assert f'id="trial-balance">{api["trial_balance"]}<' in page.text


def test_as_of_and_known_at_change_the_balances_and_the_timeline_marks_the_late_repayment(web):
    web.login("banka")

    def seen(**params: Any) -> tuple[dict[str, str], list[list[str]]]:
        page = web.get("/ui/loans/L1", **params)
        assert page.status_code == 200, page.text
        header, values = cells(page.text, "balances")
        return dict(zip(header, values, strict=True)), cells(page.text, "timeline")[1:]

    now, events_now = seen(as_of=AS_OF)
    then, events_then = seen(as_of=AS_OF, known_at=web.between)
    early, _ = seen(as_of=BEFORE_REPAYMENTS)
    for shown, params in ((now, {}), (then, {"known_at": web.between}), (early, {"as_of": BEFORE_REPAYMENTS})):
        api = web.api("/v1/loans/L1", "banka", **{"as_of": AS_OF, **params})
        assert shown == api["balances"]
    assert len({now["total"], then["total"], early["total"]}) == 3
    # the repayment of 200.00 valued 2026-03-05 was recorded after the one valued 2026-03-10
    assert [(e[0], e[1], e[4], e[5]) for e in events_now[3:]] == [
        ("4", "repaid", "2026-03-10", "300.00"),
        ("5", "repaid late", "2026-03-05", "200.00"),
    ]
    assert [e[1] for e in events_then] == ["applied", "scored", "funded", "repaid"]
    assert all(len(e[7]) == 17 for e in events_now)  # each chain hash shown (its head, the whole in its title)
    assert events_now[4][6] == "interest 2.00, fee 1.94, principal 196.06"  # allocated first, by value date


def test_bad_input_is_a_page_naming_the_field_never_a_traceback(web):
    web.login("platform")
    for path, params, status, message in (
        ("/ui/", {"as_of": "2026-13-01"}, 422, "as_of:"),
        ("/ui/loans/L1", {"known_at": "yesterday"}, 422, "known_at:"),
        ("/ui/", {"by": "borrower"}, 422, "by:"),
        ("/ui/loans", {"cursor": "garbage"}, 422, "cursor:"),
        ("/ui/loans", {"q": "L" * 65}, 422, "q:"),
        ("/ui/loans/" + "L" * 65, {}, 404, "no loan"),
    ):
        page = web.get(path, **params)
        assert page.status_code == status and message in page.text, (path, params)
        assert page.headers["content-type"].startswith("text/html") and "Traceback" not in page.text


def test_the_loan_list_pages_and_searches_by_loan_id(web, monkeypatch):
    monkeypatch.setattr(ui, "PAGE", 1)
    web.login("platform")
    first = web.get("/ui/loans", as_of=AS_OF)
    assert [row[0] for row in cells(first.text)[1:]] == ["L1"]
    next_url = first.text.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = web.client.get(next_url)
    assert [row[0] for row in cells(second.text)[1:]] == ["L2"] and 'rel="next"' not in second.text
    assert [row[0] for row in cells(web.get("/ui/loans", q="L2").text)[1:]] == ["L2"]
    assert cells(web.get("/ui/loans", q="L_").text)[1:] == [["No loans."]]  # '_' is a character, not a wildcard


def test_nothing_is_written_from_the_pages(web):
    web.login("platform")
    for path in ("/ui/", "/ui/loans", "/ui/loans/L1"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert web.client.request(method, path).status_code == 405, (method, path)
    assert web.client.post("/ui/logout", follow_redirects=False).headers["location"] == "/ui/login"
    assert web.get("/ui/").headers["location"] == "/ui/login"


def test_every_page_labels_its_fields_heads_its_tables_and_shows_no_personal_data(web):
    web.login("platform")
    pages = [web.get("/ui/", as_of=AS_OF, by=by).text for by in ui.BOOK_GROUPINGS]
    pages += [web.get("/ui/loans").text, web.get("/ui/loans/L1", known_at=web.between).text]
    pages += [web.get("/ui/loans/NOPE").text, web.get("/ui/login").text, web.get("/ui/reports", as_of=AS_OF).text]
    for html in pages:
        problems = accessibility_problems(html)
        assert not problems, problems
        assert "BORROWER-" not in html
    assert web.get("/ui/static/ui.css").status_code == 200


def accessibility_problems(html: str) -> list[str]:
    """Form fields without a label, tables without a header row or caption, images without alt text,
    a page without a language or a title; anything loaded from another server."""
    checker = _Checker()
    checker.feed(html)
    checker.close()
    problems = list(checker.problems)
    unlabelled = [f for f in checker.fields if f not in checker.labels]
    problems += [f"form field {f!r} has no label" for f in unlabelled]
    return problems


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.fields: list[str] = []
        self.labels: set[str] = set()
        self.table: dict[str, bool] | None = None
        self.saw_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html" and not a.get("lang"):
            self.problems.append("<html> has no lang")
        if tag == "title":
            self.saw_title = True
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit"):
            self.fields.append(a.get("id") or f"<{tag} name={a.get('name')}> without an id")
        if tag == "label" and a.get("for"):
            self.labels.add(a["for"] or "")
        if tag == "img" and not a.get("alt"):
            self.problems.append(f"image {a.get('src')!r} has no alt text")
        for attr in ("src", "href", "action"):
            value = a.get(attr) or ""
            if value.startswith(("http:", "https:", "//")):
                self.problems.append(f"{tag} loads {value!r} from elsewhere")
        if tag == "table":
            self.table = {"caption": False, "th": False}
        elif self.table is not None and tag in ("caption", "th"):
            self.table[tag] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self.table is not None:
            if not (self.table["caption"] and self.table["th"]):
                self.problems.append(f"a table without a caption or header cells: {self.table}")
            self.table = None

    def close(self) -> None:
        super().close()
        if not self.saw_title:
            self.problems.append("no <title>")


def test_the_reports_draw_the_cli_charts_and_show_when_verify_last_ran(web, store_url, tmp_path):
    web.login("platform")
    assert 'id="verify-result">No run recorded' in web.get("/ui/reports", as_of=AS_OF).text
    ran = CliRunner().invoke(cli, ["verify", "--db", store_url])
    assert ran.exit_code == 0, ran.output
    page = web.get("/ui/reports", as_of=AS_OF)
    facts = {row[0]: row[1] for row in cells(page.text, "verify")}
    assert facts["result"] == "ok" and facts["problems"] == "0" and facts["events, loans"] == "8, 2"
    assert facts["ran at (UTC)"][:4] == "2026" and len(facts["ran at (UTC)"]) == 19
    known_at = "2026-12-01T00:00:00+00:00"
    for name, extra in (("vintage", []), ("models", ["--known-at", known_at])):
        out = tmp_path / f"{name}.png"
        drawn = CliRunner().invoke(
            cli, ["report", name, "--as-of", AS_OF, *extra, "--out", str(out), "--db", store_url]
        )
        assert drawn.exit_code == 0, drawn.output
        chart = web.get(f"/ui/charts/{name}.png", as_of=AS_OF, known_at=known_at)
        assert chart.headers["content-type"] == "image/png"
        assert chart.content == out.read_bytes(), name  # the command's own chart, byte for byte
    web.login("banka")  # the reports cover the whole book: a party's token is refused them
    assert web.get("/ui/reports").status_code == 403
    assert web.get("/ui/charts/vintage.png").status_code == 403
    assert "Reports" not in web.get("/ui/").text


def test_the_book_page_shows_what_was_appended_since_it_was_last_shown(web):
    """The book's figures are kept for a question asked again; a new event makes it a new question."""
    web.login("platform")
    before = cells(web.get("/ui/", as_of=AS_OF).text)[1:]
    assert cells(web.get("/ui/", as_of=AS_OF).text)[1:] == before
    ledger = web.client.app.state.ledger  # type: ignore[attr-defined]
    append(ledger, [applied("L3"), approved("L3"), funded("L3", bank="BANKC", bank_ref="C-L3", idempotency_key="C-L3")])
    after = cells(web.get("/ui/", as_of=AS_OF).text)[1:]
    assert [row[0] for row in after] == ["BANKA", "BANKB", "BANKC"] and after[:2] == before
