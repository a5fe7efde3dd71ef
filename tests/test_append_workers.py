"""Issue 15: `ledger append --workers N` prints what one process prints and stores the same book."""

from __future__ import annotations

import io
import json
import os
import re
import signal
from collections import Counter
from pathlib import Path

import pytest
from support.commands import domain_example, funded, repaid
from support.processes import all_gone, parts_of
from test_races import book, cli, simulated_file

from ledger.app import Ledger
from ledger.append_parts import part_of
from ledger.config import Settings
from ledger.ingest import OverlongLine, append_lines, read_lines

INTERRUPTED = re.compile(
    r"Error: interrupted by SIG(?:INT|TERM): (\d+) lines answered above "
    r"\(appended (\d+), duplicate (\d+), rejected 0\), "
    r"not only the first lines of the file; lines not answered were not written; "
    r"re-run the file to continue \(stored lines are answered duplicate\)"
)


def run(*args: str, env: dict | None = None) -> tuple[int, str, str]:
    process = cli(*args, env=env)
    out, err = process.communicate(timeout=300)
    return process.returncode, out, err


def sqlite_store(tmp_path: Path, name: str) -> str:
    url = f"sqlite:///{tmp_path}/{name}.db"
    Ledger(Settings(db_url=url)).close()
    return url


def mixed_lines() -> list[bytes]:
    return list(read_lines(io.BytesIO(mixed_file())))  # the overlong line cut short, as the CLI reads it


def mixed_file() -> bytes:
    """Loans of both parts, and between them every kind of line one process refuses."""
    lines: list[bytes] = []
    for n in range(30):
        loan = f"M{n:03d}"
        lines += [json.dumps(c).encode() for c in domain_example(loan)]
        lines.append(json.dumps(repaid(loan, ref=f"R1-{loan}")).encode())
        if n % 5 == 0:
            lines.append(json.dumps(funded(loan, idempotency_key=f"again-{loan}")).encode())  # a rule: funded twice
        if n % 7 == 0:
            lines.append(lines[-1])  # the same line twice: a duplicate, or the same refusal
    early = json.dumps(repaid("M031", ref="R-early")).encode()  # before its loan exists: refused...
    lines += [
        early,
        *[json.dumps(c).encode() for c in domain_example("M031")],
        early,  # ...then the same key once it does: the answer depends on the batch the two share
        b'{"type": "applied", "loan_id": "M001", ',  # invalid JSON naming a loan
        b"",
        b"   \r\n",
        json.dumps({k: v for k, v in repaid("M002", ref="R-x").items() if k != "loan_id"}).encode(),
        b'{"type": "repaid", "loan_id": "M003", "note": "' + b"a" * 70_000 + b'"}',
        b'{"type": "repaid", "loan_id": "M004", "bank_ref": "\xff"}',  # not UTF-8
        json.dumps(repaid("M005", ref="R-conflict")).encode(),
        json.dumps(repaid("M005", ref="R-conflict", amount="1.00")).encode(),  # same key, other content
        # an escaped loan id is the same loan: routed with its unescaped lines
        json.dumps(repaid("M006", ref="R2-M006")).replace('"M006"', '"M\\u0030\\u0030\\u0036"').encode(),
        json.dumps([1, 2]).encode(),
        b'{"loan_id": {"nested": "M007"}}',
    ]
    return b"".join(line + b"\n" for line in lines)


def test_the_part_of_a_line_is_its_loans_however_the_line_is_written():
    plain = json.dumps(repaid("L42", ref="x")).encode()
    escaped = plain.replace(b'"L42"', b'"L\\u0034\\u0032"')
    spaced = plain.replace(b'"loan_id": "L42"', b'"loan_id"  :\t"L42"')
    for count in (2, 3, 5):
        assert part_of(escaped, count) == part_of(plain, count) == part_of(spaced, count)
    parts = {part_of(json.dumps(repaid(f"L{n}", ref="x")).encode(), 2) for n in range(20)}
    assert parts == {0, 1}
    for unusable in (b"not json", b"[1]", b'{"loan_id": 7}', OverlongLine(b'{"loan_id": "L1"')):
        assert part_of(unusable, 4) == 0


@pytest.mark.parametrize("batch_size", [3, 8])
def test_in_parts_every_line_gets_the_answer_one_process_gives_in_line_order(tmp_path, batch_size):
    from ledger.append_parts import append_in_parts

    lines = mixed_lines()
    one = Ledger(Settings(db_url=sqlite_store(tmp_path, "one"), batch_size=batch_size))
    expected = [(a.line, a.outcome) for a in append_lines(one, lines)]
    statuses = Counter(o.status for _, o in expected)
    assert statuses["rejected"] >= 12 and statuses["duplicate"] >= 3 and statuses["appended"] >= 120, statuses
    settings = Settings(db_url=sqlite_store(tmp_path, "parts"), batch_size=batch_size)
    got: list = []
    append_in_parts(settings, iter(lines), 2, lambda line, outcome: got.append((line, outcome)))
    assert got == expected
    parts = Ledger(settings)
    loans = [f"M{n:03d}" for n in range(32)]
    assert book(parts, loans) == book(one, loans)
    parts.close()
    one.close()


def test_a_simulated_file_in_two_parts_prints_and_stores_what_one_process_does(new_store, tmp_path):
    path, loan_ids = simulated_file(tmp_path, loans=400)
    urls = {workers: new_store() for workers in (1, 2)}
    for url in urls.values():
        Ledger(Settings(db_url=url)).close()
    first = {w: run("append", "--json", "--workers", str(w), "--db", url, str(path)) for w, url in urls.items()}
    assert first[2] == first[1]
    code, out, err = first[1]
    assert (code, err) == (0, "") and len(out.splitlines()) > 1000
    books = {}
    for workers, url in urls.items():
        app = Ledger(Settings(db_url=url))
        books[workers] = book(app, loan_ids)
        app.close()
    assert books[2] == books[1]

    again = {w: run("append", "--workers", str(w), "--db", url, str(path)) for w, url in urls.items()}
    assert again[2] == again[1] == (0, f"appended 0, duplicate {len(out.splitlines())}, rejected 0\n", "")


def test_bad_lines_are_answered_in_their_place_as_one_process_answers_them(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(mixed_file())
    for as_json in ([], ["--json"]):
        answers = {}
        for workers in (1, 2):
            url = sqlite_store(tmp_path, f"w{workers}{len(as_json)}")
            answers[workers] = run("append", *as_json, "--workers", str(workers), "--db", url, str(path))
        assert answers[2] == answers[1]
        code, out, err = answers[1]
        assert code == 1 and err == ""
        for refusal in ("not valid JSON", "longer than the limit", "not UTF-8", "loan_id: required field is missing"):
            assert refusal in out, refusal


def test_a_rerun_in_parts_answers_every_line_duplicate(tmp_path):
    path, _ = simulated_file(tmp_path, loans=150)
    url = sqlite_store(tmp_path, "rerun")
    code, out, _ = run("append", "--workers", "2", "--db", url, str(path))
    counts = re.fullmatch(r"appended (\d+), duplicate (\d+), rejected 0\n", out)
    assert code == 0 and counts, out
    lines = int(counts[1]) + int(counts[2])
    assert run("append", "--workers", "2", "--db", url, str(path)) == (
        0,
        f"appended 0, duplicate {lines}, rejected 0\n",
        "",
    )


def test_an_in_memory_store_is_refused_in_parts_with_a_reason():
    code, out, err = run("append", "--workers", "2", "--db", "sqlite:///:memory:", "-")
    assert code == 2, (out, err)
    assert "needs a database file that other processes can open" in err and "Traceback" not in err
    code, out, err = run("append", "--json", "--workers", "2", "--db", "sqlite:///:memory:", "-")
    assert code == 2 and "needs a database file" in json.loads(out)["error"]


def test_ctrl_c_stops_the_parts_after_their_batch_in_flight_and_says_what_was_answered(store_url, tmp_path):
    path, loan_ids = simulated_file(tmp_path, loans=1200)
    clean_url = sqlite_store(tmp_path, "clean")
    code, out, _ = run("append", "--db", clean_url, str(path))
    counts = re.fullmatch(r"appended (\d+), duplicate (\d+), rejected 0\n", out)
    assert code == 0 and counts, out
    total, duplicates = int(counts[1]) + int(counts[2]), int(counts[2])

    appending = cli("append", "--json", "--workers", "2", "--db", store_url, str(path))
    first = appending.stdout.readline()  # the parts are under way
    parts = parts_of(appending.pid)
    assert len(parts) == 2 and appending.poll() is None, "the append finished before it could be interrupted"
    appending.send_signal(signal.SIGINT)  # to the append alone: its parts hear of it from it
    out, err = appending.stdout.read(), appending.stderr.read()  # (communicate would miss what readline buffered)
    appending.wait(timeout=60)
    assert appending.returncode == 130, err
    rows = [json.loads(line) for line in (first + out).splitlines()]
    assert 0 < len(rows) < total
    assert [r["line"] for r in rows] == sorted(r["line"] for r in rows)
    [message] = err.splitlines()
    found = INTERRUPTED.fullmatch(message)
    assert found, message
    appended = sum(r["status"] == "appended" for r in rows)
    assert found.groups() == (str(len(rows)), str(appended), str(len(rows) - appended))
    assert all_gone(parts, within=30), "a part outlived its append"

    app = Ledger(Settings(db_url=store_url))
    assert sum(len(app.loan_events(loan_id)) for loan_id in loan_ids) == appended  # nothing unanswered written
    code, out, err = run("append", "--workers", "2", "--db", store_url, str(path))
    assert code == 0, err
    assert out == f"appended {total - duplicates - appended}, duplicate {duplicates + appended}, rejected 0\n"
    clean = Ledger(Settings(db_url=clean_url))
    assert book(app, loan_ids) == book(clean, loan_ids)
    app.close()
    clean.close()


def test_sigterm_stops_the_parts_as_ctrl_c_does_with_exit_143(tmp_path):
    path, _ = simulated_file(tmp_path, loans=1200)
    appending = cli("append", "--json", "--workers", "2", "--db", sqlite_store(tmp_path, "term"), str(path))
    first = appending.stdout.readline()  # the parts are under way
    parts = parts_of(appending.pid)
    assert len(parts) == 2 and appending.poll() is None, "the append finished before it could be stopped"
    appending.send_signal(signal.SIGTERM)
    out, err = appending.stdout.read(), appending.stderr.read()
    appending.wait(timeout=60)
    assert appending.returncode == 143, err
    [message] = err.splitlines()
    assert INTERRUPTED.fullmatch(message) and message.startswith("Error: interrupted by SIGTERM: "), message
    assert INTERRUPTED.fullmatch(message)[1] == str(len((first + out).splitlines()))
    assert all_gone(parts, within=30), "a part outlived its append"


def test_a_part_killed_mid_run_is_one_line_and_exit_2_and_a_rerun_finishes_the_file(tmp_path):
    path, loan_ids = simulated_file(tmp_path, loans=1200)
    url = sqlite_store(tmp_path, "killed")
    appending = cli("append", "--json", "--workers", "2", "--db", url, str(path))
    first = appending.stdout.readline()
    parts = parts_of(appending.pid)
    assert len(parts) == 2 and appending.poll() is None, "the append finished before a part could be killed"
    os.kill(parts[1], signal.SIGKILL)
    out, err = appending.stdout.read(), appending.stderr.read()
    appending.wait(timeout=60)
    assert appending.returncode == 2, (out[-500:], err)
    [line] = err.splitlines()
    assert re.fullmatch(
        r"Error: append part \d of 2 \(process \d+\) stopped without an answer \(exit code -9\); "
        r"\d+ lines answered above .*; lines not answered may be partly written: "
        r"re-run the file \(stored lines are answered duplicate\)",
        line,
    ), line
    assert all_gone(parts)
    answered = len((first + out).splitlines())
    code, out, err = run("append", "--workers", "2", "--db", url, str(path))
    assert code == 0, err
    assert int(out.split()[1].rstrip(",")) > 0  # what the killed part had not stored, and what was not sent
    assert answered > 0


def test_the_parts_of_a_killed_append_stop_after_their_batch_in_flight(tmp_path):
    path, loan_ids = simulated_file(tmp_path, loans=1200)
    url = sqlite_store(tmp_path, "orphans")
    appending = cli("append", "--json", "--workers", "2", "--db", url, str(path))
    appending.stdout.readline()
    parts = parts_of(appending.pid)
    assert len(parts) == 2 and appending.poll() is None, "the append finished before it could be killed"
    appending.send_signal(signal.SIGKILL)
    appending.wait()
    assert all_gone(parts, within=30), "a part outlived its append"
    app = Ledger(Settings(db_url=url))
    stored = sum(len(app.loan_events(loan_id)) for loan_id in loan_ids)
    app.close()
    code, out, _ = run("append", "--db", url, str(path))
    assert code == 0 and int(out.split()[1].rstrip(",")) > 0, out  # the parts had not finished the file
    assert stored > 0


@pytest.fixture
def own_server():
    from pgserver import ThrowawayPostgres

    with ThrowawayPostgres() as server:
        yield server


def test_a_store_lost_under_the_parts_is_one_line_exit_2_and_a_rerun_finishes_the_file(own_server, tmp_path):
    path, loan_ids = simulated_file(tmp_path, loans=1200)
    url = own_server.create_database("outage")
    Ledger(Settings(db_url=url)).close()
    env = {**os.environ, "LEDGER_RETRY_SECONDS": "2"}
    appending = cli("append", "--json", "--workers", "2", "--db", url, str(path), env=env)
    first = appending.stdout.readline()  # the parts are under way
    assert appending.poll() is None, "the append finished before the store could be lost"
    own_server.stop()
    out, err = appending.stdout.read(), appending.stderr.read()
    appending.wait(timeout=120)
    own_server.start()
    assert appending.returncode == 2, (out[-500:], err)
    assert "Traceback" not in err, err
    [line] = [line for line in err.splitlines() if line.startswith("Error:")]
    rows = [json.loads(row) for row in (first + out).splitlines()]
    assert [r["line"] for r in rows] == sorted(r["line"] for r in rows)
    assert re.fullmatch(
        rf"Error: append: the store did not answer for 2 s \(.*\); {len(rows)} lines answered above \(.*\), "
        r"not only the first lines of the file; lines not answered may be partly written: "
        r"re-run the file when the store is back \(stored lines are answered duplicate\)",
        line,
    ), line
    clean_url = sqlite_store(tmp_path, "clean")
    assert run("append", "--db", clean_url, str(path))[0] == 0
    assert run("append", "--workers", "2", "--db", url, str(path))[0] == 0
    app, clean = Ledger(Settings(db_url=url)), Ledger(Settings(db_url=clean_url))
    assert book(app, loan_ids) == book(clean, loan_ids)
    app.close()
    clean.close()
