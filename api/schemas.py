"""Shapes for the OpenAPI document. Requests are validated by ledger.commands, not here;
responses are built as the CLI's ``--json`` builds them. These models only describe them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from ledger.commands import Command


class Error(BaseModel):
    error: str


class Accepted(BaseModel):
    status: Literal["appended", "duplicate"]
    loan_id: str


class Rejected(BaseModel):
    status: Literal["rejected"]
    loan_id: str | None = None
    error: str


class BatchItem(BaseModel):
    index: int
    status: Literal["appended", "duplicate", "rejected"]
    loan_id: str | None
    error: str | None = None


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


class Balances(BaseModel):
    as_of: str
    by: Literal["bank", "product", "bucket", "state"]
    groups: list[BalanceGroup]
    trial_balance: str


class ProjectionStatus(BaseModel):
    name: str
    position: int
    head: int
    lag: int


class Health(BaseModel):
    status: Literal["ok", "unavailable"]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "the body is not JSON"},
    401: {"model": Error, "description": "no valid, unrevoked bearer token"},
    403: {"model": Error, "description": "the token lacks the scope (append for POST, read for GET)"},
    413: {"model": Error, "description": "a body over 10 MiB, or a batch over 10,000 commands"},
    422: {"model": Error, "description": "invalid input"},
}


def command_schemas() -> dict[str, Any]:
    """The command models' JSON Schema as OpenAPI components: ``Command`` (one of the types) and ``Batch``."""
    schema = TypeAdapter(Command).json_schema(ref_template="#/components/schemas/{model}")
    components: dict[str, Any] = schema.pop("$defs", {})
    components["Command"] = schema
    components["Batch"] = {
        "type": "object",
        "properties": {
            "commands": {"type": "array", "maxItems": 10_000, "items": {"$ref": "#/components/schemas/Command"}}
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
