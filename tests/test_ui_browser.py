"""The auditor's web view in a real browser (issue 27): headless Chromium from the system packages
(``apt-get install chromium``; `.ci/run` installs it), driven by Playwright, against `ledger serve` as
a process, on SQLite and PostgreSQL. JavaScript is off: every page works without it. A screenshot of
each page is saved in the test's temporary folder. One browser for the whole session."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from test_api_serve import Server
from ui_book import AS_OF, BEFORE_REPAYMENTS, build

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


# Module, not session: Playwright's sync API keeps an event loop running on the test's thread while it is
# open, and every later test in the same process that calls asyncio.run() would fail (seen in CI, when
# tests/test_write_lane.py ran after this module on the same xdist worker).
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail("no Chromium: `apt-get install -y chromium` (.ci/run installs it)")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def served(ledger, store_url, tmp_path) -> Iterator[tuple[Server, dict[str, Any]]]:
    book = build(ledger)
    server = Server(store_url, tmp_path / "serve.log")
    try:
        yield server, book
    finally:
        server.stop()


def log_in(page: Page, base: str, secret: str) -> None:
    page.goto(f"{base}/ui/")
    assert page.url == f"{base}/ui/login"  # asked for the token first
    page.get_by_label("Token").fill(secret)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/ui/")


def balances(page: Page) -> dict[str, str]:
    names = ("principal", "interest", "fee", "penalty", "total")
    return {name: page.locator(f"#balance-{name}").inner_text() for name in names}


def timeline(page: Page) -> list[str]:
    return [row.inner_text() for row in page.locator("table.timeline tbody tr").all()]


def test_an_auditor_opens_the_book_and_a_loan_replays_it_and_a_bank_sees_only_its_own(browser, served, tmp_path):
    server, book = served
    base = server.base
    shots = tmp_path / "screenshots"
    shots.mkdir()
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(f"{base}/ui/login")
        page.screenshot(path=str(shots / "login.png"), full_page=True)
        log_in(page, base, book["tokens"]["platform"])
        cookie = next(c for c in context.cookies() if c["name"] == "ledger_ui")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

        page.get_by_label("As of (value date)").fill(AS_OF)
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(f"**/ui/?as_of={AS_OF}*")
        rows = page.locator("table tbody tr th").all_inner_texts()
        assert rows == ["BANKA", "BANKB"]
        assert page.locator("#trial-balance").inner_text() == "0.00"
        page.screenshot(path=str(shots / "book.png"), full_page=True)

        page.get_by_role("link", name="Loans").click()
        page.get_by_label("Loan id starts with").fill("L1")
        page.get_by_role("button", name="Search").click()
        assert page.locator("table tbody tr th").all_inner_texts() == ["L1"]
        page.screenshot(path=str(shots / "loans.png"), full_page=True)

        page.get_by_role("link", name="L1").click()
        page.get_by_label("As of (value date)").fill(AS_OF)
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**/ui/loans/L1?as_of=*")
        now, events_now = balances(page), timeline(page)
        assert len(events_now) == 5 and "late" in events_now[4] and "late" not in events_now[3]
        page.screenshot(path=str(shots / "loan.png"), full_page=True)

        page.get_by_label("Known at (recorded by)").fill(book["between"])
        page.get_by_role("button", name="Show").click()
        page.wait_for_url("**known_at=*")
        then, events_then = balances(page), timeline(page)
        assert len(events_then) == 4 and not any("late" in e for e in events_then)
        assert then["principal"] != now["principal"] and then["total"] != now["total"]
        page.screenshot(path=str(shots / "loan-known-at.png"), full_page=True)

        page.get_by_label("Known at (recorded by)").fill("")
        page.get_by_label("As of (value date)").fill(BEFORE_REPAYMENTS)
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(f"**as_of={BEFORE_REPAYMENTS}*")
        early = balances(page)
        assert early["principal"] == "1000.00" and early["total"] != now["total"]

        page.get_by_role("link", name="Reports").click()
        page.wait_for_load_state("load")  # the page and its images: both charts drawn
        assert page.locator("#verify-result").inner_text().startswith("No run recorded")
        sizes = [page.locator("img.chart").nth(i).evaluate("img => img.naturalWidth") for i in range(2)]
        assert all(width > 500 for width in sizes), sizes  # both charts arrived as images
        page.screenshot(path=str(shots / "reports.png"), full_page=True)

        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{base}/ui/login")
        page.goto(f"{base}/ui/loans/L1")
        assert page.url == f"{base}/ui/login"

        # a bank's token: another bank's loan is unknown to it, its own opens
        log_in(page, base, book["tokens"]["bankb"])
        answer = page.goto(f"{base}/ui/loans/L1?as_of={AS_OF}")
        assert answer is not None and answer.status == 404
        assert page.get_by_role("alert").inner_text() == "no loan L1"
        page.screenshot(path=str(shots / "foreign-loan.png"), full_page=True)
        answer = page.goto(f"{base}/ui/loans/L2?as_of={AS_OF}")
        assert answer is not None and answer.status == 200
        assert page.locator("h1").inner_text() == "Loan L2"
        assert page.locator("table tbody tr th").all_inner_texts()[:1] == ["state"]
    finally:
        context.close()
    for name in ("login", "book", "loans", "loan", "loan-known-at", "reports", "foreign-loan"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name  # a rendered page, not a blank one
