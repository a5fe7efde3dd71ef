"""Settlement with the funding banks (issue 26): agreements fixed at funding, the bank-day statement
recorded once, reversals carried over, the guarantee, and each bank's payable in the journal."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from support.commands import applied, approved, funded, repaid

from cli.main import cli
from domain.bank_settlements import BankSettlements
from domain.journal import FAR_FUTURE, balances_as_of, journal_lines
from domain.loan import Loan
from ledger.app import Ledger
from ledger.commands import Remitted, command_from_dict
from ledger.config import Settings, parse_bank_terms
from ledger.handlers import handle
from ledger.settle import recorded_settlement, statement_of, stream_at
from projections import runner
from projections.balances import account_balances, bank_payables, trial_balance
from simulator.platform import Simulator
from simulator.run import AGREEMENTS, run_simulation

DOCS = Path(__file__).parent.parent / "docs"
TERMS = "BANKA=rate:0.08,guarantee_dpd:60"


def ledger_cli(*args, env=None, code=0):
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"LEDGER_BANK_TERMS": TERMS, **(env or {})})
    assert result.exit_code == code, result.output
    return result.output


def ex1(loan_id="EX1"):
    """The worked example of docs/rules.md: funded 1,000.00 on 2026-03-01, 500.00 repaid on 2026-03-08."""
    return [applied(loan_id), approved(loan_id), funded(loan_id), repaid(loan_id, ref=f"R-{loan_id}")]


def append(store_url, commands, env=None):
    lines = "".join(json.dumps(c) + "\n" for c in commands)
    result = CliRunner().invoke(
        cli, ["append", "-", "--db", store_url], input=lines, env={"LEDGER_BANK_TERMS": TERMS, **(env or {})}
    )
    assert result.exit_code == 0, result.output


def reversal(loan_id, reverses, day="2026-03-09"):
    return {
        "type": "reversed",
        "loan_id": loan_id,
        "idempotency_key": f"rev-{reverses}",
        "occurred_at": f"{day}T10:00:00+08:00",
        "reverses": reverses,
        "reason": "the bank returned it",
    }


def statement_blocks() -> list[str]:
    """The statements quoted in docs/rules.md's settlement section, in order."""
    text = (DOCS / "rules.md").read_text(encoding="utf-8")
    section = text[text.index("## Settlement with the funding banks") :]
    return re.findall(r"```\n(bank,value_date,loan_id,kind,amount\n.*?)```", section, flags=re.S)


def test_the_statements_of_rules_md_are_what_settle_writes(store_url, tmp_path):
    """The worked numbers: 493.10 + 0.76 on the repayment's day; at DPD 60, 506.90 + 8.15; the payable
    is then zero, the trial balance too, and balances --by bank says so."""
    remitted, compensated, _ = statement_blocks()
    append(store_url, ex1())
    out = tmp_path / "s1.csv"
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--out", out, "--db", store_url)
    assert out.read_text(encoding="utf-8") == remitted
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-05-13", "--db", store_url)  # DPD 59: nothing
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-05-14", "--out", out, "--db", store_url)
    assert out.read_text(encoding="utf-8") == compensated
    # after the compensation the loan's later money is the platform's
    append(store_url, [repaid("EX1", ref="R-late", amount="100.00", value_date="2026-05-20")])
    summary = json.loads(ledger_cli("settle", "--bank", "BANKA", "--date", "2026-05-20", "--json", "--db", store_url))
    assert summary["lines"] == 0 and summary["total"] == "0.00"
    book = json.loads(ledger_cli("balances", "--as-of", "2026-06-01", "--json", "--db", store_url))
    assert book["banks"] == [
        {
            "bank": "BANKA",
            "funded": "1000.00",
            "remitted": "493.10",
            "compensated": "506.90",
            "interest": "8.91",
            "owed": "0.00",
        }
    ]
    assert book["trial_balance"] == "0.00"
    accounts = json.loads(ledger_cli("balances", "--as-of", "2026-05-14", "--accounts", "--json", "--db", store_url))
    assert accounts["accounts"]["bank_interest_expense"] == "8.91"
    assert accounts["accounts"]["funding_payable:BANKA"] == "0.00"


def test_a_reversal_after_a_remittance_is_a_negative_line_the_next_day(store_url, tmp_path):
    *_, reversed_back = statement_blocks()
    append(store_url, ex1())
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--db", store_url)
    append(store_url, [reversal("EX1", "R-EX1")])
    out = tmp_path / "s.csv"
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-09", "--out", out, "--db", store_url)
    assert out.read_text(encoding="utf-8") == reversed_back
    book = json.loads(ledger_cli("balances", "--as-of", "2026-03-09", "--json", "--db", store_url))
    assert book["banks"][0]["owed"] == "1000.00" and book["banks"][0]["remitted"] == "0.00"


def test_settling_a_bank_day_again_adds_nothing_and_the_order_is_kept(store_url, tmp_path):
    append(store_url, ex1())
    first = json.loads(ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--json", "--db", store_url))
    again = json.loads(ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--json", "--db", store_url))
    assert first["appended"] == 1 and not first["already_settled"]
    assert again["appended"] == 0 and again["already_settled"]
    assert again["lines_sha256"] == first["lines_sha256"] and again["total"] == first["total"] == "493.86"
    app = Ledger(Settings(db_url=store_url))
    try:
        assert len(app.loan_events("EX1")) == 5  # applied, scored, funded, repaid, one remitted
    finally:
        app.close()
    earlier = ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-07", "--db", store_url, code=2)
    assert "BANKA is settled through 2026-03-08; 2026-03-07 comes before it" in earlier
    tomorrow = date.today() + timedelta(days=2)
    future = ledger_cli("settle", "--bank", "BANKA", "--date", tomorrow, "--db", store_url, code=2)
    assert "only a day that has begun can be closed" in future
    unknown = ledger_cli("settle", "--bank", "NOBANK", "--date", "2026-03-08", "--db", store_url, code=2)
    assert "no loan was funded by NOBANK by 2026-03-08" in unknown
    garbled = ledger_cli("settle", "--bank", "BANK A;", "--date", "2026-03-08", "--db", store_url, code=2)
    assert "'BANK A;' is not a bank" in garbled and "Traceback" not in garbled
    # the bank-days are proved unedited with the loans (each fact with its idempotency record)
    assert json.loads(ledger_cli("verify", "--json", "--db", store_url))["ok"] is True
    # and the bank's stream is no loan, whatever its name
    assert "no loan settlements:BANKA" in ledger_cli("loan", "show", "settlements:BANKA", "--db", store_url, code=1)


@pytest.mark.parametrize(
    ("terms", "named"),
    [
        ("BANKA", "'BANKA' must be BANK=rate:R"),
        ("BANKA=rate:8%", "BANKA: rate '8%'"),
        ("BANKA=rate:0.08,guarantee:60", "BANKA: 'guarantee:60' must be rate:R or guarantee_dpd:N"),
        ("BANKA=rate:0.08,guarantee_dpd:-1", "BANKA: guarantee_dpd '-1'"),
        ("BANKA=rate:1.5", "BANKA: rate 1.5 must be from 0 to 1"),
        ("BANKA=rate:0.08;BANKA=rate:0.09", "bank 'BANKA' has two agreements"),
    ],
)
def test_a_malformed_agreement_is_refused_naming_the_part(tmp_path, terms, named):
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger_cli("init", "--db", url)
    out = ledger_cli(
        "settle", "--bank", "BANKA", "--date", "2026-03-08", "--db", url, env={"LEDGER_BANK_TERMS": terms}, code=2
    )
    assert "LEDGER_BANK_TERMS" in out and named in out


def test_the_agreement_is_fixed_at_funding_and_a_bank_without_one_gets_its_principal(store_url):
    append(store_url, ex1())
    append(store_url, ex1("EX2"), env={"LEDGER_BANK_TERMS": ""})  # funded while BANKA had no agreement
    changed = {"LEDGER_BANK_TERMS": "BANKA=rate:0.5"}  # a new agreement does not re-price loans funded
    out = json.loads(
        ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--json", "--db", store_url, env=changed)
    )
    assert (out["principal"], out["interest"]) == ("986.20", "0.76")  # 493.10 each; interest only for EX1
    app = Ledger(Settings(db_url=store_url))
    try:
        ex1_funded = next(e for e in app.loan_events("EX1") if isinstance(e, Loan.Funded))
        ex2_funded = next(e for e in app.loan_events("EX2") if isinstance(e, Loan.Funded))
        assert ex1_funded.bank_terms == {"rate": D("0.08"), "guarantee_dpd": 60}
        assert "bank_terms" not in vars(ex2_funded)  # stored exactly as before agreements existed
    finally:
        app.close()


def _loan_with(terms: str, commands: list[dict]) -> Loan:
    s = Settings(bank_terms=parse_bank_terms(terms))
    loan = None
    for c in commands:
        loan = handle(loan, command_from_dict(c), s)
    assert loan is not None
    return loan


def _remit(loan: Loan, day: date) -> None:
    cmd = Remitted.model_validate(
        {
            "type": "remitted",
            "loan_id": loan.loan_id,
            "bank": "BANKA",
            "value_date": day.isoformat(),
            "idempotency_key": f"settle:BANKA:{day}:{loan.loan_id}",
            "occurred_at": f"{day}T23:59:59+08:00",
        }
    )
    try:
        handle(loan, cmd, Settings())
    except Exception as e:  # nothing to remit that day
        assert "nothing to remit" in str(e)


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(st.integers(0, 39), st.integers(1, 60_000), st.one_of(st.none(), st.integers(1, 10))),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["0.08", "0.09", "0.123", "0"]),
)
def test_settled_day_by_day_the_bank_gets_its_principal_and_exactly_its_nightly_interest(payments, rate):
    """Whatever the partial repayments, and reversals of them days after they were remitted, settled
    every day: each day the loan's payable is the principal still owed (a reversal comes back as a
    negative line the day it is known), and once the loan is repaid the bank got exactly its principal
    and the sum over nights of round_half_up(P(d) x rate / 365), each night counted on its own."""
    funded_on = date(2026, 3, 1)
    loan = _loan_with(f"BANKA=rate:{rate}", [applied(), approved(grace_days=0), funded()])
    arriving: dict[int, list[dict]] = {}  # day recorded -> commands
    for i, (offset, fen, reversed_after) in enumerate(sorted(payments, key=lambda p: p[:2])):
        day = str(funded_on + timedelta(offset))
        arriving.setdefault(offset, []).append(repaid(ref=f"R{i}", amount=f"{fen / 100:.2f}", value_date=day))
        if reversed_after is not None and offset + reversed_after <= 40:
            on = funded_on + timedelta(offset + reversed_after)
            arriving.setdefault(offset + reversed_after, []).append(reversal("L1", f"R{i}", str(on)))
    payoff = str(funded_on + timedelta(days=41))
    arriving[41] = [repaid(ref="PAYOFF", amount="2000.00", value_date=payoff)]  # repays the rest
    terms = Settings(bank_terms=parse_bank_terms(f"BANKA=rate:{rate}"))
    for n in range(42):
        day = funded_on + timedelta(days=n)
        for c in arriving.get(n, []):
            handle(loan, command_from_dict(c), terms)
        _remit(loan, day)
        owed = loan.position(day).outstanding.principal
        payable = balances_as_of(journal_lines(loan, loan.position(FAR_FUTURE)), day).get("funding_payable:BANKA")
        assert -(payable or 0) == owed
    # the nightly figure, counted independently night by night on the principal as finally known
    expected = 0
    for n in range(41):
        night = funded_on + timedelta(days=n)
        p = int(loan.position(night).outstanding.principal * 100)
        expected += int((D(p) * D(rate) / 365 + D("0.5")).to_integral_value(rounding="ROUND_FLOOR"))
    assert sum(r.interest for r in loan.remittances) == D(expected) / 100
    assert sum(r.principal for r in loan.remittances) == D("1000.00")


@pytest.fixture
def agreed_ledger(store_url):
    app = Ledger(Settings(db_url=store_url, bank_terms=parse_bank_terms(AGREEMENTS)))
    yield app
    app.close()


def test_a_book_settled_day_by_day_owes_each_bank_its_principal_outstanding(agreed_ledger, store_url, tmp_path):
    """The issue's done condition, on both stores: after settling every bank every simulated day, each
    bank's funding payable is the principal its borrowers still owe on loans it was not compensated for,
    and the guarantee was used."""
    app = agreed_ledger
    sim = Simulator(26, 120, date(2026, 1, 1), days=20)
    report = run_simulation(app, sim, until=date(2026, 3, 31))  # the first loans past DPD 60 (the guarantee)
    assert not report.unplanned_rejections, report.unplanned_rejections[:3]
    last = report.last_day
    assert last is not None
    runner.catch_up(app)
    db = runner.views(app)
    owed_by_bank: dict[str, D] = {}
    compensated = 0
    loans = app.get_loans([p.loan_id for p in sim.plan() if p.funded_on is not None])
    for loan in loans.values():
        if loan is None or loan.funded_on is None or loan.bank is None:
            continue
        owed_by_bank.setdefault(loan.bank, D("0.00"))
        if loan.compensated_on is not None:
            compensated += 1
            continue
        owed_by_bank[loan.bank] += loan.position(last).outstanding.principal
    payables = {b.bank: b for b in bank_payables(db, last)}
    assert {bank: payables[bank].owed for bank in owed_by_bank} == owed_by_bank
    assert compensated > 0  # ICBC-X's guarantee was reached
    assert payables["ICBC-X"].compensated > 0 and payables["CMB-X"].compensated == 0
    assert payables["ICBC-X"].interest > 0 and payables["CMB-X"].interest > 0
    assert report.settled["ICBC-X"]["principal"] == payables["ICBC-X"].remitted
    assert trial_balance(db, last) == 0
    # the bank-day's recorded statement is what the loans' events give
    for bank in ("ICBC-X", "CMB-X"):
        recorded = recorded_settlement(app, bank, last)
        assert recorded is not None and recorded.lines_sha256 == statement_of(app, bank, last).sha256
    _the_journal_export_sums_to_the_balances(app, db, store_url, tmp_path, report.first_day, last)
    assert json.loads(ledger_cli("verify", "--json", "--db", store_url))["ok"] is True


def _sums(rows) -> dict[str, D]:
    totals: dict[str, D] = {}
    for account, debit, credit in rows:
        totals[account] = totals.get(account, D("0.00")) + D(debit) - D(credit)
    return {a: v for a, v in totals.items() if v}


def _the_journal_export_sums_to_the_balances(app, db, store_url, tmp_path, first, last):
    """ledger journal export: per account, the rows of FROM..TO sum to balances --as-of TO less
    balances --as-of the day before FROM (from the book's first day: balances --accounts itself), in
    CSV and in Parquet, with every accrual night a row of its own."""
    import csv

    import pyarrow.parquet as pq

    middle = first + (last - first) / 2
    for start, end in ((first, middle), (middle + timedelta(days=1), last)):
        out = tmp_path / "journal.csv"
        ledger_cli("journal", "export", "--from", start, "--to", end, "--out", out, "--db", store_url)
        with open(out, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert all(start <= date.fromisoformat(r["date"]) <= end for r in rows)
        exported = _sums((r["account"], r["debit"], r["credit"]) for r in rows)
        before = account_balances(db, start - timedelta(days=1))
        after = account_balances(db, end)
        wanted = {a: after.get(a, D(0)) - before.get(a, D(0)) for a in {*after, *before}}
        assert exported == {a: v for a, v in wanted.items() if v}
        parquet = tmp_path / "journal.parquet"
        ledger_cli(
            "journal",
            "export",
            "--from",
            start,
            "--to",
            end,
            "--out",
            parquet,
            "--format",
            "parquet",
            "--db",
            store_url,
        )
        table = pq.read_table(parquet).to_pylist()
        assert _sums((r["account"], r["debit"], r["credit"]) for r in table) == exported
        assert any(r["night"] is not None for r in table) and any(r["event"].startswith("remitted:") for r in table)


def test_a_bank_reads_its_own_settlement_over_http_and_no_one_elses(store_url):
    """GET /v1/banks/{bank}/settlements/{date}: the bank's token and the platform's read the statement
    ledger settle recorded (same lines, same digest); another bank's token, a channel's and an unsettled
    day get 404; lines come a page of loans at a time."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.tokens import create_token

    append(store_url, [*ex1("EX1"), *ex1("EX2"), *ex1("EX3")])
    append(store_url, [{**c, "bank": "BANKB"} if c["type"] == "funded" else c for c in ex1("OTHER")])
    printed = json.loads(ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--json", "--db", store_url))
    app = create_app(Settings(db_url=store_url, bank_terms=parse_bank_terms(TERMS)))
    with TestClient(app, raise_server_exceptions=False) as client:
        tokens = {
            who: create_token(app.state.ledger, who, ["read"], party=party)
            for who, party in (("platform", None), ("a", "bank:BANKA"), ("b", "bank:BANKB"), ("c", "channel:app"))
        }

        def get(who, path, **params):
            return client.get(path, params=params, headers={"Authorization": f"Bearer {tokens[who]}"})

        path = "/v1/banks/BANKA/settlements/2026-03-08"
        mine = get("a", path).json()
        assert mine == get("platform", path).json()
        assert (mine["total"], mine["lines_sha256"], mine["loans_settled"]) == ("1481.58", printed["lines_sha256"], 3)
        assert [(line["loan_id"], line["kind"], line["amount"]) for line in mine["lines"]] == [
            (loan_id, kind, amount)
            for loan_id in ("EX1", "EX2", "EX3")
            for kind, amount in (("principal", "493.10"), ("interest", "0.76"))
        ]
        first = get("a", path, limit=2).json()
        rest = get("a", path, limit=2, cursor=first["next_cursor"]).json()
        assert first["lines"] + rest["lines"] == mine["lines"] and rest["next_cursor"] is None
        for who in ("b", "c"):
            refused = get(who, path)
            assert refused.status_code == 404 and "EX1" not in refused.text, who
        assert get("platform", "/v1/banks/BANKA/settlements/2026-03-09").status_code == 404  # not settled
        assert get("platform", "/v1/banks/BANKB/settlements/2026-03-08").status_code == 404
        assert get("platform", "/v1/banks/BANKA/settlements/2026-02-30").status_code == 422


def test_remittance_rows_of_a_bank_file_reconcile_against_the_settled_bank_days(store_url, tmp_path):
    """A settled bank-day is one remittance (reference settle:<bank>:<day>, its total, negative when a
    reversal exceeds it): matched, or the same breaks as any movement."""
    append(store_url, ex1())
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--db", store_url)
    append(store_url, [reversal("EX1", "R-EX1")])
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-09", "--db", store_url)
    header = "bank_ref,loan_id,type,amount,value_date\n"
    header += "R-EX1,EX1,repayment,500.00,2026-03-08\nrev-R-EX1,EX1,reversal,500.00,2026-03-09\n"  # matched too
    day1 = "settle:BANKA:2026-03-08,,remittance,493.86,2026-03-08\n"
    day2 = "settle:BANKA:2026-03-09,,remittance,-493.86,2026-03-09\n"

    def reconcile(text, code):
        path = tmp_path / "bank.csv"
        path.write_text(header + text, encoding="utf-8")
        return json.loads(ledger_cli("reconcile", path, "--bank", "BANKA", "--json", "--db", store_url, code=code))

    clean = reconcile(day1 + day2, 0)
    assert clean["matched"] == 4 and clean["totals"]["remittance"] == {"bank": "0.00", "ledger": "0.00"}
    wrong = reconcile(day1.replace("493.86", "493.68") + day2, 1)
    assert [b["kind"] for b in wrong["breaks"]] == ["amount_mismatch"]
    assert wrong["net_difference"] == "0.18"  # the bank says less went out to it than the ledger remitted
    missing = reconcile(day1 + day2.replace("2026-03-09\n", "2026-03-08\n").replace("settle:BANKA:2026-03-09", "X"), 1)
    assert sorted(b["kind"] for b in missing["breaks"]) == ["missing_in_bank", "missing_in_ledger"]


def test_the_stored_form_of_the_settlement_events_is_pinned(store_url):
    """The bytes a funding under an agreement, a remittance and a bank-day store (time stamps aside):
    a later refactor that changed them would change what replay reads."""
    append(store_url, ex1())
    ledger_cli("settle", "--bank", "BANKA", "--date", "2026-03-08", "--db", store_url)
    app = Ledger(Settings(db_url=store_url))
    try:
        states = {
            n.topic.rpartition(".")[2]: json.loads(n.state)
            for n in app.recorder.select_notifications(start=1, limit=100)
        }
        # the bank's stream as settle makes it in memory to record its next day is what its first fact gives
        made, read = stream_at("BANKA", 1), app.repository.get(BankSettlements.create_id("BANKA"), version=1)
        clock = ("_created_on", "_modified_on")
        assert {k: v for k, v in vars(made).items() if k not in clock} == {
            k: v for k, v in vars(read).items() if k not in clock
        }
    finally:
        app.close()
    for state in states.values():
        state.pop("timestamp")
    decimal = lambda text: {"_type_": "decimal_str", "_data_": text}  # noqa: E731
    on = {"_type_": "date_iso", "_data_": "2026-03-08"}
    assert states["Funded"]["bank_terms"] == {"rate": decimal("0.08"), "guarantee_dpd": 60}
    assert states["Remitted"] == {
        "bank": "BANKA",
        "value_date": on,
        "principal": decimal("493.10"),
        "interest": decimal("0.76"),
        "compensation_principal": decimal("0.00"),
        "compensation_interest": decimal("0.00"),
        "idempotency_key": "settle:BANKA:2026-03-08:EX1",
        "occurred_at": {"_type_": "datetime_iso", "_data_": "2026-03-08T23:59:59+08:00"},
    }
    settled = {k: v for k, v in states["Settled"].items() if k != "lines_sha256"}
    assert settled == {
        "value_date": on,
        "loans": 1,
        "lines": 2,
        "principal": decimal("493.10"),
        "interest": decimal("0.76"),
        "compensation": decimal("0.00"),
        "total": decimal("493.86"),
        "idempotency_key": "settle:BANKA:2026-03-08",
    }


def test_two_runs_settling_one_bank_day_at_once_record_it_once(store_url):
    """Two processes' worth of `ledger settle` on the same bank-day, started together: each loan is
    remitted once, the bank-day recorded once, and both print the same statement."""
    import threading

    from ledger.settle import run_settle

    append(store_url, [c for n in range(6) for c in ex1(f"EX{n}")])
    day = date(2026, 3, 8)
    start, results, errors = threading.Barrier(2), [], []

    def settle() -> None:
        app = Ledger(Settings(db_url=store_url))
        try:
            start.wait()
            results.append(run_settle(app, "BANKA", day, day))
        except Exception as e:  # reported below, with the other run's result
            errors.append(repr(e))
        finally:
            app.close()

    runs = [threading.Thread(target=settle) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    assert not errors, errors
    assert [r.sha256 for r in results] == [results[0].sha256] * 2 and results[0].loans == 6
    assert sum(r.appended for r in results) == 6  # every loan's part appended by one run or the other
    app = Ledger(Settings(db_url=store_url))
    try:
        facts = [n for n in app.recorder.select_notifications(start=1, limit=1000) if n.topic.endswith(".Settled")]
        assert len(facts) == 1
        assert all(len([e for e in app.loan_events(f"EX{n}") if isinstance(e, Loan.Remitted)]) == 1 for n in range(6))
    finally:
        app.close()


class _Stopped(Exception):
    """The process stopping between the loans' remittances and the bank-day's fact."""


def test_a_run_stopped_before_recording_its_bank_day_is_finished_by_the_next(store_url, monkeypatch):
    """The loans' remittances went in, then the run stopped before the bank-day's fact: the next run
    appends nothing, and records the fact once, with every loan's part on its statement."""
    import ledger.settle as settle_module

    append(store_url, [c for n in range(3) for c in ex1(f"EX{n}")])
    day = date(2026, 3, 8)
    app = Ledger(Settings(db_url=store_url))
    try:

        def stop(*args, **kwargs):
            raise _Stopped

        monkeypatch.setattr(settle_module, "_record", stop)
        with pytest.raises(_Stopped):
            settle_module.run_settle(app, "BANKA", day, day)
        monkeypatch.undo()
        assert recorded_settlement(app, "BANKA", day) is None
        assert all(app.get_loan(f"EX{n}").remittances[-1].day == day for n in range(3))  # their parts are in
        again = settle_module.run_settle(app, "BANKA", day, day)
        assert (again.appended, again.loans, again.total, again.already_settled) == (0, 3, D("1481.58"), False)
        fact = recorded_settlement(app, "BANKA", day)
        assert fact is not None and (fact.loans, fact.total) == (3, D("1481.58"))
        assert fact.lines_sha256 == again.sha256 == statement_of(app, "BANKA", day).sha256
    finally:
        app.close()


def test_a_repayment_landing_during_the_settlement_is_on_the_statement_as_stored(store_url, monkeypatch):
    """Another writer's repayment lands between the settlement's read of a loan and its remittance: the
    remittance is worked out again on the loan as it then stands, and the statement printed and the
    digest recorded are those of the stored remittance, not of the loan as the run first read it."""
    from ledger.settle import run_settle

    append(store_url, ex1())
    day = date(2026, 3, 8)
    app = Ledger(Settings(db_url=store_url))
    other = Ledger(Settings(db_url=store_url))
    try:
        settle_append = app.append

        def racing(commands, **kwargs):
            if any(c.type == "remitted" for c in commands) and other.get_loan("EX1").version == 4:
                late = command_from_dict(repaid("EX1", ref="R-late", amount="100.00"))
                assert [o.status for o in other.append([late])] == ["appended"]
            return settle_append(commands, **kwargs)

        monkeypatch.setattr(app, "append", racing)
        statement = run_settle(app, "BANKA", day, day)
        assert statement.appended == 1
        assert statement.total_of("principal") == D("593.10")  # 493.10 of the first 500.00, all of the 100.00
        fact = recorded_settlement(app, "BANKA", day)
        assert fact is not None and fact.principal == D("593.10")
        assert fact.lines_sha256 == statement.sha256 == statement_of(app, "BANKA", day).sha256
    finally:
        other.close()
        app.close()


def test_the_simulators_bank_days_saved_together_store_the_log_each_run_alone_stores(new_store, monkeypatch):
    """The simulator saves a day's bank-day facts that no loan's remittance comes between in one
    transaction (they share its recorded time): the log holds the same events, in the same order, as
    when each bank-day is recorded by its own run, and it verifies."""
    import simulator.run as simulation

    def log(url: str, alone: bool) -> tuple[list[tuple], int, int]:
        if alone:  # each run records its bank-day itself, as `ledger settle` does
            settle = simulation.run_settle
            monkeypatch.setattr(simulation, "run_settle", lambda *a, pending=None, **k: settle(*a, **k))
        app = Ledger(Settings(db_url=url))
        try:
            report = run_simulation(app, Simulator(7, 20, date(2026, 1, 1), days=8), until=date(2026, 1, 20))
            assert not report.unplanned_rejections and report.settled
            events, stamps, settled = [], set(), 0
            for n in app.notifications():
                state = json.loads(n.state)
                stamp = state.pop("timestamp")
                events.append((n.originator_id, n.originator_version, n.topic, state))
                if n.topic.endswith(".Settled"):
                    settled, stamps = settled + 1, stamps | {stamp["_data_"]}
            return events, settled, len(stamps)
        finally:
            app.close()
            monkeypatch.undo()

    together, apart = new_store(), new_store()
    events, settled, transactions = log(together, alone=False)
    events_apart, settled_apart, transactions_apart = log(apart, alone=True)
    assert events == events_apart
    assert any(topic.endswith(".Remitted") for _, _, topic, _ in events)  # remittances between bank-days
    assert transactions_apart == settled_apart == settled > transactions  # alone: one transaction each
    assert json.loads(ledger_cli("verify", "--json", "--db", together))["ok"] is True


def test_bank_days_waiting_together_are_recorded_alone_when_another_run_records_one_first(store_url):
    """Two banks' bank-days wait to be saved in one transaction, and another run records one of them
    first: the joint save writes nothing, then each is recorded alone, the one already there as a
    repeat with the same lines; one fact per bank-day."""
    from ledger.settle import PendingFacts, banks_days, run_settle

    append(store_url, [*ex1("EX1"), *[{**c, "bank": "BANKB"} if c["type"] == "funded" else c for c in ex1("EX2")]])
    day = date(2026, 3, 8)
    app, other = Ledger(Settings(db_url=store_url)), Ledger(Settings(db_url=store_url))
    try:
        pending = PendingFacts()
        a = run_settle(app, "BANKA", day, day, pending=pending)
        b = run_settle(app, "BANKB", day, day, candidates=[], pending=pending)  # nothing of BANKB's that day
        assert recorded_settlement(app, "BANKA", day) is None and len(pending.facts) == 2
        first = run_settle(other, "BANKA", day, day)
        assert (first.appended, first.sha256) == (0, a.sha256)
        pending.flush(app)
        assert a.already_settled and not b.already_settled and not pending.facts
        for bank, statement in (("BANKA", a), ("BANKB", b)):
            fact = recorded_settlement(app, bank, day)
            assert fact is not None and fact.lines_sha256 == statement.sha256
        facts = [n for n in app.notifications() if n.topic.endswith(".Settled")]
        assert len(facts) == 2 and b.total == D("0.00") and a.total == D("493.86")
        # where each bank stands, read for them all at once, is what the library reads stream by stream
        stood = banks_days(app, ["BANKA", "BANKB", "NOBANK"])
        assert stood["NOBANK"] is None
        for bank, statement in (("BANKA", a), ("BANKB", b)):
            stream = list(app.repository.event_store.get(BankSettlements.create_id(bank), desc=True, limit=1))
            days = stood[bank]
            assert days is not None and days.version == stream[0].originator_version == 2
            assert days.last is not None and (days.last.value_date, days.last.lines_sha256) == (day, statement.sha256)
    finally:
        other.close()
        app.close()
