"""Issue 23: forgeries and damaged rows that `ledger verify` passed or crashed on, each a regression test.

The book is test_audit.book: L1 applied, scored, funded, repaid (versions 1-4); L2 applied, scored,
funded. Tampering goes through a raw owner's connection (tests/support/tamper.py).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from support.commands import repaid
from support.tamper import EVENTS, kind, raw, triggers_off
from test_audit import book, oid, problems, q, run, verify

from cli.main import cli
from domain.loan import loan_uuid
from eventstore.audit import chain_hash
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings


def stored(url: str, loan_id: str, version: int) -> tuple[str, bytes, str]:
    """(topic, state, chain hash) of one stored event."""
    with raw(url) as con:
        row = con.execute(
            q(
                url,
                f"SELECT topic, state, chain_hash FROM {EVENTS[kind(url)]} WHERE originator_id = %s "
                "AND originator_version = %s",
            ),
            (oid(url, loan_id), version),
        ).fetchone()
    return row[0], bytes(row[1]), row[2]


def forge_repayment(url: str, with_key_record: bool) -> None:
    """What a role with INSERT on the events table can do: a fifth event on L1, a repayment nobody made,
    its chain hash recomputed and its recorded time copied from the real repayment (an older event)."""
    topic, state, h4 = stored(url, "L1", 4)
    data = json.loads(state)
    data["idempotency_key"] = data["bank_ref"] = "FORGED-1"
    forged = json.dumps(data, separators=(",", ":")).encode()
    h5 = chain_hash(h4, loan_uuid("L1"), 5, topic, forged)
    with raw(url) as con:
        con.execute(
            q(
                url,
                f"INSERT INTO {EVENTS[kind(url)]} (originator_id, originator_version, topic, state, chain_hash) "
                "VALUES (%s, %s, %s, %s, %s)",
            ),
            (oid(url, "L1"), 5, topic, forged, h5),
        )
        if with_key_record:
            con.execute(
                q(url, "INSERT INTO ledger_idempotency (key, loan_id, content_hash, command) VALUES (%s, %s, %s, %s)"),
                ("FORGED-1", "L1", "0" * 64, "repaid"),
            )


@pytest.mark.parametrize("with_key_record", [False, True], ids=["event only", "event and key record"])
def test_a_forged_event_with_a_recomputed_hash_and_an_old_recorded_time_fails_verify(
    store_url, tmp_path, with_key_record
):
    """Reproduction: it passed `verify --checkpoint`: times going backwards in log order and an event
    without its idempotency record were not checked."""
    book(store_url)
    later = Ledger(Settings(db_url=store_url))  # a later commit: the book's events share one recorded time
    assert later.append([command_from_dict(repaid("L2", ref="R2", amount="10.00"))])[0].status == "appended"
    later.close()
    cp = tmp_path / "checkpoint.json"
    assert run("checkpoint", "--out", cp, "--db", store_url).exit_code == 0
    forge_repayment(store_url, with_key_record)
    code, report = verify(store_url, "--checkpoint", cp)
    assert code == 1
    found = problems(report)
    assert ("L1", 5, "misdated") in found
    assert (("L1", 5, "inserted") in found) is not with_key_record
    assert len(found) == 1 + (not with_key_record)
    misdated = next(p for p in report["problems"] if p["problem"] == "misdated")
    assert "before the event logged ahead of it" in misdated["detail"]


def test_a_whole_loan_deleted_fails_verify_by_its_idempotency_records(store_url):
    """Reproduction: deleting every event of L2 passed `verify` without a checkpoint, its keys still stored."""
    book(store_url)
    with raw(store_url) as con, triggers_off(store_url, con, EVENTS[kind(store_url)]):
        con.execute(
            q(store_url, f"DELETE FROM {EVENTS[kind(store_url)]} WHERE originator_id = %s"), (oid(store_url, "L2"),)
        )
    code, report = verify(store_url)
    assert code == 1
    assert problems(report) == [("L2", None, "removed")] * 3
    assert sorted(p["idempotency_key"] for p in report["problems"]) == ["BANKA-D-L2", "app-L2", "score-L2"]


def test_swapping_two_events_contents_and_hashes_names_those_two_only(store_url):
    """Reproduction: the untouched repayment after the swapped pair was reported edited."""
    book(store_url)
    events = EVENTS[kind(store_url)]
    v2, v3 = stored(store_url, "L1", 2), stored(store_url, "L1", 3)
    with raw(store_url) as con, triggers_off(store_url, con, events):
        for version, (topic, state, h) in ((2, v3), (3, v2)):
            con.execute(
                q(
                    store_url,
                    f"UPDATE {events} SET topic = %s, state = %s, chain_hash = %s "
                    "WHERE originator_id = %s AND originator_version = %s",
                ),
                (topic, state, h, oid(store_url, "L1"), version),
            )
    code, report = verify(store_url)
    assert code == 1
    assert problems(report) == [("L1", 2, "reordered"), ("L1", 3, "reordered")]


# the UPDATE's SET clause, and the version of L1 it hits
DAMAGE = {
    "state NULL": ("state = NULL", 2),
    "state not JSON": ("state = {not_json}", 4),
    "version 0": ("originator_version = 0", 2),
    "hash not hex": ("chain_hash = 'zz'", 2),
}
# what only SQLite's columns can hold (PostgreSQL's are typed: bytea, uuid, bigint)
DAMAGE_SQLITE = {
    "state text": ("state = CAST(state AS TEXT)", 2),
    "version text": ("originator_version = 'two'", 2),
    "version NULL": ("originator_version = NULL", 2),
    "stream id not a UUID": ("originator_id = 'not-a-stream'", 2),
    "stream id NULL": ("originator_id = NULL", 2),
}


def damage_and_verify(url: str, change: str, version: int) -> None:
    book(url)
    events = EVENTS[kind(url)]
    not_json = "CAST('not json' AS BLOB)" if kind(url) == "sqlite" else "convert_to('not json', 'UTF8')"
    with raw(url) as con, triggers_off(url, con, events):
        updated = con.execute(
            q(
                url,
                f"UPDATE {events} SET {change.format(not_json=not_json)} "
                "WHERE originator_id = %s AND originator_version = %s",
            ),
            (oid(url, "L1"), version),
        )
        assert updated.rowcount == 1
    code, report = verify(url)  # json.loads: the output is JSON
    assert code == 1
    assert report["events"] == 7
    assert "unreadable" in {p["problem"] for p in report["problems"]}, report
    assert all(p.get("detail") for p in report["problems"] if p["problem"] == "unreadable")
    text = run("verify", "--db", url)
    assert text.exit_code == 1 and "Traceback" not in text.output
    assert "unreadable (its " in text.output


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_row_verify_cannot_decode_is_a_named_problem_never_a_traceback(store_url, damage):
    """Reproduction: verify printed a traceback (and no JSON under --json) on each of these rows."""
    damage_and_verify(store_url, *DAMAGE[damage])


@pytest.mark.parametrize("damage", DAMAGE_SQLITE)
def test_a_sqlite_row_of_the_wrong_type_is_a_named_problem_never_a_traceback(tmp_path, damage):
    url = f"sqlite:///{tmp_path}/ledger.db"
    damage_and_verify(url, *DAMAGE_SQLITE[damage])


def test_a_stored_version_of_a_million_is_named_in_two_lines(store_url):
    """A row at version 10^6: the 999,995 versions it skips are one `removed` item, not a million."""
    book(store_url)
    topic, state, _ = stored(store_url, "L1", 4)
    with raw(store_url) as con:
        con.execute(
            q(
                store_url,
                f"INSERT INTO {EVENTS[kind(store_url)]} (originator_id, originator_version, topic, state) "
                "VALUES (%s, %s, %s, %s)",
            ),
            (oid(store_url, "L1"), 10**6, topic, state),
        )
    code, report = verify(store_url)
    assert code == 1
    assert [(p["version"], p.get("through"), p["problem"]) for p in report["problems"]] == [
        (5, 999_999, "removed"),
        (10**6, None, "inserted"),
    ]


def test_problems_past_the_limit_are_counted_not_listed(store_url, monkeypatch):
    import ledger.verify

    book(store_url)
    events = EVENTS[kind(store_url)]
    with raw(store_url) as con, triggers_off(store_url, con, events):
        con.execute(f"UPDATE {events} SET chain_hash = NULL")  # seven events, each now `inserted`
    monkeypatch.setattr(ledger.verify, "MAX_PROBLEMS", 3)
    app = Ledger(Settings(db_url=store_url))
    report = ledger.verify.verify(app.recorder).as_json()
    app.close()
    assert len(report["problems"]) == 3 and report["more_problems"] == 4


def checkpoint_of(url: str, tmp_path, **change) -> str:
    path = tmp_path / "cp.json"
    assert run("checkpoint", "--out", path, "--db", url).exit_code == 0
    data = json.loads(path.read_text())
    for key, value in change.items():
        if key == "heads":
            value = value(data["heads"])
        data[key] = value
    path.write_text(json.dumps(data))
    return str(path)


BAD_CHECKPOINTS = {
    "a head of 10^30": ({"head": 10**30}, "head 1000000000000000000000000000000 is not a notification id"),
    "a version of 10^6": ({"heads": lambda h: [[*h[0][:2], 10**6, h[0][3]], *h[1:]]}, "version 1000000 is not"),
    "a head that is no list": ({"heads": lambda h: [{"stream": h[0][0]}, *h[1:]]}, "heads[0] is not [stream"),
    "a stream that is no stream": ({"heads": lambda h: [["L1", *h[0][1:]], *h[1:]]}, "stream 'L1' is not 32 hex"),
    "heads out of order": ({"heads": lambda h: h[::-1]}, "is not after the one before it"),
    "a hash that is no hash": ({"heads": lambda h: [[*h[0][:3], "x"], *h[1:]]}, "hash 'x' is not 64 hex"),
    "a digest that is no digest": ({"digest": 5}, "digest 5 is not 64 hex digits"),
}


@pytest.mark.parametrize("bad", BAD_CHECKPOINTS)
def test_a_bad_checkpoint_file_is_a_clean_exit_2_naming_the_fault(store_url, tmp_path, bad):
    """Reproduction: tracebacks, and for a version of 10^6 a million problems in 600 MB."""
    book(store_url)
    change, message = BAD_CHECKPOINTS[bad]
    path = checkpoint_of(store_url, tmp_path, **change)
    for args in (["verify", "--checkpoint", path], ["verify", "--json", "--checkpoint", path]):
        result = CliRunner().invoke(cli, [*args, "--db", store_url])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and message in result.output, result.output
    assert json.loads(result.output)["error"].startswith("Invalid value for --checkpoint: ")


def test_dev_zero_as_a_checkpoint_is_refused_after_its_first_chunk(store_url):
    book(store_url)
    result = CliRunner().invoke(cli, ["verify", "--checkpoint", "/dev/zero", "--db", store_url])
    assert result.exit_code == 2
    assert "/dev/zero is not a checkpoint written by `ledger checkpoint`: it holds bytes that are not text" in (
        result.output
    )


def test_a_checkpoint_still_verifies_a_store_it_matches(store_url, tmp_path):
    book(store_url)
    path = checkpoint_of(store_url, tmp_path)
    assert verify(store_url, "--checkpoint", path) == (0, {"ok": True, "events": 7, "streams": 2})


@pytest.mark.parametrize("loan_id", ["L1", "EX3", "贷款-1", "x" * 64])
def test_verifys_own_stream_id_of_a_loan_is_the_ledgers(loan_id):
    """verify computes a record's stream id without building UUIDs (it does one a record): the same bytes."""
    from ledger.verify import _loan_stream

    assert _loan_stream(loan_id) == loan_uuid(loan_id).bytes


def test_a_store_with_reconciliation_runs_verifies_and_a_forged_run_still_fails(store_url, tmp_path):
    """Reproduction (found with issue 26): one `ledger reconcile` made `verify` report the run's events
    unreadable ("no idempotency key"): they are recorded without a command, so they have no key."""
    book(store_url)
    file = tmp_path / "bank.csv"
    file.write_text("bank_ref,loan_id,type,amount,value_date\n", encoding="utf-8")
    for _ in range(2):  # the stream's first event and a later one
        assert run("reconcile", file, "--bank", "BANKA", "--json", "--db", store_url).exit_code == 0
    code, report = verify(store_url)
    assert (code, report.get("problems", [])) == (0, []), report
    # the exemption is the runs' stream's, not any keyless event's: a keyless event in a loan's stream is named
    with raw(store_url) as con, triggers_off(store_url, con, EVENTS[kind(store_url)]):
        con.execute(
            q(
                store_url,
                f"UPDATE {EVENTS[kind(store_url)]} SET state = %s WHERE originator_id = %s AND originator_version = 2",
            ),
            (b'{"timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"}}', oid(store_url, "L2")),
        )
    code, report = verify(store_url)
    assert code == 1 and ("L2", 2, "unreadable") in problems(report), report
