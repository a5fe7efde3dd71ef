"""Shapes for the OpenAPI document. Requests are validated by ledger.commands, not here;
responses are built as the CLI's ``--json`` builds them. These models only describe them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from ledger.commands import Command


class ErrorBody(BaseModel):
    """``code``: a stable word to act on; ``message``: for a person; ``field``: the field or parameter at fault."""

    code: str
    message: str
    field: str | None


class Error(BaseModel):
    error: ErrorBody


class Accepted(BaseModel):
    status: Literal["appended", "duplicate"]
    loan_id: str


class Rejected(BaseModel):
    status: Literal["rejected"]
    loan_id: str | None
    error: ErrorBody


class BatchItem(BaseModel):
    index: int
    status: Literal["appended", "duplicate", "rejected"]
    loan_id: str | None
    error: ErrorBody | None = None


class BatchResult(BaseModel):
    results: list[BatchItem]
    appended: int
    duplicate: int
    rejected: int


class Balances5(BaseModel):
    principal: str
    interest: str
    fee: str
    penalty: str
    overpayment: str
    total: str


class LoanView(BaseModel):
    """Amounts are strings with 2 places; more keys may appear."""

    loan_id: str
    as_of: str
    known_at: str | None
    state: Literal["applied", "approved", "declined", "funded", "overdue", "repaid", "written_off"]
    bank: str | None
    due_date: str | None
    dpd: int
    bucket: Literal["current", "M1", "M2", "M3", "M3+"]
    terms: dict[str, Any] | None
    balances: Balances5
    events: list[dict[str, Any]]


class BalanceGroup(Balances5):
    key: str | None
    loans: int


class BankPayable(BaseModel):
    """Principal the bank advanced, remitted to it, paid under its guarantee, its interest, still owed."""

    bank: str
    funded: str
    remitted: str
    compensated: str
    interest: str
    owed: str


class Balances(BaseModel):
    as_of: str
    by: str
    groups: list[BalanceGroup]
    trial_balance: str
    banks: list[BankPayable] | None = None  # with by=bank


class LoanRow(BaseModel):
    loan_id: str
    state: Literal["funded", "overdue", "repaid", "written_off"]
    bucket: Literal["current", "M1", "M2", "M3", "M3+"]
    dpd: int
    bank: str
    product: str
    due_date: str
    total: str


class LoanList(BaseModel):
    as_of: str
    loans: list[LoanRow]
    next_cursor: str | None


class LoanEvents(BaseModel):
    """Each event: its own fields plus ``version``, ``type``, ``recorded_at``."""

    loan_id: str
    known_at: str | None
    events: list[dict[str, Any]]
    next_cursor: str | None


class JournalLine(BaseModel):
    """A line posted once (``nights`` null), or an accrual run cut to its nights in the range."""

    line_id: int
    loan_id: str
    bank: str
    entry: str
    account: str
    value_date: str
    last_date: str
    nights: int | None
    debit: str
    credit: str


class Journal(BaseModel):
    from_: str = Field(alias="from")
    to: str
    lines: list[JournalLine]
    next_cursor: str | None


class SettlementLine(BaseModel):
    loan_id: str
    kind: str  # principal, interest, principal_reversal, interest_reversal, compensation_principal, ...
    amount: str


class Settlement(BaseModel):
    """A bank-day as `ledger settle` recorded it; ``lines`` a page of its loans, in loan id order."""

    bank: str
    value_date: str
    recorded_at: str
    loans_settled: int
    principal: str
    interest: str
    compensation: str
    total: str
    lines_sha256: str
    lines: list[SettlementLine]
    next_cursor: str | None


class ProjectionStatus(BaseModel):
    name: str
    position: int
    head: int
    lag: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]


_ERRORS: dict[int, str] = {
    400: "the body is not UTF-8 JSON",
    401: "no valid, unrevoked, unexpired bearer token",
    403: "the token lacks the scope (append for POST, read for GET), or its party cannot read yet",
    413: "a body over 10 MiB, or a batch over 10,000 commands",
    422: "an invalid parameter, an unknown one, or one given twice",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route may give, each in the one error shape."""
    return {status: {"model": Error, "description": _ERRORS[status]} for status in statuses}


def command_schemas() -> dict[str, Any]:
    """The command models' JSON Schema as OpenAPI components: ``Command`` (one of the types) and ``Batch``."""
    schema = TypeAdapter(Command).json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = schema.pop("$defs", {})
    components["Command"] = schema
    components["Batch"] = {
        "type": "object",
        "properties": {
            "commands": {
                "type": "array",
                "maxItems": 10_000,
                # each item should be a Command; one that is not is answered rejected at its index
                "items": {"anyOf": [{"$ref": "#/components/schemas/Command"}, {}]},
            }
        },
        "required": ["commands"],
        "additionalProperties": False,
    }
    return components


def body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


class ModelReport(BaseModel):
    """`models`: one object per model version and period (`period` "all" for the version overall) with
    applications, approval_rate, funded, mean_score, fpd_matured, fpd_rate, matured, ever30_rate,
    loss_rate, auc, ks, psi, psi_band and csi (by feature); `deciles`: the score-decile table."""

    as_of: str
    known_at: str
    period: Literal["month", "week"]
    bad: str
    psi_bands: dict[str, str]
    models: list[dict[str, Any]]
    deciles: list[dict[str, Any]]
