"""`ledger report models` and `GET /v1/reports/models`: each model version's report card, from the training rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from support.commands import applied, approved, declined, domain_example, repaid
from support.simulation import START, simulated_ledger

from cli.main import cli
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings
from projections.model_report import auc, ks, psi_band
from simulator.platform import Simulator
from simulator.run import run_simulation

LATER = "2100-01-01T00:00:00+00:00"


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_hand_built_book_gives_the_figures_a_risk_analyst_would_count(ledger):
    good = [*domain_example("GOOD"), repaid("GOOD", ref="G-R", amount="1012.00", value_date="2026-03-15")]
    bad = [
        applied("BAD", idempotency_key="app-BAD"),
        approved("BAD", score="0.70"),
        *domain_example("BAD")[2:],
    ]
    no = [applied("NO", idempotency_key="app-NO"), declined("NO", model_version="risk-1")]
    other = [applied("NEW", idempotency_key="app-NEW"), declined("NEW", model_version="risk-2", score="0.4")]
    pending = [applied("WAIT", idempotency_key="app-WAIT")]
    outcomes = ledger.append([command_from_dict(c) for c in [*good, *bad, *no, *other, *pending]])
    assert {o.status for o in outcomes} == {"appended"}, outcomes
    report = json.loads(invoke("report", "models", "--as-of", "2026-06-30", "--known-at", LATER,
                               "--db", ledger.settings.db_url, "--json"))  # fmt: skip
    lines = {(m["model_version"], m["period"]): m for m in report["models"]}
    assert set(lines) == {("risk-1", "all"), ("risk-1", "2026-02"), ("risk-2", "all"), ("risk-2", "2026-02")}
    one = lines[("risk-1", "all")]
    assert {
        k: one[k]
        for k in (
            "applications",
            "approval_rate",
            "funded",
            "fpd_matured",
            "fpd_rate",
            "matured",
            "ever30_rate",
            "loss_rate",
            "auc",
            "ks",
        )
    } == {  # fmt: skip
        "applications": 3,  # the pending application has no model yet
        "approval_rate": round(2 / 3, 4),
        "funded": 2,
        "fpd_matured": 2,
        "fpd_rate": 0.5,
        "matured": 2,
        "ever30_rate": 0.5,
        "loss_rate": 0.0,  # BAD is 30+ days past due but not written off
        "auc": 1.0,  # the good loan (0.82) outranks the bad one (0.70)
        "ks": 1.0,
    }
    assert lines[("risk-1", "2026-02")]["psi"] == 0.0 and lines[("risk-1", "2026-02")]["psi_band"] == "stable"
    assert lines[("risk-2", "all")]["auc"] is None  # nothing funded: no power to measure
    deciles = [d for d in report["deciles"] if d["model_version"] == "risk-1"]
    assert [(d["applications"], d["approval_rate"], d["bad_rate"]) for d in deciles] == [
        (1, 0.0, None),  # the decline, 0.12
        (1, 1.0, 1.0),  # BAD, 0.70
        (1, 1.0, 0.0),  # GOOD, 0.82
    ]


def test_psi_bands():
    assert [psi_band(v) for v in (0.0, 0.0999, 0.1, 0.25, 0.2501)] == ["stable", "stable", "watch", "watch", "act"]


def test_auc_ks_and_psi_are_the_textbook_figures_on_the_exported_rows(tmp_path):
    from scipy.stats import ks_2samp
    from sklearn.metrics import roc_auc_score

    url = f"sqlite:///{tmp_path}/m.db"
    app = Ledger(Settings(db_url=url))
    simulated_ledger(app, seed=31, loans=900, days=60)
    app.close()
    out = tmp_path / "rows.parquet"
    invoke("dataset", "export", "--as-of", "2026-06-30", "--known-at", LATER, "--out", out, "--db", url)
    report = json.loads(invoke("report", "models", "--as-of", "2026-06-30", "--known-at", LATER, "--db", url, "--json"))
    rows = pq.read_table(out).to_pylist()
    lines = {(m["model_version"], m["period"]): m for m in report["models"]}
    assert {v for v, _ in lines} == {"risk-2026.1", "risk-2026.2"}
    for version in ("risk-2026.1", "risk-2026.2"):
        matured = [r for r in rows if r["model_version"] == version and r["label_matured"]]
        scores = np.array([r["score"] for r in matured])
        bad = np.array([r["ever_30dpd_60d"] for r in matured])
        assert len(matured) > 100 and 10 < bad.sum() < len(bad) - 10
        assert auc(scores, bad) == pytest.approx(roc_auc_score(~bad, scores), abs=1e-12)
        assert ks(scores, bad) == pytest.approx(ks_2samp(scores[~bad], scores[bad]).statistic, abs=1e-12)
        assert lines[(version, "all")]["auc"] == round(roc_auc_score(~bad, scores), 4)
        assert lines[(version, "all")]["ks"] == round(ks_2samp(scores[~bad], scores[bad]).statistic, 4)
        # PSI of the second month against the first, ten bins cut at the first month's deciles
        first, second = (
            np.array([r["score"] for r in rows if r["model_version"] == version and r["application_date"].month == m])
            for m in (1, 2)
        )
        edges = np.unique(np.quantile(first, np.arange(1, 10) / 10, method="inverted_cdf"))
        e, a = (  # bins (a, b]: digitize with right=True
            np.maximum(np.bincount(np.digitize(x, edges, right=True), minlength=len(edges) + 1) / len(x), 0.0001)
            for x in (first, second)
        )
        assert lines[(version, "2026-02")]["psi"] == round(float(np.sum((a - e) * np.log(a / e))), 4)
    # the challenger ranks borrowers better than the champion
    assert lines[("risk-2026.2", "all")]["auc"] > lines[("risk-2026.1", "all")]["auc"]


def test_the_report_as_known_at_a_time_is_the_same_bytes_after_more_is_appended(store_url, tmp_path):
    from PIL import Image

    # settle=False: the report is model_report(rows as known at the cut), and that the rows stay put when
    # settlement's remittances are recorded after the cut is test_dataset's after-the-cut property
    app = Ledger(Settings(db_url=store_url))
    sim = Simulator(17, 240, START, days=40)
    run_simulation(app, sim, until=START + timedelta(days=30), settle=False)
    cut = datetime.now(UTC)
    args = ["report", "models", "--as-of", "2026-05-31", "--known-at", cut.isoformat(), "--db", store_url]
    first_text = invoke(*args, "--period", "week", "--out", tmp_path / "a.png")
    first_json = invoke(*args, "--json")
    run_simulation(app, sim, settle=False)  # the rest of the stream, recorded after the cut
    app.close()
    assert invoke(*args, "--period", "week", "--out", tmp_path / "b.png") == first_text.replace("a.png", "b.png")
    assert invoke(*args, "--json") == first_json
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    drawn = json.loads(Image.open(tmp_path / "a.png").text["Description"])
    weekly = json.loads(invoke(*args, "--json", "--period", "week"))
    assert drawn == {"models": weekly["models"], "deciles": weekly["deciles"]}  # the PNG shows the report's figures
    assert {m["period"] for m in weekly["models"]} >= {"all", "2026-W01", "2026-W02"}
    header = first_text.splitlines()[3].split()
    assert header[:4] == ["model", "period", "apps", "approved"] and header[-4:] == ["auc", "ks", "psi", "band"]
    # and what was not yet known at the cut shows in a report as known now
    assert invoke(*args[:-4], "--known-at", LATER, "--db", store_url, "--json") != first_json


def test_the_api_serves_the_report_of_the_cli(store_url):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.tokens import create_token

    app = Ledger(Settings(db_url=store_url))
    run_simulation(app, Simulator(5, 80, START, days=20), settle=False)  # the report reads no settlement
    app.close()
    server = create_app(Settings(db_url=store_url))
    token = create_token(server.state.ledger, "reader", ["read"])
    with TestClient(server, raise_server_exceptions=False) as client:
        get = lambda **q: client.get("/v1/reports/models", params=q, headers={"Authorization": f"Bearer {token}"})  # noqa: E731
        served = get(as_of="2026-04-30", known_at=LATER, period="week")
        assert served.status_code == 200, served.text
        cli_json = invoke("report", "models", "--as-of", "2026-04-30", "--known-at", LATER, "--period", "week",
                          "--db", store_url, "--json")  # fmt: skip
        assert served.json() == json.loads(cli_json)
        assert get(as_of="2026-04-30", period="year").status_code == 422
        assert get(as_of="30/04/2026").status_code == 422
        assert get().status_code == 422  # as_of is required
        assert client.get("/v1/reports/models", params={"as_of": "2026-04-30"}).status_code == 401


def test_an_empty_store_reports_no_model_without_failing(store_url, tmp_path):
    text = invoke("report", "models", "--as-of", "2026-04-30", "--db", store_url, "--out", tmp_path / "e.png")
    assert "no scored application is known" in text
    assert (tmp_path / "e.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
