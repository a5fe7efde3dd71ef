"""Hand-built command dicts for tests: the worked example of docs/rules.md and variations of it."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import strategies as st

T0 = "2026-02-28T10:00:00+08:00"


def applied(loan_id="L1", **over):
    return {
        "type": "applied",
        "loan_id": loan_id,
        "idempotency_key": f"app-{loan_id}",
        "occurred_at": T0,
        "borrower_id": "B1",
        "principal": "1000.00",
        "term_days": 14,
        "product": "payday",
        "channel": "app",
        **over,
    }


def approved(loan_id="L1", **over):
    return {
        "type": "scored",
        "loan_id": loan_id,
        "idempotency_key": f"score-{loan_id}",
        "occurred_at": T0,
        "score": "0.82",
        "model_version": "risk-1",
        "decision": "approved",
        "principal": "1000.00",
        "term_days": 14,
        "daily_rate": "0.0005",
        "fee": "5.00",
        "penalty_daily_rate": "0.001",
        **over,
    }


def declined(loan_id="L1", **over):
    return {
        "type": "scored",
        "loan_id": loan_id,
        "idempotency_key": f"score-{loan_id}",
        "occurred_at": T0,
        "score": "0.12",
        "model_version": "risk-1",
        "decision": "declined",
        **over,
    }


def funded(loan_id="L1", **over):
    return {
        "type": "funded",
        "loan_id": loan_id,
        "idempotency_key": f"BANKA-D-{loan_id}",
        "occurred_at": "2026-03-01T09:00:00+08:00",
        "bank": "BANKA",
        "bank_ref": f"BANKA-D-{loan_id}",
        "amount": "1000.00",
        "value_date": "2026-03-01",
        **over,
    }


def repaid(loan_id="L1", ref="R1", amount="500.00", value_date="2026-03-08", **over):
    return {
        "type": "repaid",
        "loan_id": loan_id,
        "idempotency_key": ref,
        "occurred_at": "2026-03-08T12:00:00+08:00",
        "amount": amount,
        "bank_ref": ref,
        "value_date": value_date,
        **over,
    }


def waived(loan_id="L1", key="WV1", amount="1.00", component="penalty", value_date="2026-04-01", **over):
    return {
        "type": "waived",
        "loan_id": loan_id,
        "idempotency_key": key,
        "occurred_at": "2026-04-02T12:00:00+08:00",
        "amount": amount,
        "component": component,
        "value_date": value_date,
        "reason": "settlement discount",
        **over,
    }


def refunded(loan_id="L1", ref="RF1", amount="1.00", value_date="2026-04-01", **over):
    return {
        "type": "refunded",
        "loan_id": loan_id,
        "idempotency_key": ref,
        "occurred_at": "2026-04-02T12:00:00+08:00",
        "amount": amount,
        "bank_ref": ref,
        "value_date": value_date,
        **over,
    }


def domain_example(loan_id="L1"):
    return [applied(loan_id), approved(loan_id), funded(loan_id)]


def assigned(agency, value_date, loan_id="L1", key=None, **over):
    return {
        "type": "assigned",
        "loan_id": loan_id,
        "idempotency_key": key or f"asg-{loan_id}-{agency}-{value_date}",
        "occurred_at": f"{value_date}T09:30:00+08:00",
        "agency": agency,
        "value_date": value_date,
        **over,
    }


def recalled(value_date, loan_id="L1", key=None, **over):
    return {
        "type": "recalled",
        "loan_id": loan_id,
        "idempotency_key": key or f"rcl-{loan_id}-{value_date}",
        "occurred_at": f"{value_date}T09:00:00+08:00",
        "value_date": value_date,
        **over,
    }


def collected(agency, value_date, amount="100.00", loan_id="L1", key=None, **over):
    return {
        "type": "collected",
        "loan_id": loan_id,
        "idempotency_key": key or f"col-{loan_id}-{agency}-{value_date}-{amount}",
        "occurred_at": f"{value_date}T15:00:00+08:00",
        "amount": amount,
        "agency": agency,
        "value_date": value_date,
        **over,
    }


@st.composite
def loan_streams(draw, loan_id="L1", adjustments=False):
    """One loan's commands in arrival order: repayments, collections, reversals, maybe a write-off; with
    ``adjustments`` also waivers and refunds (a refund of more than is held is refused, and may be
    accepted if sent again after more money came in: no stream for "a refusal stays a refusal").

    Value dates are drawn independently of arrival order, so many are backdated.
    """
    cmds = domain_example(loan_id)
    moves = []
    for i in range(draw(st.integers(0, 6))):
        kinds = ["repaid", "repaid", "collected", "reversed"] + (["waived", "refunded"] if adjustments else [])
        kind = draw(st.sampled_from(kinds))
        day = (date(2026, 3, 1) + timedelta(days=draw(st.integers(0, 120)))).isoformat()
        amount = f"{draw(st.integers(1, 120_000)) / 100:.2f}"
        small = f"{draw(st.integers(1, 2_000)) / 100:.2f}"
        if kind == "repaid":
            moves.append(repaid(loan_id, ref=f"{loan_id}-R{i}", amount=amount, value_date=day))
        elif kind == "waived":
            component = draw(st.sampled_from(["penalty", "interest", "fee", "principal"]))
            moves.append(waived(loan_id, key=f"{loan_id}-V{i}", amount=small, component=component, value_date=day))
        elif kind == "refunded":
            moves.append(refunded(loan_id, ref=f"{loan_id}-F{i}", amount=small, value_date=day))
        elif kind == "collected":
            moves.append(
                {
                    "type": "collected",
                    "loan_id": loan_id,
                    "idempotency_key": f"{loan_id}-C{i}",
                    "occurred_at": "2026-05-01T12:00:00+08:00",
                    "amount": amount,
                    "agency": "inhouse",
                    "value_date": day,
                }
            )
        elif moves:
            target = draw(st.sampled_from(moves))["idempotency_key"]
            moves.append(
                {
                    "type": "reversed",
                    "loan_id": loan_id,
                    "idempotency_key": f"{loan_id}-X{i}",
                    "occurred_at": "2026-05-02T12:00:00+08:00",
                    "reverses": target,
                    "reason": "bounced",
                }
            )
    if draw(st.booleans()):
        day = (date(2026, 3, 1) + timedelta(days=draw(st.integers(100, 130)))).isoformat()
        moves.append(
            {
                "type": "written_off",
                "loan_id": loan_id,
                "idempotency_key": f"{loan_id}-W",
                "occurred_at": "2026-07-10T23:59:59+08:00",
                "value_date": day,
                "reason": "test",
            }
        )
    return cmds + moves
