"""The views' tables, for SQLite and PostgreSQL, and their version.

Portable types only, so that one set of queries serves both engines exactly:
- money as integer fen (BIGINT): sums stay exact on both (SQLite has no decimal type);
- value dates as integer day numbers (``date.toordinal()``): a run's nights are a subtraction;
- recorded times as integer microseconds since the Unix epoch (UTC).

The views are derived data. When SCHEMA_VERSION changes, ``views()`` drops them
and their tracking, and the next catch-up rebuilds them from the event log:
there is nothing to migrate.
"""

from __future__ import annotations

import re

SCHEMA_VERSION = "7"  # 4: floor runs (run_offset, run_divisor) for the cost ceiling; 5: assignments, collections;
# 6: proj_loan_sums (each loan's journal summed once it no longer changes with the date); 7: its bank payables
TABLES = (
    "proj_journal",
    "proj_loans",
    "proj_tracking",
    "proj_meta",
    "proj_assignments",
    "proj_collections",
    "proj_loan_sums",
)


def create_statements(postgres: bool) -> list[str]:
    # SQLite makes only "INTEGER PRIMARY KEY" the rowid: the cheapest key it has.
    line_id = "BIGINT PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY"
    # Room in each page for a row's closed version: closing a row is then a HOT update (no index
    # entries to add), which halved the cost of closing rows in a rebuild, measured (bench/replay.py).
    journal_storage = " WITH (fillfactor = 80)" if postgres else ""
    return [
        "CREATE TABLE IF NOT EXISTS proj_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS proj_tracking (name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
        # One row per loan, its current facts. Funding and write-off are written once and never
        # change, so the recorded time each became known (…_at_us) is all "as known at T" needs.
        "CREATE TABLE IF NOT EXISTS proj_loans ("
        " loan_id TEXT PRIMARY KEY, loan_uuid TEXT NOT NULL, borrower_id TEXT NOT NULL,"
        " product TEXT NOT NULL, channel TEXT NOT NULL, phase TEXT NOT NULL,"
        " score TEXT, model_version TEXT, bank TEXT, principal_fen BIGINT,"
        " funded_day INTEGER, funded_at_us BIGINT, due_day INTEGER,"
        " written_off_day INTEGER, written_off_at_us BIGINT, settled_day INTEGER,"
        " version INTEGER NOT NULL,"
        # the application and the decision: their business day (Asia/Shanghai) and when each became known
        " applied_day INTEGER, applied_at_us BIGINT, decided_day INTEGER, decided_at_us BIGINT)",
        # The bitemporal journal. A row holds from known_from_us until known_to_us (NULL: still
        # holds); rows are closed, never changed. amount_fen is signed (debit +); a run line
        # (until_day not NULL) posts amount_fen for each night value_day <= d < until_day. A floor
        # run (run_divisor > 1: the cost ceiling) posts, after m nights, sign(amount_fen) x
        # ((run_offset + |amount_fen| x m) / run_divisor - run_offset / run_divisor), integer division
        # of non-negative integers; every other line has run_offset 0 and run_divisor 1.
        # line_id = the opening event's notification id * 2^16 + the line's place among the lines
        # it opened: the same on every rebuild, and known without asking the database.
        f"CREATE TABLE IF NOT EXISTS proj_journal (line_id {line_id},"
        " loan_id TEXT NOT NULL, bank TEXT NOT NULL, entry TEXT NOT NULL, account TEXT NOT NULL,"
        " value_day INTEGER NOT NULL, until_day INTEGER, amount_fen BIGINT NOT NULL,"
        " run_offset BIGINT NOT NULL, run_divisor BIGINT NOT NULL,"
        f" known_from_us BIGINT NOT NULL, known_to_us BIGINT){journal_storage}",
        # A loan's lines: read for a loan a runner has not cached, joined per loan by the balances.
        # Not partial on known_to_us: closing a row then touches no index (and stays a HOT update
        # on PostgreSQL), and "as known at T" reads closed rows too.
        "CREATE INDEX IF NOT EXISTS proj_journal_loan ON proj_journal (loan_id)",
        # Each loan's lines that hold now, summed as of quiet_day: the day from which none of them changes
        # with the date (the last point line's day, the last run's end; a run with no end: never). As of
        # any day D >= quiet_day the loan's balances are these sums; the book reads them instead of the
        # loan's lines (projections/balances.py). Written with the journal, in the same transaction.
        # The receivable parts, the overpayment, the memo still due, the principal written off and the
        # recoveries as the balances sum them, and total_fen: every line (the trial balance's share).
        # The bank payables (balances.bank_payables): the loan's bank, how many funding payable and bank
        # interest lines it has (0: it is in no bank's list), principal funded, remitted and compensated,
        # the bank interest remitted, and the payable still owed (funded - remitted - compensated).
        "CREATE TABLE IF NOT EXISTS proj_loan_sums ("
        " loan_id TEXT PRIMARY KEY, quiet_day INTEGER NOT NULL,"
        " principal_fen BIGINT NOT NULL, interest_fen BIGINT NOT NULL, fee_fen BIGINT NOT NULL,"
        " penalty_fen BIGINT NOT NULL, overpayment_fen BIGINT NOT NULL, still_due_fen BIGINT NOT NULL,"
        " written_off_fen BIGINT NOT NULL, recovered_fen BIGINT NOT NULL, total_fen BIGINT NOT NULL,"
        " bank TEXT NOT NULL, payable_lines INTEGER NOT NULL, funded_fen BIGINT NOT NULL,"
        " remitted_fen BIGINT NOT NULL, compensated_fen BIGINT NOT NULL, bank_interest_fen BIGINT NOT NULL,"
        " payable_fen BIGINT NOT NULL)",
        "CREATE INDEX IF NOT EXISTS proj_loan_sums_quiet ON proj_loan_sums (quiet_day)",
        "CREATE INDEX IF NOT EXISTS proj_loans_open ON proj_loans (phase, due_day)",
        "CREATE INDEX IF NOT EXISTS proj_loans_borrower ON proj_loans (borrower_id)",
        # Each spell of a loan with a collection agency (seq 1, 2, ... on the loan): held on the days
        # from_day <= d < until_day (NULL: not recalled). Known from assigned_at_us; the recall, when
        # there is one, from recalled_at_us. dpd, bucket and owed_fen: the loan when it was handed over.
        "CREATE TABLE IF NOT EXISTS proj_assignments ("
        " loan_id TEXT NOT NULL, seq INTEGER NOT NULL, agency TEXT NOT NULL,"
        " from_day INTEGER NOT NULL, until_day INTEGER, dpd INTEGER NOT NULL, bucket TEXT NOT NULL,"
        " owed_fen BIGINT NOT NULL, assigned_at_us BIGINT NOT NULL, recalled_at_us BIGINT,"
        " PRIMARY KEY (loan_id, seq))",
        "CREATE INDEX IF NOT EXISTS proj_assignments_agency ON proj_assignments (agency, from_day)",
        # Every collection: who collected, under which spell (seq, and that spell's bucket at assignment;
        # NULL: none, e.g. inhouse), what and when. Known from known_from_us until its reversal was
        # recorded (known_to_us).
        "CREATE TABLE IF NOT EXISTS proj_collections ("
        " idempotency_key TEXT PRIMARY KEY, loan_id TEXT NOT NULL, agency TEXT NOT NULL, seq INTEGER, bucket TEXT,"
        " value_day INTEGER NOT NULL, amount_fen BIGINT NOT NULL, known_from_us BIGINT NOT NULL,"
        " known_to_us BIGINT)",
    ]


def drop_statements() -> list[str]:
    return [f"DROP TABLE IF EXISTS {table}" for table in TABLES]


# A rebuild fills a second set of view tables beside the live ones, under these names plus
# REBUILD_SUFFIX, then swaps them in (runner.rebuild). Indexes are renamed with their tables.
VIEW_TABLES = ("proj_journal", "proj_loans", "proj_assignments", "proj_collections", "proj_loan_sums")
VIEW_INDEXES = (
    "proj_journal_loan",
    "proj_loans_open",
    "proj_loans_borrower",
    "proj_assignments_agency",
    "proj_loan_sums_quiet",
)
REBUILD_SUFFIX = "_next"
_VIEW_NAME = re.compile(r"\b(" + "|".join(VIEW_TABLES + VIEW_INDEXES) + r")\b")


def renamed(statement: str, suffix: str) -> str:
    """``statement`` about the view tables with ``suffix`` (words only: proj_loans_page stays)."""
    return _VIEW_NAME.sub(lambda m: m.group(1) + suffix, statement) if suffix else statement


def view_statements(postgres: bool, suffix: str = "") -> list[str]:
    """The view tables and their indexes alone, under ``suffix``."""
    return [
        renamed(s, suffix)
        for s in create_statements(postgres)
        if any(f" {table} " in s or f" {table} (" in s for table in VIEW_TABLES)
    ]
