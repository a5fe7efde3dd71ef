"""Audit: the store refuses edits, and `ledger verify` names every tamper an attacker with DB rights makes.

Tampering goes through a raw superuser connection that first switches the
append-only triggers off, as someone with database rights would.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import sqlite3
from datetime import date
from pathlib import Path
from uuid import UUID

import psycopg
import pytest
from click.testing import CliRunner
from support.commands import applied, approved, funded, repaid
from support.tamper import EVENTS, kind, raw, triggers_off

from cli.main import cli
from domain.loan import loan_uuid
from eventstore.audit import GENESIS, chain_hash, encode_event
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def q(url: str, sql: str) -> str:
    return sql if kind(url) == "postgres" else sql.replace("%s", "?")


def oid(url: str, loan_id: str):
    return loan_uuid(loan_id).hex if kind(url) == "sqlite" else loan_uuid(loan_id)


def book(url: str) -> None:
    """L1: applied, approved, funded 5000, repaid 4365.70 (version 4); L2: applied, approved, funded."""
    app = Ledger(Settings(db_url=url))
    commands = [
        applied("L1", principal="5000.00"),
        approved("L1", principal="5000.00"),
        funded("L1", amount="5000.00"),
        repaid("L1", ref="R1", amount="4365.70"),
        applied("L2"),
        approved("L2"),
        funded("L2"),
    ]
    outcomes = app.append([command_from_dict(c) for c in commands])
    assert [o.status for o in outcomes] == ["appended"] * 7
    app.close()


def verify(url: str, *extra):
    result = run("verify", "--json", "--db", url, *extra)
    return result.exit_code, json.loads(result.output)


def problems(report):
    return [(p["loan_id"], p["version"], p["problem"]) for p in report.get("problems", [])]


# ---- the encoding -----------------------------------------------------------------
def test_the_chain_encoding_and_hash_are_pinned():
    """Golden values: a change here makes every stored chain look edited, so it must be deliberate."""
    u = UUID("12345678-1234-5678-1234-567812345678")
    assert encode_event(u, 1, "t", b"ab").hex() == (
        "12345678123456781234567812345678" + "0000000000000001" + "00000001" + "74" + "0000000000000002" + "6162"
    )
    first = chain_hash(GENESIS, u, 1, "domain.loan:Loan.Applied", b'{"loan_id":"L1"}')
    assert first == "93456a6ba1aaeef68f1f08e3a02e54813713ca60e8e4346bfe03ddcfec2c65ef"
    assert chain_hash(first, u, 2, "domain.loan:Loan.Funded", b"{}") == (
        "25f38cad2b13949aba2e89b20051381568f6e42b2eb5d3de53c965f49d99dafb"
    )


# ---- append-only in the database ----------------------------------------------------
@pytest.mark.parametrize("table", ["events", "ledger_idempotency", "ledger_erasures"])
def test_update_and_delete_are_refused_by_the_database(store_url, table):
    book(store_url)
    table = EVENTS[kind(store_url)] if table == "events" else table
    column = {"ledger_idempotency": "key", "ledger_erasures": "reason"}.get(table, "originator_version")
    expected = sqlite3.DatabaseError if kind(store_url) == "sqlite" else psycopg.DatabaseError
    with raw(store_url) as con:
        if table == "ledger_erasures":  # SQLite's triggers are per row: give them one
            con.execute("INSERT INTO ledger_erasures (borrower_id, erased_at, reason) VALUES ('B1', '2026-03-01', 'r')")
        with pytest.raises(expected, match="append-only"):
            con.execute(f"UPDATE {table} SET {column} = {column}")
        with pytest.raises(expected, match="append-only"):
            con.execute(f"DELETE FROM {table}")
        if kind(store_url) == "postgres":
            with pytest.raises(expected, match="append-only"):
                con.execute(f"TRUNCATE {table}")
            con.execute("SET session_replication_role = replica")
            with pytest.raises(expected, match="append-only"):
                con.execute(f"DELETE FROM {table}")
    assert verify(store_url) == (0, {"ok": True, "events": 7, "streams": 2})


def test_init_puts_back_a_trigger_someone_disabled(store_url):
    book(store_url)
    events = EVENTS[kind(store_url)]
    with raw(store_url) as con:
        if kind(store_url) == "sqlite":
            con.execute(f"DROP TRIGGER {events}_no_delete")
        else:
            con.execute(f"ALTER TABLE {events} DISABLE TRIGGER ledger_append_only")
    assert run("init", "--db", store_url).exit_code == 0
    with raw(store_url) as con, pytest.raises((sqlite3.DatabaseError, psycopg.DatabaseError), match="append-only"):
        con.execute(f"DELETE FROM {events}")


def test_init_puts_back_a_trigger_replaced_by_one_that_never_fires(store_url):
    """Reproduction: `ledger init` re-enabled a disabled trigger but kept one replaced with `WHEN (false)`,
    which has the right name and is enabled."""
    book(store_url)
    events = EVENTS[kind(store_url)]
    with raw(store_url) as con:
        if kind(store_url) == "sqlite":
            con.execute(f"DROP TRIGGER {events}_no_delete")
            con.execute(f"CREATE TRIGGER {events}_no_delete BEFORE DELETE ON {events} WHEN 0 BEGIN SELECT 1; END")
        else:
            con.execute(
                f"CREATE OR REPLACE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON {events} "
                "FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION ledger_refuse_change()"
            )
            con.execute(f"ALTER TABLE {events} ENABLE ALWAYS TRIGGER ledger_append_only")  # as init leaves it
        con.execute("BEGIN")
        assert con.execute(f"DELETE FROM {events}").rowcount == 7  # the tamper works
        con.execute("ROLLBACK")
    assert run("init", "--db", store_url).exit_code == 0
    with raw(store_url) as con, pytest.raises((sqlite3.DatabaseError, psycopg.DatabaseError), match="append-only"):
        con.execute(f"DELETE FROM {events}")
    assert verify(store_url) == (0, {"ok": True, "events": 7, "streams": 2})


# ---- tampering, caught and named ------------------------------------------------------
def test_an_edited_repayment_amount_is_named(store_url):
    book(store_url)
    events = EVENTS[kind(store_url)]
    with raw(store_url) as con, triggers_off(store_url, con, events):
        # as a new user would: 4365.70 changed to 4000.00 in place
        as_text, as_bytes = (
            ("CAST(state AS TEXT)", "CAST({} AS BLOB)")
            if kind(store_url) == "sqlite"
            else ("convert_from(state, 'UTF8')", "convert_to({}, 'UTF8')")
        )
        edited = as_bytes.format(f"replace({as_text}, '4365.70', '4000.00')")
        updated = con.execute(f"UPDATE {events} SET state = {edited} WHERE originator_version = 4")
        assert updated.rowcount == 1
    code, report = verify(store_url)
    assert code == 1
    assert problems(report) == [("L1", 4, "edited")]


def test_a_removed_middle_event_is_named(store_url):
    book(store_url)
    events = EVENTS[kind(store_url)]
    with raw(store_url) as con, triggers_off(store_url, con, events):
        con.execute(
            q(store_url, f"DELETE FROM {events} WHERE originator_id = %s AND originator_version = 2"),
            (oid(store_url, "L1"),),
        )
    code, report = verify(store_url)
    assert code == 1 and problems(report) == [("L1", 2, "removed")]


def test_an_inserted_event_is_named(store_url):
    book(store_url)
    events = EVENTS[kind(store_url)]
    with raw(store_url) as con:
        # a second repayment nobody made, copied from the real one
        con.execute(
            q(
                store_url,
                f"INSERT INTO {events} (originator_id, originator_version, topic, state) "
                f"SELECT originator_id, 5, topic, state FROM {events} "
                "WHERE originator_id = %s AND originator_version = 4",
            ),
            (oid(store_url, "L1"),),
        )
    code, report = verify(store_url)
    assert code == 1 and problems(report) == [("L1", 5, "inserted")]


def test_swapped_events_are_named_reordered(store_url):
    book(store_url)
    events = EVENTS[kind(store_url)]
    l1 = oid(store_url, "L1")
    with raw(store_url) as con, triggers_off(store_url, con, events):
        for a, b in ((3, -3), (4, 3), (-3, 4)):
            con.execute(
                q(
                    store_url,
                    f"UPDATE {events} SET originator_version = %s WHERE originator_id = %s AND originator_version = %s",
                ),
                (b, l1, a),
            )
    code, report = verify(store_url)
    assert code == 1
    assert {v for _, v, _ in problems(report)} == {3, 4}
    assert {p for _, _, p in problems(report)} == {"reordered"}


def test_a_removed_tail_is_caught_by_its_idempotency_record_and_by_version_with_a_checkpoint(store_url, tmp_path):
    book(store_url)
    cp = tmp_path / "checkpoint.json"
    made = run("checkpoint", "--out", cp, "--json", "--db", store_url)
    assert made.exit_code == 0
    assert json.loads(made.output)["head"] >= 7
    assert verify(store_url, "--checkpoint", cp) == (0, {"ok": True, "events": 7, "streams": 2})
    events = EVENTS[kind(store_url)]
    with raw(store_url) as con, triggers_off(store_url, con, events):
        con.execute(
            q(store_url, f"DELETE FROM {events} WHERE originator_id = %s AND originator_version = 3"),
            (oid(store_url, "L2"),),
        )
    # a consistent shorter stream: no chain alone can tell, but the funding's key record is still there
    code, report = verify(store_url)
    assert code == 1 and problems(report) == [("L2", None, "removed")]
    assert "'BANKA-D-L2' was accepted, but its event is gone" in report["problems"][0]["detail"]
    code, report = verify(store_url, "--checkpoint", cp)
    assert code == 1 and problems(report) == [("L2", 3, "removed")]  # named once, by version


def test_a_rewritten_chain_is_caught_by_the_checkpoint(store_url, tmp_path):
    """The attacker edits the repayment and recomputes the loan's chain to match."""
    book(store_url)
    cp = tmp_path / "checkpoint.json"
    assert run("checkpoint", "--out", cp, "--db", store_url).exit_code == 0
    events = EVENTS[kind(store_url)]
    l1 = oid(store_url, "L1")
    with raw(store_url) as con, triggers_off(store_url, con, events):
        sel = q(store_url, f"SELECT topic, state FROM {events} WHERE originator_id = %s AND originator_version = 4")
        topic, state = con.execute(sel, (l1,)).fetchone()
        state = bytes(state).replace(b"4365.70", b"4000.00")
        prev = con.execute(
            q(store_url, f"SELECT chain_hash FROM {events} WHERE originator_id = %s AND originator_version = 3"), (l1,)
        ).fetchone()[0]
        con.execute(
            q(
                store_url,
                f"UPDATE {events} SET state = %s, chain_hash = %s WHERE originator_id = %s AND originator_version = 4",
            ),
            (state, chain_hash(prev, loan_uuid("L1"), 4, topic, state), l1),
        )
    assert verify(store_url)[0] == 0
    code, report = verify(store_url, "--checkpoint", cp)
    assert code == 1 and problems(report) == [("L1", 4, "edited")]


def test_a_store_from_before_the_chain_is_chained_when_opened(store_url):
    book(store_url)
    with raw(store_url) as con:
        con.execute(f"ALTER TABLE {EVENTS[kind(store_url)]} DROP COLUMN chain_hash")
    assert verify(store_url) == (0, {"ok": True, "events": 7, "streams": 2})
    app = Ledger(Settings(db_url=store_url))
    assert app.append([command_from_dict(repaid("L2", ref="R9", amount="10.00"))])[0].status == "appended"
    app.close()
    assert verify(store_url) == (0, {"ok": True, "events": 8, "streams": 2})


def test_a_checkpoint_that_is_not_one_is_a_usage_error(store_url, tmp_path):
    bad = tmp_path / "cp.json"
    bad.write_text('{"head": 1}')
    result = CliRunner().invoke(cli, ["verify", "--checkpoint", str(bad), "--db", store_url])
    assert result.exit_code == 2 and "not a checkpoint" in result.output


# ---- erasure that leaves nothing ---------------------------------------------------------
PERSONAL = (b"13812345678", b"13900000001", b"Zhang San")


def _store_bytes(url: str) -> bytes:
    """Every byte the store keeps in its files (SQLite) or in its relations' files (PostgreSQL)."""
    if kind(url) == "sqlite":
        path = url.removeprefix("sqlite:///")
        return b"".join(Path(p).read_bytes() for p in (path, path + "-wal") if os.path.exists(p))
    with raw(url) as con:
        con.execute("CHECKPOINT")  # dirty buffers to the files
        datadir = con.execute("SELECT current_setting('data_directory')").fetchone()[0]
        paths = con.execute(
            "SELECT pg_relation_filepath(oid) FROM pg_class WHERE relkind IN ('r', 't', 'i', 'm') "
            "AND pg_relation_filepath(oid) IS NOT NULL"
        ).fetchall()
    found = b""
    for (rel,) in paths:
        for part in glob.glob(os.path.join(datadir, rel) + "*"):
            found += Path(part).read_bytes()
    return found


def _tables_as_text(url: str) -> str:
    with raw(url) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
                if kind(url) == "sqlite"
                else "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        if kind(url) == "sqlite":
            return "".join(repr(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)
        return "".join(str(con.execute(f"SELECT string_agg(t::text, '') FROM {t} t").fetchone()[0]) for t in tables)


def test_forget_leaves_no_byte_of_personal_data_and_no_digest_that_confirms_a_guess(store_url):
    app = Ledger(Settings(db_url=store_url))
    sent = applied("L1", borrower={"name": "Zhang San", "phone": "13812345678"})
    commands = [sent, approved("L1"), funded("L1"), repaid("L1", ref="R1", amount="300.00")]
    # the borrower's second loan replaces the data held (a new phone): the old one must go too
    commands += [applied("L2", borrower={"name": "Zhang San", "phone": "13900000001"}), approved("L2")]
    assert [o.status for o in app.append([command_from_dict(c) for c in commands])] == ["appended"] * 6
    owed = app.get_loan("L1").position(date(2026, 3, 20)).total
    assert any(p in _store_bytes(store_url) for p in PERSONAL)

    forget = run("borrower", "forget", "B1", "--reason", "borrower request 2026-03", "--json", "--db", store_url)
    assert forget.exit_code == 0 and json.loads(forget.output) == {"borrower_id": "B1", "erased": True}

    left = _store_bytes(store_url)
    assert [p for p in PERSONAL if p in left] == []
    text = _tables_as_text(store_url)
    assert "13812345678" not in text and "Zhang" not in text and "borrower request 2026-03" in text
    # re-sending the applied line with the right or a wrong guess answers the same
    for phone in ("13812345678", "13800000000"):
        guess = command_from_dict(applied("L1", borrower={"name": "Zhang San", "phone": phone}))
        assert app.append([guess])[0].status == "duplicate"
    assert app.get_loan("L1").position(date(2026, 3, 20)).total == owed
    app.close()
    assert verify(store_url) == (0, {"ok": True, "events": 6, "streams": 2})


def test_forget_beside_a_reader_on_sqlite_says_what_is_left_and_a_later_run_finishes(tmp_path):
    """Reproduction: with another connection reading (as `ledger serve` does), forget waited 30 s, printed
    `erased`, and the -wal file kept the name and phone until every connection closed."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    app = Ledger(Settings(db_url=url))
    sent = applied("L1", borrower={"name": "Zhang San", "phone": "13812345678"})
    assert app.append([command_from_dict(c) for c in (sent, approved("L1"))])[0].status == "appended"
    app.close()
    reader = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM ledger_borrowers").fetchone() == (1,)  # a read transaction held
    env = {"LEDGER_RETRY_SECONDS": "1"}  # the bound on the wait for readers
    first = CliRunner().invoke(cli, ["borrower", "forget", "B1", "--db", url], env=env)
    assert first.exit_code == 1, first.output
    [line] = first.output.splitlines()
    assert line.startswith("Error: borrower B1 is not erased yet: old copies of its pages stay in ")
    assert "ledger.db-wal" in line and "run `ledger borrower forget B1` again to finish" in line
    assert b"13812345678" in _store_bytes(url)  # what the message says is true
    reader.execute("COMMIT")
    reader.close()
    again = CliRunner().invoke(cli, ["borrower", "forget", "B1", "--db", url], env=env)
    assert again.exit_code == 0, again.output
    assert again.output.startswith("erased B1 (the erasure on record is finished")
    assert [p for p in PERSONAL if p in _store_bytes(url)] == []
    assert verify(url) == (0, {"ok": True, "events": 2, "streams": 1})


def test_forget_of_a_borrower_never_held_or_erased_is_exit_1(store_url):
    book(store_url)
    result = run("borrower", "forget", "B404", "--db", store_url)
    assert result.exit_code == 1 and result.output == "no personal data held for B404\n"


def test_the_idempotency_fingerprint_leaves_out_personal_data():
    bare = command_from_dict(applied("L1"))
    with_data = command_from_dict(applied("L1", borrower={"phone": "13812345678"}))
    assert with_data.content_hash == bare.content_hash
    assert command_from_dict(applied("L1", principal="900.00")).content_hash != bare.content_hash


# ---- audit trail export ---------------------------------------------------------------------
def test_export_gives_recorded_time_in_utc_value_dates_and_the_chain(store_url, tmp_path):
    book(store_url)
    out = tmp_path / "trail.jsonl"
    assert run("events", "export", "--out", out, "--db", store_url).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["loan_id"], r["version"], r["type"]) for r in rows][:4] == [
        ("L1", 1, "applied"),
        ("L1", 2, "scored"),
        ("L1", 3, "funded"),
        ("L1", 4, "repaid"),
    ]
    assert len(rows) == 7 and all(r["recorded_at_utc"].endswith("+00:00") for r in rows)
    repayment = rows[3]
    assert (repayment["amount"], repayment["value_date"], repayment["occurred_at"]) == (
        "4365.70",
        "2026-03-08",
        "2026-03-08T12:00:00+08:00",
    )
    last_hash = {}
    for r in rows:
        assert r["previous_hash"] == last_hash.get(r["loan_id"])
        last_hash[r["loan_id"]] = r["hash"]

    csv_out = tmp_path / "l2.csv"
    args = ("events", "export", "--loan", "L2", "--format", "csv", "--out", csv_out, "--db", store_url)
    assert run(*args).exit_code == 0
    with csv_out.open(newline="") as f:
        l2 = list(csv.DictReader(f))
    assert [(r["loan_id"], r["type"], r["value_date"]) for r in l2] == [
        ("L2", "applied", ""),
        ("L2", "scored", ""),
        ("L2", "funded", "2026-03-01"),
    ]
    later = tmp_path / "none.jsonl"
    assert (
        run("events", "export", "--from", "2099-01-01T00:00:00+08:00", "--out", later, "--db", store_url).exit_code == 0
    )
    assert later.read_text() == ""


def test_verify_and_checkpoint_read_in_pages_across_loans(store_url):
    """Pages smaller than a loan: streams split over pages must still be checked as one."""
    from ledger.verify import log_digest, make_checkpoint
    from ledger.verify import verify as verify_store

    book(store_url)
    app = Ledger(Settings(db_url=store_url))
    whole = verify_store(app.recorder)
    assert verify_store(app.recorder, page=2).as_json() == whole.as_json() == {"ok": True, "events": 7, "streams": 2}
    checkpoint = make_checkpoint(app.recorder)
    assert log_digest(app.recorder, checkpoint["head"], page=3)[0].hexdigest() == checkpoint["digest"]
    assert verify_store(app.recorder, checkpoint, page=2).ok
    app.close()


def test_writers_racing_on_one_loan_leave_an_unbroken_chain(pg_server):
    """The loser of a race recomputes its hash from the winner's: no lock wider than the loan needed."""
    import multiprocessing

    from support.commands import domain_example
    from support.workers import append_one_at_a_time, started_together

    url = pg_server.create_database("chain_race")
    app = Ledger(Settings(db_url=url))
    app.append([command_from_dict(c) for c in domain_example()])
    app.close()
    work = [
        [json.dumps(repaid(ref=f"W{w}-{i}", amount="1.00", value_date="2026-03-05")) for i in range(6)]
        for w in range(4)
    ]
    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(4, started_together, (spawn.Barrier(4),)) as pool:  # all connected, then all go
        results = pool.starmap(append_one_at_a_time, [(url, lines) for lines in work])
    assert all(s == ["appended"] * 6 for s in results), results
    assert verify(url) == (0, {"ok": True, "events": 3 + 24, "streams": 1})
