"""Reports a lender recognises, computed from the loans' own facts via the domain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from domain.delinquency import BUCKETS
from domain.loan import Loan
from domain.money import ZERO
from domain.outcomes import EVER_DPD, FPD_DAYS, loss, past_due_after, reached_dpd
from projections.jsonable import to_jsonable


@dataclass
class VintageLine:
    month: str
    loans: int = 0
    funded: Decimal = ZERO
    repaid: int = 0
    ever_30: int = 0  # reached 30+ DPD by the date (domain/outcomes.py)
    written_off: Decimal = ZERO
    recovered: Decimal = ZERO  # of the principal written off (domain/outcomes.py)

    @property
    def net_loss_rate(self) -> Decimal:
        return (self.written_off - self.recovered) / self.funded if self.funded else ZERO


def vintages(loans: Iterable[Loan], as_of: date) -> list[VintageLine]:
    """By funding month: how many repaid, went 30+ days past due, and what was lost net of recoveries."""
    lines: dict[str, VintageLine] = defaultdict(lambda: VintageLine(""))
    for loan in loans:
        if loan.funded_on is None or loan.funded_on > as_of or loan.terms is None:
            continue
        month = loan.funded_on.strftime("%Y-%m")
        line = lines[month]
        line.month = month
        line.loans += 1
        line.funded += loan.terms.principal
        p = loan.position(as_of)
        if p.settled_on is not None and loan.written_off_on is None:
            line.repaid += 1
        if reached_dpd(loan, as_of) is not None:
            line.ever_30 += 1
        lost = loss(p)
        line.written_off += lost.written_off
        line.recovered += lost.recovered
    return [lines[m] for m in sorted(lines)]


def _months_after(start: date, months: int) -> date:
    y, m = divmod(start.month - 1 + months, 12)
    return date(start.year + y, m + 1, 1)


def last_data_day(loans: Iterable[Loan]) -> date | None:
    """The newest value date of any fact of these loans: curves drawn past it would only run flat."""
    days: list[date] = []
    for loan in loans:
        days.extend(d for d in (loan.funded_on, loan.written_off_on) if d is not None)
        days.extend(m.value_date for m in loan.money_in)
        days.extend(as_of for as_of, _, _ in loan.overdue_marks)
    return max(days, default=None)


COHORTS = ("week", "month")
GROUPINGS = ("channel", "bank", "model")
CURVE_DAYS = (1, 4, 7, 10, 15, 20, 30, 45, 60)  # days since the due date; 7 is FPD, 30 is ever 30+
SMALL_COHORT = 100  # fewer loans than this: a cohort's rates swing on a handful of loans


def cohort_of(day: date, cohort: str) -> str:
    if cohort == "month":
        return day.strftime("%Y-%m")
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def group_of(loan: Loan, by: str | None) -> str | None:
    if by is None:
        return None
    value = {"channel": loan.channel, "bank": loan.bank, "model": loan.model_version}[by]
    return value if value is not None else "-"


@dataclass
class Cohort:
    """Loans funded in one week or month (and, with ``--by``, of one channel, bank or model)."""

    cohort: str
    group: str | None
    loans: int = 0
    funded: Decimal = ZERO
    last_due: date | None = None
    past_due: list[int] = field(default_factory=lambda: [0] * len(CURVE_DAYS))
    past_due_amount: list[Decimal] = field(default_factory=lambda: [ZERO] * len(CURVE_DAYS))
    written_off: Decimal = ZERO
    recovered: Decimal = ZERO

    @property
    def small(self) -> bool:
        return self.loans < SMALL_COHORT

    @property
    def net_loss(self) -> Decimal:
        return self.written_off - self.recovered

    def reached(self, days: int, until: date) -> bool:
        """Every loan of the cohort has reached due date + ``days`` by ``until``."""
        return self.last_due is not None and self.last_due + timedelta(days=days) <= until

    def curve(self, until: date, by_amount: bool = False) -> list[float | None]:
        """Share still past due at the end of due date + k, for each k of CURVE_DAYS the cohort has reached."""
        points: list[float | None] = []
        for k, n, amount in zip(CURVE_DAYS, self.past_due, self.past_due_amount, strict=True):
            if not self.reached(k, until):
                points.append(None)
            elif by_amount:
                points.append(round(float(amount / self.funded), 4))
            else:
                points.append(round(n / self.loans, 4))
        return points

    def as_dict(self, until: date) -> dict[str, Any]:
        count, amount = self.curve(until), self.curve(until, by_amount=True)
        fpd, ever30 = CURVE_DAYS.index(FPD_DAYS), CURVE_DAYS.index(EVER_DPD)
        return {
            "cohort": self.cohort,
            "group": self.group,
            "loans": self.loans,
            "funded": self.funded,
            "small": self.small,
            "fpd_rate": count[fpd],
            "fpd_rate_amount": amount[fpd],
            "ever30_rate": count[ever30],
            "ever30_rate_amount": amount[ever30],
            "written_off": self.written_off,
            "recovered": self.recovered,
            "net_loss": self.net_loss,
            "net_loss_rate": round(float(self.net_loss / self.funded), 4),
            "curve": count,
            "curve_amount": amount,
        }


def cohort_name(c: dict[str, Any]) -> str:
    return f"{c['cohort']} {c['group']}" if c["group"] else str(c["cohort"])


def cohort_table(loans: Iterable[Loan], until: date, cohort: str = "week", by: str | None = None) -> list[Cohort]:
    """Funded loans by funding week or month: the share still past due k days after the due date
    (by count and by principal), and the net loss so far, all as of ``until``."""
    if cohort not in COHORTS:
        raise ValueError(f"cohort {cohort!r} is not one of {', '.join(COHORTS)}")
    if by is not None and by not in GROUPINGS:
        raise ValueError(f"by {by!r} is not one of {', '.join(GROUPINGS)}")
    table: dict[tuple[str, str | None], Cohort] = {}
    for loan in loans:
        if loan.funded_on is None or loan.funded_on > until or loan.terms is None:
            continue
        key = (cohort_of(loan.funded_on, cohort), group_of(loan, by))
        line = table.get(key)
        if line is None:
            line = table[key] = Cohort(*key)
        principal, due = loan.terms.principal, loan.terms.due_date(loan.funded_on)
        line.loans += 1
        line.funded += principal
        line.last_due = due if line.last_due is None else max(line.last_due, due)
        now = loan.position(until)
        for i, k in enumerate(CURVE_DAYS):
            if due + timedelta(days=k) <= until and past_due_after(loan.position, due, k, now.settled_on):
                line.past_due[i] += 1
                line.past_due_amount[i] += principal
        lost = loss(now)
        line.written_off += lost.written_off
        line.recovered += lost.recovered
    return [table[k] for k in sorted(table, key=lambda k: (k[0], k[1] or ""))]


def roll_rates(loans: Iterable[Loan], as_of: date) -> dict[str, dict[str, int]]:
    """Loans moving from one month-end bucket to the next (written-off and closed loans are their own rows)."""
    matrix: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for loan in loans:
        if loan.funded_on is None or loan.terms is None:
            continue
        month_end = _months_after(loan.funded_on.replace(day=1), 1) - timedelta(days=1)
        previous = None
        while month_end <= as_of:
            state = loan.state_as_of(month_end)
            now = state if state in ("repaid", "written_off") else loan.position(month_end).bucket
            if previous is not None and previous not in ("repaid", "written_off"):
                matrix[previous][now] += 1
            previous = now
            month_end = _months_after(month_end.replace(day=1), 2) - timedelta(days=1)
    return {k: dict(v) for k, v in matrix.items()}


MAX_CURVES = 16  # the chart draws the latest cohorts' curves; the text and JSON hold every cohort
ROLL_ROWS = BUCKETS
ROLL_COLUMNS = (*BUCKETS, "repaid", "written_off")


def roll_rate_percentages(matrix: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Each bucket's month-end moves as % of its row, one decimal: what the table prints and the chart shows."""
    rates = {}
    for row in ROLL_ROWS:
        counts = matrix.get(row, {})
        total = sum(counts.values())
        if total:
            rates[row] = {c: round(100 * counts.get(c, 0) / total, 1) for c in ROLL_COLUMNS}
    return rates


def plot_vintage(
    cohorts: list[Cohort], rates: dict[str, dict[str, float]], until: date, cohort: str, by: str | None, path: str
) -> dict[str, Any]:
    """Four panels in one PNG: the curves by days since the due date, FPD and ever-30+ rates by cohort
    (by count and by amount), cohort sizes with the net loss rate, and the roll-rate matrix. The
    figures drawn are written into the PNG's ``Description`` as JSON, and returned."""
    import json

    import matplotlib

    matplotlib.use("Agg")  # files, not windows
    import matplotlib.pyplot as plt

    shown = [c.as_dict(until) for c in cohorts]
    fig, ((curves, rates_ax), (sizes, grid)) = plt.subplots(2, 2, figsize=(15, 10))
    drawn = [c for c in shown if any(p is not None for p in c["curve"])][-MAX_CURVES:]
    for c in drawn:
        points = [(k, p) for k, p in zip(CURVE_DAYS, c["curve"], strict=True) if p is not None]
        label = (
            f"{c['cohort']}{' ' + c['group'] if c['group'] else ''} ({c['loans']:,}{', small' if c['small'] else ''})"
        )
        curves.plot([k for k, _ in points], [100 * p for _, p in points], marker="o", markersize=3, label=label,
                    linestyle="--" if c["small"] else "-", alpha=0.5 if c["small"] else 1.0)  # fmt: skip
    curves.set_xlabel("days since the due date")
    curves.set_ylabel("still past due, % of loans")
    curves.set_title(f"Past due k days after the due date, by funding {cohort} (dashed: under {SMALL_COHORT} loans)")
    curves.set_xticks(CURVE_DAYS)
    names = [cohort_name(c) for c in shown]
    for key, label, style in (
        ("fpd_rate", "FPD, % of loans", "-o"),
        ("fpd_rate_amount", "FPD, % of amount", "--o"),
        ("ever30_rate", "ever 30+, % of loans", "-s"),
        ("ever30_rate_amount", "ever 30+, % of amount", "--s"),
    ):
        points = [(i, 100 * c[key]) for i, c in enumerate(shown) if c[key] is not None]
        rates_ax.plot([i for i, _ in points], [v for _, v in points], style, markersize=3, label=label)
    rates_ax.set_title(f"First-payment default and ever 30+ by funding {cohort}")
    rates_ax.set_ylabel("%")
    sizes.bar(range(len(shown)), [c["loans"] for c in shown],
              color=["lightgrey" if c["small"] else "tab:blue" for c in shown])  # fmt: skip
    sizes.set_ylabel(f"loans funded (grey: under {SMALL_COHORT})")
    loss_ax = sizes.twinx()
    loss_ax.plot(range(len(shown)), [100 * c["net_loss_rate"] for c in shown], "r-o", markersize=3)
    loss_ax.set_ylabel("net loss so far, % of amount funded", color="red")
    sizes.set_title(f"Cohort sizes and net loss by funding {cohort}")
    for ax in (rates_ax, sizes):
        ax.set_xticks(range(len(shown)), names, rotation=60, fontsize=7)
    for ax in (curves, rates_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    rows = list(rates)
    cells = [[rates[r][c] for c in ROLL_COLUMNS] for r in rows]
    grid.imshow(cells or [[0.0] * len(ROLL_COLUMNS)], cmap="Blues", vmin=0, vmax=100, aspect="auto")
    grid.set_xticks(range(len(ROLL_COLUMNS)), ROLL_COLUMNS, rotation=30)
    grid.set_yticks(range(len(rows)), rows)
    for i, row in enumerate(cells):
        for j, value in enumerate(row):
            grid.text(j, i, f"{value:.1f}%", ha="center", va="center", color="white" if value > 60 else "black")
    grid.set_xlabel("bucket at the next month-end")
    grid.set_ylabel("bucket at a month-end")
    grid.set_title("Roll rates, % of row")
    fig.suptitle(f"Vintages by funding {cohort}{', by ' + by if by else ''}, data to {until}")
    fig.tight_layout()
    figures = {"until": until.isoformat(), "cohort": cohort, "by": by, "cohorts": to_jsonable(shown),
               "roll_rates": rates}  # fmt: skip
    fig.savefig(path, dpi=100, metadata={"Software": None, "Description": json.dumps(figures, sort_keys=True)})
    plt.close(fig)
    return figures
