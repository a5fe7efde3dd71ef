"""What a fixed input stores, byte for byte: the proof that a faster append path writes the same events.

``python tests/support/stored_golden.py`` rewrites ``stored_golden.jsonl`` from the code on
``sys.path``; it was written by the append path as it was before the parsing and event-creation
speed-ups (commit d733726), and tests/test_stored_bytes.py holds today's path to it. The simulated
part of its input is frozen in ``stored_golden_input.jsonl`` (the simulator's stream as of the
merge of issues 21, 22 and 24: agencies, waivers, refunds, two models), so the simulator may change
its traffic without changing what this test stores; ``--simulated`` rewrites that file too.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

GOLDEN = Path(__file__).with_name("stored_golden.jsonl")
# The simulator's stream as it was when the golden file was written (seed 11, 120 loans, 30 days,
# bad lines), frozen: the simulator may change its traffic without changing what this test stores.
SIMULATED = Path(__file__).with_name("stored_golden_input.jsonl")
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
# The library stamps each event with the time it was created: the one field that differs by run.
_TIMESTAMP = re.compile(rb'"timestamp":\{"_type_":"datetime_iso","_data_":"[^"]*"\}')

# Text and numbers a fast path could get wrong: non-ASCII, JSON fractions for rates, integers for
# money, an offset other than +08:00, personal data, a decline, an agency's spell and a collection without stage.
_EXTRA = [
    {"type": "applied", "loan_id": "U1", "idempotency_key": "app-U1", "occurred_at": "2026-03-02T01:02:03.456789Z",
     "borrower_id": "B-u1", "principal": 1500, "term_days": 21, "product": "消费贷 ü", "channel": "wechat-小程序",
     "borrower": {"name": "张三", "phone": "+86 138 0000 0000"}},
    {"type": "scored", "loan_id": "U1", "idempotency_key": "score-U1", "occurred_at": "2026-03-02T09:02:03-05:00",
     "score": 0.5, "model_version": "m-ß", "decision": "approved", "principal": "1500.00", "term_days": 21,
     "daily_rate": 0.0004, "fee": 0, "penalty_daily_rate": "0.0010", "grace_days": 3},
    {"type": "funded", "loan_id": "U1", "idempotency_key": "fund-U1", "occurred_at": "2026-03-03T10:00:00+08:00",
     "bank": "BANKB", "bank_ref": "B/ü 1", "amount": "1500", "value_date": "2026-03-03"},
    {"type": "repaid", "loan_id": "U1", "idempotency_key": "rep-U1", "occurred_at": "2026-03-05T10:00:00+08:00",
     "amount": "12.50", "bank_ref": 'R "1"', "value_date": "2026-03-05"},
    {"type": "assigned", "loan_id": "U1", "idempotency_key": "asg-U1", "occurred_at": "2026-03-26T10:00:00+08:00",
     "agency": "Agence é", "value_date": "2026-03-26"},
    {"type": "collected", "loan_id": "U1", "idempotency_key": "col-U1", "occurred_at": "2026-03-26T11:00:00+08:00",
     "amount": "0.01", "agency": "Agence é", "value_date": "2026-03-26"},
    {"type": "recalled", "loan_id": "U1", "idempotency_key": "rcl-U1", "occurred_at": "2026-03-27T09:00:00Z",
     "value_date": "2026-03-27"},
    {"type": "reversed", "loan_id": "U1", "idempotency_key": "rev-U1", "occurred_at": "2026-03-28T10:00:00+08:00",
     "reverses": "col-U1", "reason": 'retour "bancaire" \\ é'},
    {"type": "applied", "loan_id": "U2", "idempotency_key": "app-U2", "occurred_at": "2026-03-02T10:00:00+08:00",
     "borrower_id": "B-u2", "principal": "800.00", "term_days": 7, "product": "payday", "channel": "app"},
    {"type": "scored", "loan_id": "U2", "idempotency_key": "score-U2", "occurred_at": "2026-03-02T10:00:01+08:00",
     "score": "0.1", "model_version": "m1", "decision": "declined"},
]  # fmt: skip


def input_lines() -> list[str]:
    from ledger.commands import COMMAND_TYPES

    lines = SIMULATED.read_text(encoding="utf-8").splitlines()
    for name in COMMAND_TYPES:  # the examples in the contract's order, which tells their loan's life
        lines += (EXAMPLES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    lines += [json.dumps(c, ensure_ascii=False) for c in _EXTRA]
    lines += [json.dumps(c) for c in _EXTRA[:2]]  # the same again, non-ASCII escaped: duplicates
    return lines


def stored(app) -> list[dict]:
    """Each line's outcome, then every stored event (its state with the time stamp masked) and key."""
    from ledger.ingest import append_lines

    lines = input_lines()
    out: list[dict] = []
    for item in append_lines(app, [line.encode() for line in lines]):
        o = item.outcome
        out.append({"line": item.line, "status": o.status, "loan_id": o.loan_id, "error": o.error})
    keys: list[str] = []
    for n in app.recorder.select_notifications(start=1, limit=100_000):
        state = _TIMESTAMP.sub(b'"timestamp":"-"', n.state)
        out.append({"event": str(n.originator_id), "version": n.originator_version, "topic": n.topic,
                    "state": state.decode("utf-8")})  # fmt: skip
    for cmd_line in lines:
        try:
            keys.append(json.loads(cmd_line)["idempotency_key"])
        except (ValueError, KeyError, TypeError):
            continue
    for key, record in sorted(app.recorder.find_keys(sorted(set(keys))).items()):
        out.append({"key": key, "loan_id": record.loan_id, "content_hash": record.content_hash,
                    "command": record.command})  # fmt: skip
    return out


if __name__ == "__main__":
    import tempfile

    from ledger.app import Ledger
    from ledger.config import Settings

    if "--simulated" in sys.argv[1:]:  # freeze today's simulated stream (seed 11, 120 loans, 30 days, bad lines)
        from datetime import date

        from simulator.platform import Simulator

        simulated = Simulator(11, 120, date(2026, 1, 1), days=30, bad_lines=True).lines()
        SIMULATED.write_text("".join(line + "\n" for line in simulated), encoding="utf-8")
    with tempfile.TemporaryDirectory() as d:
        app = Ledger(Settings(db_url=f"sqlite:///{d}/golden.db"))
        rows = stored(app)
        app.close()
    GOLDEN.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} rows to {GOLDEN}", file=sys.stderr)
