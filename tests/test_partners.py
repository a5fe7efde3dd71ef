"""Books per party (issue 24): each bank, channel, agency and model version, as of a date and as known at a time."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal as D

import pytest
from click.testing import CliRunner
from support.commands import applied, approved, assigned, collected, declined, domain_example, funded, recalled

from cli.main import cli
from domain.loan import INHOUSE, SHANGHAI
from domain.outcomes import loss
from ledger.commands import command_from_dict
from projections import runner
from projections.balances import portfolio
from projections.parties import holder_on, loans_held_by
from projections.partners import BY, partners

AMOUNTS = ("principal", "interest", "fee", "penalty", "overpayment", "total")


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def appended(ledger, *commands) -> None:
    outcomes = ledger.append([command_from_dict(c) for c in commands])
    assert {o.status for o in outcomes} == {"appended"}, outcomes


def recorded_at(ledger, loan_id: str, key: str) -> datetime:
    return next(e.timestamp for e in ledger.loan_events(loan_id) if getattr(e, "idempotency_key", None) == key)


def reversal(key: str, loan_id="L1") -> dict:
    return {
        "type": "reversed",
        "loan_id": loan_id,
        "idempotency_key": f"rev-{key}",
        "occurred_at": "2026-05-05T10:00:00+08:00",
        "reverses": key,
        "reason": "the agency's remittance bounced",
    }


# ---- a worked example: one loan through two agencies ---------------------------------------------------
# L1: 1,000.00 funded 2026-03-01, due 03-15. AG-A takes it on 03-20 (DPD 5, M1, owing 1,017.00) and
# collects 300.00 on 03-25; it is recalled on 04-01; in-house collects 50.00 on 04-05; AG-B takes it on
# 04-20 (DPD 36, M2) and collects 100.00 on 04-25, a remittance that bounces (reversed, recorded later).
def _two_agencies(ledger) -> dict[str, datetime]:
    appended(ledger, *domain_example(), assigned("AG-A", "2026-03-20"), collected("AG-A", "2026-03-25", "300.00"))
    appended(ledger, recalled("2026-04-01"), collected(INHOUSE, "2026-04-05", "50.00"))
    appended(ledger, assigned("AG-B", "2026-04-20"), collected("AG-B", "2026-04-25", "100.00", key="B1"))
    appended(ledger, reversal("B1"))
    return {
        "recall": recorded_at(ledger, "L1", "rcl-L1-2026-04-01"),
        "reversal": recorded_at(ledger, "L1", "rev-B1"),
    }


def test_an_agencys_book_counts_what_it_was_handed_and_what_it_collected_as_known_then(ledger):
    times = _two_agencies(ledger)
    runner.catch_up(ledger)
    db = runner.views(ledger)
    owed_b = ledger.get_loan("L1").assignments[1].owed  # 1017.00 - 300 - 50 + 36 nights more of interest/penalty

    def agencies(day: date, known_at=None) -> dict:
        return {p.key: p.figures("agency") for p in partners(db, day, "agency", known_at)}

    book = agencies(date(2026, 4, 30))
    a, b, home = book["AG-A"], book["AG-B"], book[INHOUSE]
    assert (a["assigned"], a["assigned_amount"], a["collected"], a["collection_rate"]) == (
        1,
        D("1017.00"),
        D("300.00"),
        D("0.2950"),
    )
    m1 = {"bucket": "M1", "assigned": 1, "assigned_amount": D("1017.00"), "collected": D("300.00")}
    assert a["by_bucket"] == [{**m1, "collection_rate": D("0.2950")}]
    assert (b["assigned"], b["assigned_amount"], b["collected"], b["collection_rate"]) == (1, owed_b, D("0.00"), D("0"))
    assert [line["bucket"] for line in b["by_bucket"]] == ["M2"]
    assert (home["assigned"], home["collected"], home["collection_rate"]) == (0, D("50.00"), None)
    # who holds the loan on the date: AG-B on 04-30, so the loan and what it owes are AG-B's
    assert (a["loans"], b["loans"], home["loans"]) == (0, 1, 0)
    # as known before the reversal was recorded, AG-B's 100.00 was still in
    before = agencies(date(2026, 4, 30), times["reversal"] - timedelta(microseconds=1))
    assert before["AG-B"]["collected"] == D("100.00")
    # as of 04-10 the loan was in-house; as known before the recall was recorded, it was still AG-A's
    assert {k for k, p in agencies(date(2026, 4, 10)).items() if p["loans"]} == {INHOUSE}
    early = agencies(date(2026, 4, 10), times["recall"] - timedelta(microseconds=1))
    assert early["AG-A"]["loans"] == 1 and INHOUSE not in early  # nothing collected in-house was known yet


def test_the_agency_scope_query_lists_the_loans_an_agency_held_as_of_a_date(ledger):
    times = _two_agencies(ledger)
    appended(ledger, *domain_example("L2"), assigned("AG-A", "2026-03-28", loan_id="L2"))
    runner.catch_up(ledger)
    db = runner.views(ledger)
    assert loans_held_by(db, "AG-A", date(2026, 3, 19)) == []
    assert loans_held_by(db, "AG-A", date(2026, 3, 30)) == ["L1", "L2"]
    assert loans_held_by(db, "AG-A", date(2026, 4, 30)) == ["L2"]  # L1 recalled on 04-01
    assert loans_held_by(db, "AG-A", date(2026, 4, 30), ever=True) == ["L1", "L2"]
    assert loans_held_by(db, "AG-B", date(2026, 4, 30)) == ["L1"]
    assert loans_held_by(db, "AG-A", date(2026, 4, 30), times["recall"] - timedelta(microseconds=1)) == ["L1"]
    assert loans_held_by(db, "NOBODY", date(2026, 4, 30), ever=True) == []
    assert [holder_on(db, "L1", date(2026, 4, d)) for d in (1, 19, 20)] == [None, None, "AG-B"]
    assert holder_on(db, "L1", date(2026, 4, 2), times["recall"] - timedelta(microseconds=1)) == "AG-A"


def test_balances_by_agency_puts_every_loan_no_agency_holds_under_inhouse(store_url):
    from ledger.app import Ledger
    from ledger.config import Settings

    app = Ledger(Settings(db_url=store_url))
    _two_agencies(app)
    appended(app, *domain_example("L2"))
    app.close()
    for day, holders in (("2026-03-25", {"AG-A": 1, INHOUSE: 1}), ("2026-04-10", {INHOUSE: 2})):
        code, out = run("balances", "--as-of", day, "--by", "agency", "--db", store_url, "--json")
        assert code == 0, out
        assert {g["key"]: g["loans"] for g in json.loads(out)["groups"]} == holders
    code, out = run("balances", "--as-of", "2026-03-25", "--by", "agency", "--db", store_url)
    assert code == 0 and "AG-A" in out and "inhouse" in out


def test_channels_and_models_count_applications_decisions_and_their_loans(ledger):
    appended(
        ledger,
        *domain_example("A1"),
        applied("A2", channel="partner-x"),
        approved("A2", model_version="risk-2"),
        funded("A2"),
        applied("A3", channel="partner-x"),
        declined("A3", model_version="risk-2"),
        applied("A4", channel="partner-x"),  # not decided yet
    )
    runner.catch_up(ledger)
    db = runner.views(ledger)
    channels = {p.key: p.figures("channel") for p in partners(db, date(2026, 3, 20), "channel")}
    x = channels["partner-x"]
    assert (x["applications"], x["approved"], x["declined"], x["approval_rate"]) == (3, 1, 1, D("0.5000"))
    assert (x["funded"], x["funded_amount"], x["overdue"], x["total"]) == (1, D("1000.00"), 1, D("1017.00"))
    assert (channels["app"]["applications"], channels["app"]["approval_rate"]) == (1, D("1.0000"))
    models = {p.key: p.figures("model") for p in partners(db, date(2026, 3, 20), "model")}
    assert (models["risk-2"]["applications"], models["risk-2"]["approval_rate"]) == (2, D("0.5000"))
    assert models["risk-1"]["funded"] == 1
    # before the applications' business day, nothing yet
    assert partners(db, date(2026, 2, 27), "channel") == []


# ---- a simulated book: the same figures as balances, and the domain's own ---------------------------------
@pytest.fixture
def book(ledger, simulated_book):
    sim, _ = simulated_book(seed=21, loans=150, days=30)
    runner.catch_up(ledger)
    return ledger


def _cuts(ledger) -> list[datetime | None]:
    """Now, and as known at two moments in the book's history."""
    notes = ledger.recorder.select_notifications(1, 100_000)
    stamps = [ledger.mapper.to_domain_event(n).timestamp for n in notes]
    return [None, stamps[len(stamps) // 2], stamps[(len(stamps) * 4) // 5]]


DAYS = (date(2026, 2, 20), date(2026, 4, 15), date(2026, 6, 30))


def test_each_partys_book_is_the_balances_book_and_its_figures_the_domains_at_any_date_and_known_at(book, store_url):
    """One simulated book (it takes most of the time) for both checks: where partners and balances overlap
    they show the same numbers, and every other figure is the one the domain's loans give, as known then."""
    db = runner.views(book)
    ids = [r[0] for r in db.query("SELECT loan_id FROM proj_loans ORDER BY loan_id")]
    for known_at in _cuts(book):
        loans = [loan for loan in (book.get_loan(i, known_at) for i in ids) if loan is not None]
        for day in DAYS:
            for by in BY:
                got = {p.key: p.figures(by) for p in partners(db, day, by, known_at)}
                groups = portfolio(db, day, by, known_at)
                for g in groups:
                    assert (got[g.key]["loans"], got[g.key]["funded"]) == (g.loans, g.funded), (day, by, known_at)
                    assert {k: got[g.key][k] for k in AMOUNTS} == g.amounts, (day, by, known_at)
                assert {k for k, p in got.items() if p["funded"]} == {g.key for g in groups}, (day, by, known_at)
                assert got == _expected(loans, day, by, got), (day, by, known_at)
    assert {p.key for p in partners(db, DAYS[-1], "agency")} > {INHOUSE}  # agencies hold part of the book
    # and the command line prints those figures as the balances command prints its own
    cut = _cuts(book)[1].isoformat()
    for by in BY:
        code, out = run(
            "report", "partners", "--as-of", DAYS[1], "--by", by, "--known-at", cut, "--db", store_url, "--json"
        )
        assert code == 0, out
        shown = {p["key"]: p for p in json.loads(out)["parties"]}
        code, out = run("balances", "--as-of", DAYS[1], "--by", by, "--known-at", cut, "--db", store_url, "--json")
        assert code == 0, out
        for group in json.loads(out)["groups"]:
            assert {k: shown[group["key"]][k] for k in ("loans", *AMOUNTS)} == {
                k: group[k] for k in ("loans", *AMOUNTS)
            }


def _expected(loans, day: date, by: str, got: dict) -> dict:
    """Each party's figures from the domain's loans (only the keys the domain alone decides; the book's
    amounts are checked against balances above, and balances against the domain in test_projections)."""
    want: dict = {}

    def party(key):
        return want.setdefault(key, {k: v for k, v in got.get(key, {}).items()})

    for k in got:
        party(k).update(funded_amount=D("0.00"), repaid=0, overdue=0, written_off=0)
        party(k).update(written_off_amount=D("0.00"), recovered=D("0.00"))
        if by in ("channel", "model"):
            party(k).update(applications=0, approved=0, declined=0)
    for loan in loans:
        applied_on = loan.applied_at.astimezone(SHANGHAI).date()
        decided = loan.decided_at is not None and loan.decided_at.astimezone(SHANGHAI).date() <= day
        if by == "channel" and applied_on <= day:
            p = party(loan.channel)
            p["applications"] += 1
            if decided:
                p["approved" if loan.decision == "approved" else "declined"] += 1
        if by == "model" and decided:
            p = party(loan.model_version)
            p["applications"] += 1
            p["approved" if loan.decision == "approved" else "declined"] += 1
        if loan.funded_on is None or loan.funded_on > day:
            continue
        key = {
            "bank": loan.bank,
            "channel": loan.channel,
            "agency": loan.collector_on(day),
            "model": loan.model_version,
        }
        p = party(key[by])
        p["funded_amount"] += loan.terms.principal
        state = loan.state_as_of(day)
        if state in ("repaid", "overdue", "written_off"):
            p[state] += 1
        lost = loss(loan.position(day))
        p["written_off_amount"] += lost.written_off
        p["recovered"] += lost.recovered
    if by == "agency":
        for p in want.values():
            p["assigned"], p["assigned_amount"], p["by_bucket"] = 0, D("0.00"), []
            p["collected"], p["collection_rate"] = D("0.00"), None
        buckets: dict = {}
        for loan in loans:
            for spell in loan.assignments:
                if spell.since > day:
                    continue
                line = buckets.setdefault((spell.agency, spell.bucket), [0, D(0), D(0)])
                line[0] += 1
                line[1] += spell.owed
                line[2] += sum(
                    m.amount
                    for m in loan.money_in
                    if m.kind == "collection" and m.agency == spell.agency and m.reversed_by is None
                    and spell.holds_on(m.value_date) and m.value_date <= day
                )  # fmt: skip
            for m in loan.money_in:
                if m.kind == "collection" and m.reversed_by is None and m.value_date <= day:
                    party(m.agency)["collected"] += m.amount
        for (agency, bucket), (n, owed, collected_) in sorted(buckets.items()):
            p = party(agency)
            p["assigned"] += n
            p["assigned_amount"] += owed
            p["by_bucket"].append({"bucket": bucket, "assigned": n, "assigned_amount": owed, "collected": collected_})
        for p in want.values():
            order = ("current", "M1", "M2", "M3", "M3+")
            p["by_bucket"].sort(key=lambda line: order.index(line["bucket"]))
            for line in p["by_bucket"]:
                line["collection_rate"] = _rate(line["collected"], line["assigned_amount"])
            in_spells = sum((line["collected"] for line in p["by_bucket"]), D(0))
            p["collection_rate"] = _rate(in_spells, p["assigned_amount"])
    for p in want.values():
        p["net_loss"] = p["written_off_amount"] - p["recovered"]
        p["loss_rate"] = _rate(p["net_loss"], p["funded_amount"])
        if by in ("channel", "model"):
            p["approval_rate"] = _rate(p["approved"], p["approved"] + p["declined"])
    return want


def _rate(part: D, whole: D) -> D | None:
    return (D(part) / D(whole)).quantize(D("0.0001")) if whole else None


def test_the_partners_report_refuses_what_it_cannot_answer(store_url):
    assert run("report", "partners", "--by", "agency", "--db", store_url)[0] == 2  # --as-of is required
    code, out = run("report", "partners", "--as-of", "2026-04-01", "--by", "product", "--db", store_url)
    assert code == 2 and "'product' is not one of" in out
    code, out = run("report", "partners", "--as-of", "2026-13-01", "--by", "bank", "--db", store_url)
    assert code == 2 and "--as-of" in out
    code, out = run("report", "partners", "--as-of", "2026-04-01", "--by", "bank", "--db", store_url, "--json")
    assert code == 0 and json.loads(out) == {"as_of": "2026-04-01", "by": "bank", "parties": []}
