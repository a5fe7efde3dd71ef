"""Cost caps by date: a loan is judged by the cap in force on its application date, once."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal as D

import pytest
from click.testing import CliRunner
from support.commands import applied, approved

from cli.main import cli
from domain.terms import CostCap, CostCaps
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import ConfigError, settings_from_env
from projections.loan_view import loan_view

SCHEDULE = "0.36;2025-10-01=0.24"


def test_the_cap_in_force_is_the_last_one_dated_on_or_before_the_day():
    caps = CostCaps.parse(SCHEDULE)
    assert caps.on(date(2025, 9, 30)) == CostCap(D("0.36"))
    assert caps.on(date(2025, 10, 1)) == CostCap(D("0.24"), date(2025, 10, 1))
    assert caps.on(date(2030, 1, 1)).rate == D("0.24")


@pytest.mark.parametrize(
    "env,error",
    [
        ({"LEDGER_COST_CAPS": "2025-10-01=0.24"}, "no cap is in force before 2025-10-01"),
        ({"LEDGER_COST_CAPS": "0.36;2026-01-01=0.24;2025-10-01=0.30"}, "increasing date order"),
        ({"LEDGER_COST_CAPS": "0.36;2025-13-01=0.24"}, "'2025-13-01' is not a date"),
        ({"LEDGER_COST_CAPS": "0.36;2025-10-01=abc"}, "'abc' is not a decimal rate"),
        ({"LEDGER_COST_CAPS": "1.5"}, "must be in (0, 1]"),
        ({"LEDGER_COST_CAP": "0.2400001"}, "'0.2400001' has more than 6 decimal places"),
        ({"LEDGER_COST_CAP": "0.36;2025-10-01=0.24"}, "put a schedule in LEDGER_COST_CAPS"),
        ({"LEDGER_COST_CAP": "0.36", "LEDGER_COST_CAPS": "0.36"}, "not both"),
        ({"LEDGER_MAX_AMOUNT": "1e9"}, "LEDGER_MAX_AMOUNT"),
    ],
)
def test_a_bad_cap_setting_is_a_configuration_error_naming_it(env, error):
    with pytest.raises(ConfigError) as e:
        settings_from_env(None, env)
    assert error in str(e.value)


def _apply(app: Ledger, loan_id: str, on: str):
    at = f"{on}T10:00:00+08:00"
    cmds = [applied(loan_id, occurred_at=at), approved(loan_id, occurred_at=at)]  # 31.3% a year
    return app.append([command_from_dict(c) for c in cmds])


def test_a_loan_is_judged_by_the_cap_of_its_application_date_and_never_again(store_url):
    app = Ledger(settings_from_env(store_url, {"LEDGER_COST_CAPS": SCHEDULE}))
    before, after = _apply(app, "OLD", "2025-09-30"), _apply(app, "NEW", "2025-10-01")
    app.close()
    assert [o.status for o in before] == ["appended", "appended"]
    assert after[1].status == "rejected"
    assert "annualised cost 31.2857% exceeds the cap of 24.00% in force since 2025-10-01" in after[1].error
    assert "(applied 2025-10-01)" in after[1].error

    # a stricter cap configured later re-judges nothing: the old approval replays as it was
    app = Ledger(settings_from_env(store_url, {"LEDGER_COST_CAP": "0.10"}))
    view = loan_view(app.get_loan("OLD"), app.loan_events("OLD"), date(2025, 10, 5), None)
    app.close()
    assert view["state"] == "approved"
    assert view["terms"]["annualised_cost"] == "0.312857"
    assert (view["terms"]["cost_cap"], view["terms"]["cost_cap_since"]) == ("0.36", None)


def test_loan_show_names_the_cost_and_the_cap_it_was_judged_by(store_url):
    env = {"LEDGER_DB": store_url, "LEDGER_COST_CAPS": "0.20;2025-01-01=0.36"}
    runner = CliRunner(env=env)
    runner.invoke(cli, ["init"])
    line = "\n".join(json.dumps(c) for c in (applied("C1", occurred_at="2025-06-01T10:00:00+08:00"), approved("C1")))
    assert runner.invoke(cli, ["append", "-"], input=line).exit_code == 0
    shown = json.loads(runner.invoke(cli, ["loan", "show", "C1", "--json"]).output)
    assert shown["terms"]["cost_cap"] == "0.36" and shown["terms"]["cost_cap_since"] == "2025-01-01"
