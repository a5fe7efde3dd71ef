"""The small book the web view's tests read (tests/test_ui.py in process, tests/test_ui_browser.py in
a real browser): two banks' loans, and on L1 a repayment recorded after a later-valued one (late)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from support.commands import applied, approved, funded, repaid

from ledger.app import Ledger
from ledger.commands import parse_command
from ledger.tokens import create_token

AS_OF = "2026-03-20"
BEFORE_REPAYMENTS = "2026-03-04"


def first_batch() -> list[dict[str, Any]]:
    commands: list[dict[str, Any]] = []
    for loan_id, bank in (("L1", "BANKA"), ("L2", "BANKB")):
        ref = f"{bank}-D-{loan_id}"
        commands += [
            applied(loan_id, borrower_id=f"BORROWER-{loan_id}"),
            approved(loan_id),
            funded(loan_id, bank=bank, bank_ref=ref, idempotency_key=ref),
        ]
    commands.append(repaid("L1", ref="R-LATER", amount="300.00", value_date="2026-03-10"))
    return commands


def late_batch() -> list[dict[str, Any]]:
    """Recorded after the first batch, valued before its repayment: a late arrival."""
    return [repaid("L1", ref="R-EARLIER", amount="200.00", value_date="2026-03-05")]


def append(ledger: Ledger, commands: list[dict[str, Any]]) -> None:
    outcomes = ledger.append([parse_command(json.dumps(c)) for c in commands])
    refused = [o for o in outcomes if o.status not in ("appended", "duplicate")]
    if refused:
        raise RuntimeError(f"the test book was refused: {refused}")


def build(ledger: Ledger) -> dict[str, Any]:
    """The book, its tokens (name -> secret) and the moment between the two batches."""
    append(ledger, first_batch())
    between = datetime.now(UTC)
    append(ledger, late_batch())
    tokens = {
        "platform": create_token(ledger, "platform", ["read"]),
        "banka": create_token(ledger, "banka", ["read"], party="bank:BANKA"),
        "bankb": create_token(ledger, "bankb", ["read"], party="bank:BANKB"),
        "writer": create_token(ledger, "writer", ["append"]),
    }
    return {"tokens": tokens, "between": between.isoformat(timespec="microseconds")}
