"""How each risk-model version is doing: `ledger report models` and `GET /v1/reports/models`.

Computed from the training rows themselves (projections/dataset.py), so every figure uses the
same point-in-time features and the same labels (domain/outcomes.py) as the data a model is
trained on, and is reproducible as known at a recorded time.

Per model version, overall and per application period (month or ISO week):
- applications (scored, as known), approval rate, funded, mean score;
- among funded loans whose window has closed by the as-of date: first-payment default rate
  (window due date + 7), ever 30+ rate and loss rate by amount (window due date + 60);
- the score's power on the loans whose 60-day window has closed, "bad" being ever 30+ DPD
  within 60 days: AUC (the chance that a good loan outranks a bad one by score, ties counted
  half; 0.5 is no power) and KS (the largest gap between the good and the bad loans' score
  distributions);
- the score's drift: PSI of each period's application scores against the version's first
  period, on ten bins cut at that first period's deciles, banded < 0.1 stable, 0.1-0.25 watch,
  > 0.25 act; and the same index (CSI) for every feature column of the dataset.
- A score-decile table per version: approval rate and bad rate in each tenth of its scores.

Memory follows the rows, compactly: each application keeps a score, a few flags and its
feature values as machine integers (money in fen), about 100 bytes a row.
"""

from __future__ import annotations

import math
from array import array
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np

from domain.money import ZERO
from projections.dataset import COLUMNS

PERIODS = ("month", "week")
BINS = 10  # PSI and CSI: ten bins on the first period's deciles
PSI_FLOOR = 0.0001  # a bin empty on one side counts as 0.01 % of it (else the index is infinite)
STABLE_BELOW, ACT_ABOVE = 0.1, 0.25  # the usual scorecard-monitoring bands
PLACES = 4  # rates and indices are reported to 4 decimal places
BAD = "ever_30dpd_60d"
FEATURES = tuple(c for c in COLUMNS if c.role == "feature")
_NUMERIC = {"int", "money"}

# flags kept per application for the decile table
_APPROVED, _FUNDED, _MATURED, _BAD = 1, 2, 4, 8


def psi_band(value: float | None) -> str | None:
    if value is None:
        return None
    if value < STABLE_BELOW:
        return "stable"
    return "watch" if value <= ACT_ABOVE else "act"


def period_of(day: date, period: str) -> str:
    if period == "month":
        return day.strftime("%Y-%m")
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass
class _Feature:
    """One feature column's values in one cell: numbers as integers (money in fen), or categories."""

    numbers: array[int] = field(default_factory=lambda: array("q"))
    categories: Counter[str] = field(default_factory=Counter)
    missing: int = 0


@dataclass
class _Cell:
    """One model version in one period (or in all of them)."""

    applications: int = 0
    approved: int = 0
    funded: int = 0
    scores: array[float] = field(default_factory=lambda: array("d"))
    flags: array[int] = field(default_factory=lambda: array("b"))
    fpd_matured: int = 0
    fpd: int = 0
    matured: int = 0
    ever30: int = 0
    lost: Decimal = ZERO
    exposure: Decimal = ZERO
    features: dict[str, _Feature] = field(default_factory=lambda: {c.name: _Feature() for c in FEATURES})

    def add(self, row: dict[str, Any], with_features: bool) -> None:
        score = row["score"]
        self.applications += 1
        self.scores.append(score)
        flag = 0
        if row["decision"] == "approved":
            self.approved += 1
            flag |= _APPROVED
        if row["funded"]:
            self.funded += 1
            flag |= _FUNDED
            if row["fpd_matured"]:
                self.fpd_matured += 1
                self.fpd += bool(row["first_payment_default"])
            if row["label_matured"]:
                self.matured += 1
                flag |= _MATURED
                if row[BAD]:
                    self.ever30 += 1
                    flag |= _BAD
                self.lost += row["loss_amount"]
                self.exposure += row["approved_principal"]
        self.flags.append(flag)
        if with_features:
            for c in FEATURES:
                value, kept = row[c.name], self.features[c.name]
                if value is None:
                    kept.missing += 1
                elif c.kind in _NUMERIC:
                    kept.numbers.append(int(value.scaleb(2)) if c.kind == "money" else int(value))
                else:
                    kept.categories[str(value)] += 1

    def outcome_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Scores and bad flags of the loans whose 60-day window has closed."""
        scores = np.frombuffer(self.scores, dtype=np.float64)
        flags = np.frombuffer(self.flags, dtype=np.int8)
        matured = (flags & _MATURED) != 0
        return scores[matured], (flags[matured] & _BAD) != 0


# ---- the statistics -----------------------------------------------------------------------------------
def auc(scores: np.ndarray, bad: np.ndarray) -> float | None:
    """P(a good loan's score > a bad loan's) + half P(equal): the Mann-Whitney U over both counts.

    A higher score means a safer applicant. None without at least one good and one bad loan.
    """
    n_bad = int(bad.sum())
    n_good = len(bad) - n_bad
    if n_bad == 0 or n_good == 0:
        return None
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    mid_ranks = ends - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    good_rank_sum = float(mid_ranks[inverse][~bad].sum())
    return (good_rank_sum - n_good * (n_good + 1) / 2.0) / (n_good * n_bad)


def ks(scores: np.ndarray, bad: np.ndarray) -> float | None:
    """The largest distance between the good and the bad loans' empirical score distributions."""
    n_bad = int(bad.sum())
    n_good = len(bad) - n_bad
    if n_bad == 0 or n_good == 0:
        return None
    values, inverse = np.unique(scores, return_inverse=True)
    bad_at = np.bincount(inverse[bad], minlength=len(values))
    good_at = np.bincount(inverse[~bad], minlength=len(values))
    return float(np.max(np.abs(np.cumsum(good_at) / n_good - np.cumsum(bad_at) / n_bad)))


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The nine cut points at the deciles (order statistics, ties merged): bins are (-inf, e1], (e1, e2], ..."""
    ordered = np.sort(values)
    n = len(ordered)
    if n == 0:
        return ordered
    picks = [ordered[math.ceil(k * n / BINS) - 1] for k in range(1, BINS)]
    return np.unique(np.array(picks, dtype=ordered.dtype))


def binned(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


def stability_index(expected: np.ndarray, actual: np.ndarray) -> float | None:
    """sum((a - e) x ln(a / e)) over the bins' shares, each share at least PSI_FLOOR."""
    e_total, a_total = float(expected.sum()), float(actual.sum())
    if e_total == 0 or a_total == 0:
        return None
    e = np.maximum(expected / e_total, PSI_FLOOR)
    a = np.maximum(actual / a_total, PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _feature_index(first: _Feature, now: _Feature) -> float | None:
    if first.categories or now.categories:
        keys = sorted(set(first.categories) | set(now.categories))
        expected = np.array([first.categories[k] for k in keys] + [first.missing], dtype=np.float64)
        actual = np.array([now.categories[k] for k in keys] + [now.missing], dtype=np.float64)
        return stability_index(expected, actual)
    base = np.frombuffer(first.numbers, dtype=np.int64)
    edges = decile_edges(base)
    expected = np.append(binned(base, edges), first.missing)
    actual = np.append(binned(np.frombuffer(now.numbers, dtype=np.int64), edges), now.missing)
    return stability_index(expected.astype(np.float64), actual.astype(np.float64))


# ---- the report -----------------------------------------------------------------------------------------
def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, PLACES) if whole else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, PLACES)


def _line(version: str, period: str, cell: _Cell) -> dict[str, Any]:
    scores, bad = cell.outcome_scores()
    loss_rate = None
    if cell.exposure:
        loss_rate = float((cell.lost / cell.exposure).quantize(Decimal(1).scaleb(-PLACES), ROUND_HALF_UP))
    return {
        "model_version": version,
        "period": period,
        "applications": cell.applications,
        "approval_rate": _rate(cell.approved, cell.applications),
        "funded": cell.funded,
        "mean_score": _rounded(float(np.mean(np.frombuffer(cell.scores))) if cell.applications else None),
        "fpd_matured": cell.fpd_matured,
        "fpd_rate": _rate(cell.fpd, cell.fpd_matured),
        "matured": cell.matured,
        "ever30_rate": _rate(cell.ever30, cell.matured),
        "loss_rate": loss_rate,
        "auc": _rounded(auc(scores, bad)),
        "ks": _rounded(ks(scores, bad)),
        "psi": None,
        "psi_band": None,
        "csi": None,
    }


def _deciles(version: str, cell: _Cell) -> list[dict[str, Any]]:
    scores = np.frombuffer(cell.scores, dtype=np.float64)
    flags = np.frombuffer(cell.flags, dtype=np.int8)
    which = np.searchsorted(decile_edges(scores), scores, side="left")
    table: list[dict[str, Any]] = []
    for d in range(int(which.max()) + 1 if len(which) else 0):
        mine = which == d
        if not mine.any():
            continue
        f = flags[mine]
        matured = int(((f & _MATURED) != 0).sum())
        table.append(
            {
                "model_version": version,
                "decile": len(table) + 1,
                "min_score": _rounded(float(scores[mine].min())),
                "max_score": _rounded(float(scores[mine].max())),
                "applications": int(mine.sum()),
                "approval_rate": _rate(int(((f & _APPROVED) != 0).sum()), int(mine.sum())),
                "matured": matured,
                "bad_rate": _rate(int(((f & _BAD) != 0).sum()), matured),
            }
        )
    return table


def model_report(
    rows: Iterable[dict[str, Any]], as_of: date, known_at: datetime, period: str = "month"
) -> dict[str, Any]:
    """The whole report as plain data (the JSON shape of the CLI and the API)."""
    if period not in PERIODS:
        raise ValueError(f"period {period!r} is not one of {', '.join(PERIODS)}")
    overall: dict[str, _Cell] = {}
    cells: dict[tuple[str, str], _Cell] = {}
    for row in rows:
        version = row["model_version"]
        if version is None:  # not scored yet as known: no model to judge
            continue
        if version not in overall:
            overall[version] = _Cell()
        overall[version].add(row, with_features=False)
        key = (version, period_of(row["application_date"], period))
        if key not in cells:
            cells[key] = _Cell()
        cells[key].add(row, with_features=True)
    lines: list[dict[str, Any]] = []
    deciles: list[dict[str, Any]] = []
    for version in sorted(overall):
        lines.append(_line(version, "all", overall[version]))
        periods = sorted(p for v, p in cells if v == version)
        first = cells[(version, periods[0])]
        first_scores = np.frombuffer(first.scores, dtype=np.float64)
        edges = decile_edges(first_scores)
        expected = binned(first_scores, edges).astype(np.float64)
        for p in periods:
            cell = cells[(version, p)]
            line = _line(version, p, cell)
            value = stability_index(expected, binned(np.frombuffer(cell.scores, dtype=np.float64), edges))
            line["psi"], line["psi_band"] = _rounded(value), psi_band(value)
            line["csi"] = {
                c.name: _rounded(_feature_index(first.features[c.name], cell.features[c.name])) for c in FEATURES
            }
            lines.append(line)
        deciles += _deciles(version, overall[version])
    return {
        "as_of": as_of.isoformat(),
        "known_at": known_at.isoformat(),
        "period": period,
        "bad": f"{BAD}: reached 30+ days past due within 60 days after the due date",
        "psi_bands": {"stable": f"< {STABLE_BELOW}", "watch": f"{STABLE_BELOW}-{ACT_ABOVE}", "act": f"> {ACT_ABOVE}"},
        "models": lines,
        "deciles": deciles,
    }


def plot_models(report: dict[str, Any], path: str) -> None:
    """AUC and bad rate over the periods per version, PSI with its bands, and the score-decile table, in one PNG.

    The same inputs give the same bytes: the PNG carries no software version or time, only the
    figures drawn (as JSON in its ``Description``), so a report as known at a time can be reproduced.
    """
    import json

    import matplotlib

    matplotlib.use("Agg")  # files, not windows
    import matplotlib.pyplot as plt

    lines = [m for m in report["models"] if m["period"] != "all"]
    overall = {m["model_version"]: m for m in report["models"] if m["period"] == "all"}
    periods = sorted({m["period"] for m in lines})
    x = {p: i for i, p in enumerate(periods)}
    fig, ((power, bad), (drift, deciles)) = plt.subplots(2, 2, figsize=(14, 9))
    for version in overall:
        mine = [m for m in lines if m["model_version"] == version]

        def series(key: str, mine: list[dict[str, Any]] = mine) -> tuple[list[int], list[float]]:
            points = [(x[m["period"]], m[key]) for m in mine if m[key] is not None]
            return [p for p, _ in points], [v for _, v in points]

        auc_all = overall[version]["auc"]
        power.plot(*series("auc"), marker="o", label=f"{version} (all: {'-' if auc_all is None else auc_all})")
        (drawn,) = bad.plot(*series("ever30_rate"), marker="o", label=f"{version} ever 30+")
        bad.plot(*series("fpd_rate"), marker="x", linestyle="--", color=drawn.get_color(), label=f"{version} FPD")
        drift.plot(*series("psi"), marker="o", label=version)
    power.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    power.set_title("AUC by application period (matured loans; 0.5 = no power)")
    bad.set_title("Bad rates by application period (matured loans)")
    drift.set_title("Score PSI against each version's first period")
    drift.axhspan(STABLE_BELOW, ACT_ABOVE, color="gold", alpha=0.15, label=f"watch {STABLE_BELOW}-{ACT_ABOVE}")
    drift.axhspan(ACT_ABOVE, max([ACT_ABOVE * 1.4] + [m["psi"] or 0 for m in lines]), color="red", alpha=0.1,
                  label=f"act > {ACT_ABOVE}")  # fmt: skip
    for ax in (power, bad, drift):
        ax.set_xticks(range(len(periods)), periods, rotation=30)
    width = 0.8 / max(1, len(overall))
    for i, version in enumerate(overall):
        mine = [d for d in report["deciles"] if d["model_version"] == version]
        deciles.bar(
            [d["decile"] + (i - (len(overall) - 1) / 2) * width for d in mine],
            [d["bad_rate"] or 0 for d in mine],
            width=width,
            label=version,
        )
        for d in mine:
            if d["approval_rate"] is not None:
                deciles.annotate(f"{d['approval_rate']:.0%}", (d["decile"] + (i - (len(overall) - 1) / 2) * width,
                                 d["bad_rate"] or 0), ha="center", va="bottom", fontsize=6)  # fmt: skip
    deciles.set_title("Bad rate by score decile (1 = lowest scores); approval rate on each bar")
    deciles.set_xticks(range(1, BINS + 1))
    for ax in (power, bad, drift, deciles):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"Model monitoring as of {report['as_of']}, known at {report['known_at']}, by {report['period']}")
    fig.tight_layout()
    figures = {"models": report["models"], "deciles": report["deciles"]}
    fig.savefig(path, dpi=100, metadata={"Software": None, "Description": json.dumps(figures, sort_keys=True)})
    plt.close(fig)
