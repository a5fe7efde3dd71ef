"""A deterministic, seeded micro-loan platform: the command stream it would send the ledger.

Each borrower has a hidden risk (probability of default). Two scoring models see
it through noise, on a traffic split: the champion (``risk-2026.1``, 70% of
applications) through more noise than the challenger (``risk-2026.2``, 30%), so
the challenger ranks borrowers better. The applicant mix drifts: new borrowers
come more and more from the partner channel, whose applicants are riskier, so
the scores drift down over the period. A policy
approves and prices within the cost cap, 2-4 banks fund, and each loan's life is
planned at application: repaid early, on time, late or in parts; or defaulted,
chased in-house, then by collection agencies of different skill from M1 or M2
(some recalled, a few handed on to another agency), written off by the ledger's
own end-of-day job, sometimes recovered. Then the real world's mess: callbacks delivered twice,
callbacks arriving days late with a backdated value date, loans interleaved,
occasional reversals, a few settlements in collections (the penalty waived, the rest collected), a
few payoffs a little over what is owed with the excess refunded, and (optionally) planted bad lines
keyed ``bad-...``.

Amounts come from the domain's own position maths, so a payoff closes a loan to
the fen. Same seed, same stream: only ``random.Random(seed)`` is used, never the
clock.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from random import Random
from typing import Any
from uuid import UUID

from domain.delinquency import DEFAULT_WRITE_OFF_DPD
from domain.errors import BrokenInvariant
from domain.loan import INHOUSE, SHANGHAI, loan_uuid
from domain.money import FEN, ZERO, fmt
from domain.position import Movement, position_as_of
from domain.terms import DEFAULT_COST_CAP, Terms

BANKS = ("ICBC-X", "CMB-X", "WEBANK-X", "PAB-X")


@dataclass(frozen=True)
class Agency:
    """A collection agency's skill: how often it collects in full or in part, and how fast."""

    name: str
    full: float  # chance it collects everything owed while it holds a loan
    part: float  # chance it collects only part of it instead
    days: tuple[int, int]  # days after the assignment it takes to collect


AGENCIES = (
    Agency("AGENCY-NORTH", full=0.40, part=0.30, days=(4, 18)),
    Agency("AGENCY-SOUTH", full=0.25, part=0.30, days=(8, 30)),
    Agency("AGENCY-EAST", full=0.12, part=0.35, days=(12, 45)),
)
AGENCY_SHARE = (0.40, 0.35, 0.25)  # of the loans handed to an agency
TERMS_DAYS = (7, 14, 21, 30)
APPROVE_SCORE_MIN = 0.60
# (version, share of applications, noise on the hidden risk): the champion first
MODELS = (("risk-2026.1", 0.70, 0.15), ("risk-2026.2", 0.30, 0.04))
# new borrowers from the partner channel: this share on the first day, growing to PARTNER_SHARE_END on the last
PARTNER_SHARE_START, PARTNER_SHARE_END = 0.10, 0.80
RISK_SHAPE = {"app": (0.6, 3.5), "partner": (1.0, 1.6)}  # beta distribution of hidden risk by channel


@dataclass
class Borrower:
    borrower_id: str
    risk: float  # hidden: probability that a loan goes bad
    free_from: date | None = None  # may apply again from this day (None: never)
    channel: str = "app"  # where the borrower came from; repeat applications come the same way


@dataclass
class _Emit:
    at: datetime  # when the ledger receives it (Asia/Shanghai)
    command: dict[str, Any]  # one wire-format command line, as JSON would carry it


@dataclass
class PlannedLoan:
    loan_id: str
    borrower_id: str
    score: float
    approved: bool
    funded_on: date | None = None
    due_date: date | None = None
    bad: bool = False
    settles_on: date | None = None  # value date of the payment that closes it, if any
    written_off_from: date | None = None
    emits: list[_Emit] = field(default_factory=list)


class Simulator:
    """``days()`` yields (day, [command dicts]) in the order the ledger receives them."""

    def __init__(
        self,
        seed: int,
        loans: int,
        start: date,
        *,
        days: int = 90,
        banks: int = 3,
        bad_lines: bool = False,
        cost_cap: Decimal = DEFAULT_COST_CAP,
    ):
        if not 2 <= banks <= len(BANKS):
            raise ValueError(f"banks must be from 2 to {len(BANKS)}, not {banks}")
        self.rng = Random(seed)
        self.seed = seed
        self.loans_wanted = loans
        self.start = start
        self.days_of_applications = days
        self.banks = BANKS[:banks]
        self.bad_lines = bad_lines
        self.cost_cap = cost_cap
        self.borrowers: list[Borrower] = []
        self.loans: dict[str, PlannedLoan] = {}
        self.hidden_risk: dict[str, float] = {}
        self._planned = False

    # ---- the stream ----------------------------------------------------------------
    def days(self) -> Iterator[tuple[date, list[dict[str, Any]]]]:
        by_day: dict[date, list[_Emit]] = defaultdict(list)
        for loan in self.plan():
            for e in loan.emits:
                by_day[e.at.date()].append(e)
        last = max(by_day)
        day = self.start
        while day <= last:
            yield day, [e.command for e in sorted(by_day.get(day, []), key=lambda e: e.at)]
            day += timedelta(days=1)

    def lines(self) -> Iterator[str]:
        for _, commands in self.days():
            for c in commands:
                yield json.dumps(c)

    def open_loans(self, day: date) -> list[UUID]:
        """Loans the end of ``day`` may concern: funded, past due, not known closed or written off."""
        return [
            loan_uuid(p.loan_id)
            for p in self.plan()
            if p.due_date is not None
            and p.due_date < day
            and (p.settles_on is None or p.settles_on + timedelta(days=6) >= day)
            and (p.written_off_from is None or p.written_off_from >= day)
        ]

    # ---- planning --------------------------------------------------------------------
    def plan(self) -> list[PlannedLoan]:
        if not self._planned:
            self._planned = True
            for n in range(self.loans_wanted):
                day = self.start + timedelta(days=n * self.days_of_applications // self.loans_wanted)
                self._plan_loan(f"LN{n:07d}", self._borrower(day), day)
        return list(self.loans.values())

    def _borrower(self, day: date) -> Borrower:
        regulars = [b for b in self.borrowers if b.free_from is not None and b.free_from <= day]
        if regulars and self.rng.random() < 0.35:
            return self.rng.choice(regulars)
        progress = (day - self.start).days / max(1, self.days_of_applications - 1)
        partner = self.rng.random() < PARTNER_SHARE_START + (PARTNER_SHARE_END - PARTNER_SHARE_START) * progress
        channel = "partner" if partner else "app"
        b = Borrower(
            f"BR{len(self.borrowers):06d}", risk=min(0.95, self.rng.betavariate(*RISK_SHAPE[channel])), channel=channel
        )
        self.borrowers.append(b)
        self.hidden_risk[b.borrower_id] = b.risk
        return b

    def _at(self, day: date, hour: float) -> datetime:
        return datetime.combine(day, time(0), SHANGHAI) + timedelta(hours=hour)

    def _plan_loan(self, loan_id: str, borrower: Borrower, day: date) -> None:
        rng = self.rng
        borrower.free_from = None  # busy until this loan closes
        version, _, noise = MODELS[0] if rng.random() < MODELS[0][1] else MODELS[1]
        score = min(1.0, max(0.0, 1.0 - borrower.risk + rng.gauss(0, noise)))
        requested = Decimal(rng.randrange(5, 51) * 100)
        term_days = rng.choice(TERMS_DAYS)
        approved = score >= APPROVE_SCORE_MIN
        loan = PlannedLoan(loan_id, borrower.borrower_id, score, approved)
        self.loans[loan_id] = loan
        t0 = rng.uniform(8, 22)
        base = {"loan_id": loan_id}

        def emit(at: datetime, cmd: dict[str, Any]) -> None:
            loan.emits.append(_Emit(at, {**base, **cmd}))

        emit(
            self._at(day, t0),
            {
                "type": "applied",
                "idempotency_key": f"app-{loan_id}",
                "occurred_at": self._at(day, t0).isoformat(),
                "borrower_id": borrower.borrower_id,
                "principal": fmt(requested),
                "term_days": term_days,
                "product": "payday" if term_days <= 14 else "salary",
                "channel": borrower.channel,
            },
        )
        scored_at = self._at(day, t0 + 0.01)
        if not approved:
            emit(
                scored_at,
                {
                    "type": "scored",
                    "idempotency_key": f"score-{loan_id}",
                    "occurred_at": scored_at.isoformat(),
                    "score": f"{score:.4f}",
                    "model_version": version,
                    "decision": "declined",
                },
            )
            borrower.free_from = day + timedelta(days=rng.randint(20, 60))
            if self.bad_lines and rng.random() < 0.05:  # planted: a bank funds a declined loan
                emit(
                    self._at(day, t0 + 0.5),
                    {
                        "type": "funded",
                        "idempotency_key": f"bad-fund-{loan_id}",
                        "occurred_at": self._at(day, t0 + 0.5).isoformat(),
                        "bank": self.banks[0],
                        "bank_ref": f"bad-fund-{loan_id}",
                        "amount": fmt(requested),
                        "value_date": day.isoformat(),
                    },
                )
            return
        principal = (
            requested if score > 0.85 else max(Decimal(500), (requested * Decimal("0.8")).quantize(Decimal(100)))
        )
        fee = (principal * Decimal("0.003")).quantize(FEN)
        terms = Terms(
            principal=principal,
            term_days=term_days,
            daily_rate=self._daily_rate(score, term_days, fee, principal),
            fee=fee,
            penalty_daily_rate=Decimal("0.001"),
            cost_cap=self.cost_cap,  # what the ledger holds the loan to (its ceiling), as it approved it
        )
        emit(
            scored_at,
            {
                "type": "scored",
                "idempotency_key": f"score-{loan_id}",
                "occurred_at": scored_at.isoformat(),
                "score": f"{score:.4f}",
                "model_version": version,
                "decision": "approved",
                "principal": fmt(principal),
                "term_days": term_days,
                "daily_rate": str(terms.daily_rate),
                "fee": fmt(fee),
                "penalty_daily_rate": str(terms.penalty_daily_rate),
            },
        )
        funded_on = day + timedelta(days=0 if t0 < 17 else 1)
        bank = rng.choice(self.banks)
        ref = f"{bank}-D-{loan_id}"
        fund_at = self._at(funded_on, t0 + 0.1 if funded_on == day else rng.uniform(9, 12))
        emit(
            fund_at,
            {
                "type": "funded",
                "idempotency_key": ref,
                "occurred_at": fund_at.isoformat(),
                "bank": bank,
                "bank_ref": ref,
                "amount": fmt(principal),
                "value_date": funded_on.isoformat(),
            },
        )
        loan.funded_on, loan.due_date = funded_on, terms.due_date(funded_on)
        loan.bad = rng.random() < borrower.risk
        _Life(self, loan, terms, bank, emit).live()
        if loan.settles_on is not None and not loan.bad:
            borrower.free_from = loan.settles_on + timedelta(days=rng.randint(3, 30))

    def _daily_rate(self, score: float, term_days: int, fee: Decimal, principal: Decimal) -> Decimal:
        """Riskier applicants pay more, always inside the annualised cost cap."""
        wanted = Decimal(str(round(0.0009 - 0.0005 * score, 5)))
        cap_rate = (self.cost_cap * term_days / 365 - fee / principal) / term_days
        return min(wanted, (cap_rate * Decimal("0.97")).quantize(Decimal("0.00001"), rounding="ROUND_DOWN"))


_EmitFn = Callable[[datetime, dict[str, Any]], None]


class _Life:
    """One funded loan's money movements, planned in value-date order."""

    def __init__(self, sim: Simulator, loan: PlannedLoan, terms: Terms, bank: str, emit: _EmitFn):
        self.sim, self.rng, self.loan, self.terms, self.bank, self.emit = sim, sim.rng, loan, terms, bank, emit
        # Settlements and refunds draw from the loan's own generator: the platform's sequence (and so
        # every other loan's life) is the same with or without them.
        self.aside = Random(f"{sim.seed}:{loan.loan_id}")
        self.movements: list[Movement] = []
        self.n = 0
        self.holder: Agency | None = None  # the agency holding the loan (None: in-house)
        self.due = date.min  # the due date, once collections begin

    def owed(self, on: date) -> Decimal:
        if self.loan.funded_on is None:
            raise BrokenInvariant(f"simulated loan {self.loan.loan_id} is owed nothing before it is funded")
        return position_as_of(self.terms, self.loan.funded_on, self.movements, on, self.loan.written_off_from).total

    def live(self) -> None:
        rng, loan = self.rng, self.loan
        if loan.funded_on is None or loan.due_date is None:
            raise BrokenInvariant(f"simulated loan {loan.loan_id} lives before it is funded")
        due = loan.due_date
        if not loan.bad:
            style = rng.choices(("early", "on_time", "late", "parts"), (0.25, 0.55, 0.12, 0.08))[0]
            earliest = loan.funded_on + timedelta(days=1)
            if style == "parts":
                first = loan.funded_on + timedelta(days=rng.randint(1, self.terms.term_days - 2))
                self.pay(first, (self.owed(first) * Decimal(rng.uniform(0.2, 0.6))).quantize(FEN))
                earliest = first + timedelta(days=1)
            when = {
                "early": loan.funded_on + timedelta(days=rng.randint(1, self.terms.term_days)),
                "on_time": due,
                "late": due + timedelta(days=rng.randint(1, 12)),
                "parts": due - timedelta(days=rng.randint(0, 1)),
            }[style]
            self.pay(max(when, earliest), None)
            return
        if rng.random() < 0.25:  # a token payment before it goes bad
            on = due - timedelta(days=rng.randint(0, 3))
            self.pay(on, (self.owed(on) * Decimal(rng.uniform(0.05, 0.3))).quantize(FEN))
        if loan.settles_on is not None:  # the token payment bounced and the borrower paid in full instead
            return
        self.collections(due, due + timedelta(days=DEFAULT_WRITE_OFF_DPD + 1))

    # ---- collections: in-house, then agencies of different skill, then write-off and recovery ---------------
    def collections(self, due: date, write_off: date) -> None:
        """A bad loan's collections; ``write_off``: the day the ledger's end of day writes it off if still owing."""
        rng, loan = self.rng, self.loan
        self.due = due
        if rng.random() < 0.12:  # the platform's own reminders cure it early
            self.collect(due + timedelta(days=rng.randint(2, 10)), None, INHOUSE)
            return
        handed = due + timedelta(days=rng.randint(5, 25) if rng.random() < 0.6 else rng.randint(31, 45))  # M1 or M2
        if self.spell(rng.choices(AGENCIES, AGENCY_SHARE)[0], handed, write_off, reassign=True):
            return
        loan.written_off_from = write_off
        if self.holder is None and rng.random() < 0.5:  # a recovery agency takes the written-off loan
            self.assign(write_off + timedelta(days=rng.randint(1, 4)), rng.choices(AGENCIES, AGENCY_SHARE)[0])
        skill = 0.15 if self.holder is None else self.holder.full + self.holder.part / 2
        if rng.random() < skill:  # something is recovered after write-off
            on = write_off + timedelta(days=rng.randint(5, 60))
            self.collect(on, (self.owed(on) * Decimal(rng.uniform(0.05, 0.5))).quantize(FEN), self.collector)

    def spell(self, agency: Agency, since: date, write_off: date, reassign: bool) -> bool:
        """``agency`` holds the loan from ``since``: it collects all, part or nothing; a poor spell may be
        recalled (and, if ``reassign``, handed to another agency). True once nothing is owed."""
        rng = self.rng
        self.assign(since, agency)
        outcome = rng.random()
        worked = since + timedelta(days=rng.randint(*agency.days))
        last = since
        if worked < write_off:
            if outcome < agency.full:
                if self.aside.random() < 0.3:  # settled: the penalty is waived, the rest is collected
                    self.waive_penalty(worked)
                self.collect(worked, None, agency.name)
                return True
            if outcome < agency.full + agency.part:
                self.collect(worked, (self.owed(worked) * Decimal(rng.uniform(0.1, 0.4))).quantize(FEN), agency.name)
                last = worked
        if rng.random() < 0.35:  # recalled for poor results
            back = last + timedelta(days=rng.randint(5, 20))  # after the agency's last collection
            if back < write_off - timedelta(days=1):
                self.recall(back)
                if reassign and rng.random() < 0.5:  # handed to another agency, the same day or a few days later
                    other = rng.choice([a for a in AGENCIES if a is not agency])
                    return self.spell(other, back + timedelta(days=rng.randint(0, 3)), write_off, reassign=False)
                if rng.random() < 0.3:  # in-house again: a part comes in
                    on = back + timedelta(days=rng.randint(1, 10))
                    if on < write_off:
                        self.collect(on, (self.owed(on) * Decimal(rng.uniform(0.1, 0.3))).quantize(FEN), INHOUSE)
        return False

    @property
    def collector(self) -> str:
        return INHOUSE if self.holder is None else self.holder.name

    def assign(self, on: date, agency: Agency) -> None:
        """Handed to ``agency`` from ``on`` (sent at 09:30, after a recall of the same day)."""
        self.n += 1
        at = self.sim._at(on, 9.5)
        self.emit(
            at,
            {
                "type": "assigned",
                "idempotency_key": f"ASG-{self.loan.loan_id}-{self.n}",
                "occurred_at": at.isoformat(),
                "agency": agency.name,
                "value_date": on.isoformat(),
            },
        )
        self.holder = agency

    def recall(self, on: date) -> None:
        """Taken back from the agency from ``on`` (sent at 09:00)."""
        self.n += 1
        at = self.sim._at(on, 9.0)
        self.emit(
            at,
            {
                "type": "recalled",
                "idempotency_key": f"RCL-{self.loan.loan_id}-{self.n}",
                "occurred_at": at.isoformat(),
                "value_date": on.isoformat(),
            },
        )
        self.holder = None

    def pay(self, on: date, amount: Decimal | None) -> None:
        """A repayment valued ``on``: None means the payoff. Its callback may be late, doubled or reversed."""
        rng = self.rng
        payoff = amount is None
        over = ZERO
        if payoff and self.aside.random() < 0.03:  # the borrower rounds the payoff up: refunded
            over = Decimal(self.aside.randint(1, 1000)) / 100
        amount = self.owed(on) + over if amount is None else amount
        if amount <= 0:
            return
        self.n += 1
        ref = f"{self.bank}-R-{self.loan.loan_id}-{self.n}"
        occurred = self.sim._at(on, rng.uniform(8, 23))
        cmd = {
            "type": "repaid",
            "idempotency_key": ref,
            "occurred_at": occurred.isoformat(),
            "amount": fmt(amount),
            "bank_ref": ref,
            "value_date": on.isoformat(),
            "channel": rng.choice(("bank_transfer", "wallet")),
        }
        late_days = rng.randint(1, 4) if rng.random() < 0.10 else 0  # backdated when it arrives
        arrives = occurred + timedelta(days=late_days, minutes=rng.randint(1, 90))
        self.emit(arrives, cmd)
        if rng.random() < 0.05:  # the bank delivers the callback twice
            self.emit(arrives + timedelta(hours=rng.uniform(0.1, 30)), dict(cmd))
        if self.sim.bad_lines and rng.random() < 0.01:  # planted: a float amount from a broken integration
            self.emit(
                arrives + timedelta(minutes=5),
                {**cmd, "idempotency_key": f"bad-float-{ref}", "bank_ref": f"bad-float-{ref}", "amount": float(amount)},
            )
        # bounced: reversed, and the borrower pays off again. Only a payoff bounces: a part-payment paid
        # off again would close a loan planned to go bad, or pay twice beside the payoff planned after it
        if rng.random() < 0.015 and payoff:
            back = arrives + timedelta(days=rng.randint(1, 2))
            self.emit(
                back,
                {
                    "type": "reversed",
                    "idempotency_key": f"rev-{ref}",
                    "occurred_at": back.isoformat(),
                    "reverses": ref,
                    "reason": "payment returned by the bank",
                },
            )
            self.pay(back.date() + timedelta(days=rng.randint(1, 5)), None)
            return
        self.movements.append(Movement(ref, on, amount, seq=self.n))
        if self.owed(on) == 0:
            self.loan.settles_on = on
        if over:
            self.refund(on + timedelta(days=self.aside.randint(1, 5)), over, after=arrives)

    def refund(self, on: date, amount: Decimal, after: datetime) -> None:
        """The platform pays an overpayment back through the loan's bank, once the payment is in."""
        self.n += 1
        ref = f"{self.bank}-F-{self.loan.loan_id}-{self.n}"
        at = max(self.sim._at(on, self.aside.uniform(9, 18)), after + timedelta(hours=1))
        self.emit(
            at,
            {
                "type": "refunded",
                "idempotency_key": ref,
                "occurred_at": at.isoformat(),
                "amount": fmt(amount),
                "bank_ref": ref,
                "value_date": on.isoformat(),
            },
        )
        self.movements.append(Movement(ref, on, amount, kind="refund", seq=self.n))

    def waive_penalty(self, on: date) -> None:
        """Collections forgive the penalty owed on ``on`` (a settlement discount), early that day."""
        funded_on = self.loan.funded_on
        if funded_on is None:  # (never: a life is planned for funded loans only)
            return
        owed = position_as_of(self.terms, funded_on, self.movements, on, self.loan.written_off_from).outstanding
        penalty = owed.penalty
        if penalty <= 0:
            return
        self.n += 1
        key = f"WAIVE-{self.loan.loan_id}-{self.n}"
        at = self.sim._at(on, 8.5)
        self.emit(
            at,
            {
                "type": "waived",
                "idempotency_key": key,
                "occurred_at": at.isoformat(),
                "amount": fmt(penalty),
                "component": "penalty",
                "value_date": on.isoformat(),
                "reason": "settlement in collections: the penalty is forgiven, the rest is paid",
            },
        )
        self.movements.append(Movement(key, on, penalty, kind="waiver", seq=self.n, component="penalty"))

    def collect(self, on: date, amount: Decimal | None, agency: str) -> None:
        """A collection valued ``on`` by ``agency`` (the loan's holder that day), received an hour later."""
        amount = self.owed(on) if amount is None else amount
        if amount <= 0:
            return
        self.n += 1
        key = f"COL-{self.loan.loan_id}-{self.n}"
        at = self.sim._at(on, self.rng.uniform(9, 20))
        late = (on - self.due).days
        written_off = self.loan.written_off_from is not None and on >= self.loan.written_off_from
        self.emit(
            at + timedelta(hours=1),
            {
                "type": "collected",
                "idempotency_key": key,
                "occurred_at": at.isoformat(),
                "amount": fmt(amount),
                "agency": agency,
                "value_date": on.isoformat(),
                "stage": "recovery" if written_off else "M1" if late <= 30 else "M2" if late <= 60 else "M3",
            },
        )
        self.movements.append(Movement(key, on, amount, kind="collection", seq=self.n))
        if self.owed(on) == 0:
            self.loan.settles_on = on
