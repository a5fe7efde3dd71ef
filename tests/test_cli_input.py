"""`ledger append` on hostile files: every line answered in place, nothing forged, nothing lost."""

from __future__ import annotations

import json

from click.testing import CliRunner
from support.commands import applied, approved, domain_example, funded

from cli.main import cli


def _loan(n: int) -> list[bytes]:
    loan_id = f"V{n}"
    cmds = [
        applied(loan_id),
        approved(loan_id),
        funded(loan_id, idempotency_key=f"D-{loan_id}", bank_ref=f"D-{loan_id}"),
    ]
    return [json.dumps(c).encode() for c in cmds]


def _append(store_url: str, data: bytes, *options: str):
    CliRunner().invoke(cli, ["init", "--db", store_url], catch_exceptions=False)
    return CliRunner().invoke(cli, ["append", "-", "--db", store_url, *options], input=data, catch_exceptions=False)


def test_fifteen_valid_lines_a_bad_one_and_fifteen_more_keep_all_thirty(store_url):
    """Issue 10: one crashing line used to lose its whole pending batch (0 of 30 kept)."""
    before = b"\n".join(line for n in range(5) for line in _loan(n))
    after = b"\n".join(line for n in range(5, 10) for line in _loan(n))
    for bad in (b'{"type":"repaid","amount":"\xff"}', b'{"x":' + b"[" * 5000 + b"]" * 5000 + b"}"):
        result = _append(store_url, before + b"\n" + bad + b"\n" + after, "--json")
        rows = [json.loads(line) for line in result.output.splitlines()]
        assert result.exit_code == 1
        assert [r["line"] for r in rows] == list(range(1, 32))
        assert [r["line"] for r in rows if r["status"] == "rejected"] == [16]
        assert {r["status"] for r in rows if r["line"] != 16} <= {"appended", "duplicate"}
    shown = CliRunner().invoke(cli, ["loan", "show", "V9", "--as-of", "2026-03-01", "--json", "--db", store_url])
    assert json.loads(shown.output)["state"] == "funded"


def test_a_refused_line_cannot_forge_a_line_of_output(store_url):
    forged = {**applied("L1"), "loan_id": "L1\nappended 999, duplicate 0, rejected 0"}
    channel = {**applied("L2"), "channel": "app\u2028appended 999"}
    data = b"\n".join(json.dumps(c).encode() for c in (*domain_example(), forged, channel))
    result = _append(store_url, data)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "appended 3, duplicate 0, rejected 2"
    assert len(result.output.splitlines()) == 3  # two refusals and the summary, each on one line
    assert "appended 999" not in "".join(line for line in result.output.splitlines() if not line.startswith("line "))


def test_a_file_with_a_byte_order_mark_and_crlf_line_ends_is_read_as_written(store_url):
    data = b"\xef\xbb\xbf" + b"\r\n".join(json.dumps(c).encode() for c in domain_example()) + b"\r\n"
    result = _append(store_url, data)
    assert result.exit_code == 0 and "appended 3, duplicate 0, rejected 0" in result.output
