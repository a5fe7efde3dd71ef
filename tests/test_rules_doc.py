"""docs/rules.md and docs/contract.md say what the ledger says: their figures for EX1, read from the
pages themselves, against the ledger after appending the example files in order."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from ledger.commands import COMMAND_TYPES

DOCS = Path(__file__).parent.parent / "docs"


def run(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def ex1(store_url):
    """A store holding the example files, appended in the contract's order."""
    for kind in COMMAND_TYPES:
        out = run("append", DOCS / "examples" / f"{kind}.jsonl", "--db", store_url)
        assert "rejected 0" in out, (kind, out)
    return store_url


def table(text: str, header: str) -> list[list[str]]:
    """The rows of the markdown table whose header row starts with ``header``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def show(db: str, as_of: str, *more: str) -> dict:
    return json.loads(run("loan", "show", "EX1", "--as-of", as_of, "--json", "--db", db, *more))


def test_the_ex1_table_of_rules_md_is_what_loan_show_says(ex1):
    rows = table((DOCS / "rules.md").read_text(encoding="utf-8"), "| as of | principal | interest | fee |")
    assert len(rows) == 10
    for as_of, principal, interest, fee, penalty, capped, total, dpd, bucket, _why in rows:
        v = show(ex1, as_of)
        b = v["balances"]
        got = (b["principal"], b["interest"], b["fee"], b["penalty"], v["capped"]["total"], b["total"])
        assert got == (principal, interest, fee, penalty, capped, total), as_of
        assert (str(v["dpd"]), v["bucket"]) == (dpd, bucket), as_of


def _amount(cell: str) -> str:
    """``-1,000.00`` or ``-5.25 (3.50 + 1.75)`` -> the ledger's ``-1000.00``."""
    return cell.split(" ")[0].replace(",", "")


def test_the_trial_balance_by_account_of_rules_md_is_what_balances_says(ex1):
    rows = table((DOCS / "rules.md").read_text(encoding="utf-8"), "| account | balance |")
    out = json.loads(run("balances", "--as-of", "2026-04-10", "--accounts", "--json", "--db", ex1))
    documented = {row[0].strip("`"): _amount(row[1]) for row in rows if row[0] != "trial balance"}
    assert documented == {k: v for k, v in out["accounts"].items() if v != "0.00" or k in documented}
    assert out["trial_balance"] == "0.00"


def test_the_figures_quoted_in_the_text_of_rules_md(ex1):
    accounts = lambda day, *more: json.loads(  # noqa: E731
        run("balances", "--as-of", day, "--accounts", "--json", "--db", ex1, *more)
    )["accounts"]
    after_reversal = accounts("2026-06-20")
    assert (after_reversal["write_off_expense"], after_reversal["penalty_income"]) == ("555.89", "-45.64")
    assert after_reversal["memo:written_off:principal"] == "506.90"
    assert after_reversal["memo:written_off_contra"] == "-555.89"
    settled = accounts("2026-07-03")
    assert (settled["recovery_income"], settled["cash_in_transit:BANKA"]) == ("-510.25", "1010.25")
    assert all(v == "0.00" for k, v in settled.items() if k.startswith("memo:"))
    # as known before the reversal: the collection paid 13.15 penalty, 1.75 interest, 1.60 fee, 183.50 principal
    write_off = next(e for e in show(ex1, "2026-06-20")["events"] if e["type"] == "written_off")
    then = accounts("2026-06-20", "--known-at", write_off["recorded_at"])
    assert (then["cash_in_transit:BANKA"], then["write_off_expense"]) == ("700.00", "344.13")
    before = show(ex1, "2026-04-10", "--known-at", write_off["recorded_at"])
    assert (before["balances"]["principal"], before["balances"]["total"]) == ("323.40", "323.40")
    at_write_off = show(ex1, "2026-06-14", "--known-at", write_off["recorded_at"])
    assert (at_write_off["balances"]["penalty"], at_write_off["balances"]["total"]) == ("20.73", "344.13")
    assert show(ex1, "2026-07-01")["balances"]["overpayment"] == "9.75"
    ceiling = show(ex1, "2026-04-10")["ceiling"]
    assert (ceiling["principal_days"], ceiling["ceiling"]) == ("23727.70", "23.40")


def _json_block_after(text: str, marker: str) -> dict:
    after = text[text.index(marker) :]
    return json.loads(re.search(r"```json\n(.*?)```", after, re.S).group(1))


def test_the_json_examples_of_contract_md_are_what_the_ledger_prints(ex1):
    text = (DOCS / "contract.md").read_text(encoding="utf-8")
    documented = _json_block_after(text, "`ledger loan show EX1 --as-of 2026-03-20 --json`")
    shown = show(ex1, "2026-03-20")
    for key, value in documented.items():
        if key != "events":
            assert shown[key] == value, key
    listed = _json_block_after(text, "`ledger loan list --json`")
    out = json.loads(run("loan", "list", "--as-of", listed["as_of"], "--json", "--db", ex1))
    assert [x for x in out["loans"] if x["loan_id"] == "EX1"] == listed["loans"]
    balances = _json_block_after(text, "`ledger balances --json`")
    out = json.loads(run("balances", "--as-of", balances["as_of"], "--json", "--db", ex1))
    assert out["groups"] == balances["groups"] and out["trial_balance"] == "0.00"
