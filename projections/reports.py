"""Reports a lender recognises, computed from the loans' own facts via the domain."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from domain.delinquency import BUCKETS
from domain.loan import Loan
from domain.money import ZERO
from domain.outcomes import EVER_DPD, loss, reached_dpd


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


def ever30_curves(loans: Iterable[Loan], as_of: date, max_months: int = 6) -> dict[str, list[float]]:
    """By funding month: share of the vintage that had reached 30+ DPD by each month-end.

    Point k is the end of the k-th month after the funding month (0: the funding month's own end),
    up to the last month-end on or before ``as_of``.
    """
    first_30: dict[str, list[date | None]] = defaultdict(list)
    for loan in loans:
        if loan.funded_on is None or loan.funded_on > as_of or loan.terms is None:
            continue
        first_30[loan.funded_on.strftime("%Y-%m")].append(reached_dpd(loan, as_of, EVER_DPD))
    curves = {}
    for month, hits in sorted(first_30.items()):
        start = date.fromisoformat(f"{month}-01")
        points = []
        for k in range(max_months + 1):
            cutoff = _months_after(start, k + 1)  # the first day after the k-th month-end
            if cutoff > as_of + timedelta(days=1):
                break
            points.append(sum(1 for h in hits if h is not None and h < cutoff) / len(hits))
        curves[month] = points
    return curves


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
    curves: dict[str, list[float]],
    cohorts: dict[str, int],
    rates: dict[str, dict[str, float]],
    until: date,
    path: str,
) -> None:
    """Ever-30+ curves beside the roll-rate matrix, in one PNG; the figures drawn are also in its metadata."""
    import json

    import matplotlib

    matplotlib.use("Agg")  # files, not windows
    import matplotlib.pyplot as plt

    fig, (ax, grid) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [1.2, 1]})
    for month, points in curves.items():
        if points:
            ax.plot(range(len(points)), [100 * p for p in points], marker="o", label=f"{month} ({cohorts[month]:,})")
    ax.set_xlabel("month-ends after funding (0 = the funding month's end)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("ever 30+ DPD, % of loans funded")
    ax.set_title(f"Ever-30+ rate by funding month, data to {until}")
    ax.grid(alpha=0.3)
    ax.legend(title="funded (loans)")
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
    fig.tight_layout()
    figures = {"until": until.isoformat(), "ever30": curves, "cohorts": cohorts, "roll_rates": rates}
    fig.savefig(path, dpi=110, metadata={"Description": json.dumps(figures, sort_keys=True)})
    plt.close(fig)
