"""Issue 11: Ctrl-C or SIGTERM under `ledger append` stops at a batch boundary and says what it appended."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest
from support.processes import ended, writes_held
from test_races import book, clean_run, cli, simulated_file

from ledger.app import Ledger
from ledger.config import Settings

BATCH = 50  # LEDGER_BATCH_SIZE of the interrupted append: the file is several batches long


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_append_at_a_batch_boundary_with_a_summary_of_what_was_appended(
    store_url, tmp_path, signum, code
):
    """Reproduction: Ctrl-C printed "Aborted!" with no summary of what was appended. The signal comes
    while the append waits for the write lock in its first batch (held here, as another writer
    would): that batch is in flight, and others follow. What this proves (the batch in flight is
    finished, nothing after it written) needs batches after it, not a large file: 100 loans in
    batches of 50, where 800 loans in 500s raced the signal against the file's end."""
    path, loan_ids = simulated_file(tmp_path, loans=100)
    clean, counts = clean_run(tmp_path, path)
    Ledger(Settings(db_url=store_url)).close()  # the store set up (as `ledger init` does), to hold its lock
    env = {**os.environ, "LEDGER_BATCH_SIZE": str(BATCH), "LEDGER_SETUP_STORE": "no"}
    with ended() as started:  # a failure leaves no import running into the next tests
        with writes_held(store_url) as wait_for_writers:
            run = started(cli("append", "--json", "--db", store_url, str(path), env=env))
            wait_for_writers([run.pid])  # its first batch is in flight
            run.send_signal(signum)
        out = run.stdout.read()
        err = run.stderr.read()
        run.wait(timeout=60)
        assert run.returncode == code, err
        rows = [json.loads(line) for line in out.splitlines()]
        answered = Counter(r["status"] for r in rows)
        assert 0 < len(rows) < counts.total() and len(rows) % BATCH == 0  # whole batches, and not all of them
        [message] = err.splitlines()
        assert message == (
            f"Error: interrupted by {signum.name}: lines up to {rows[-1]['line']} answered "
            f"(appended {answered['appended']}, duplicate {answered['duplicate']}, rejected 0); "
            "nothing after it was written; re-run the file to continue (stored lines are answered duplicate)"
        )
        app = Ledger(Settings(db_url=store_url))
        assert sum(len(app.loan_events(loan_id)) for loan_id in loan_ids) == answered["appended"]

        again = started(cli("append", "--db", store_url, str(path)))
        out, err = again.communicate(timeout=300)
        assert again.returncode == 0, err
        assert out.strip() == f"appended {counts['appended'] - answered['appended']}, " + (
            f"duplicate {counts['duplicate'] + answered['appended']}, rejected 0"
        )
        assert book(app, loan_ids) == book(clean, loan_ids)
        app.close()
        clean.close()


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_append_waiting_on_input_that_has_not_come(store_url, tmp_path, signum, code):
    """Reproduction: `ledger append` reading a FIFO (or a pipe, /dev/zero) ignored SIGTERM until its input
    ended. Here the writer stays open and silent after one batch: the signal must end it, with the same
    line and exit code as at a batch boundary."""
    from support.commands import domain_example

    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    run = cli("append", "--json", "--db", store_url, str(fifo))
    try:
        with open(fifo, "w") as writer:  # opens once append has opened it for reading
            lines = [json.dumps(c) for n in range(200) for c in domain_example(f"F{n}")][:500]  # one batch
            writer.write("\n".join(lines) + "\n")
            writer.flush()
            answered = [json.loads(run.stdout.readline()) for _ in lines]  # the batch is in: it waits for more
            run.send_signal(signum)
            out, err = run.communicate(timeout=60)  # the writer still open: only the signal can end it
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == code, err
    assert out == "" and [a["status"] for a in answered] == ["appended"] * 500
    assert err.splitlines() == [
        f"Error: interrupted by {signum.name}: lines up to 500 answered (appended 500, duplicate 0, rejected 0); "
        "nothing after it was written; re-run the file to continue (stored lines are answered duplicate)"
    ]


@pytest.mark.parametrize(
    "source, why",
    [
        (
            "/dev/zero",
            "cannot read /dev/zero: line 1 runs on past 64 MiB without a newline: the input is not JSON Lines",
        ),
        ("/proc/self/mem", "cannot read /proc/self/mem: reading line 1 failed: Input/output error"),
    ],
)
def test_an_input_that_cannot_be_read_is_one_error_line_and_exit_2(store_url, source, why):
    """Reproduction: /dev/zero (one endless line) ran until killed; /proc/self/mem (EIO) printed a traceback."""
    run = cli("append", source, "--db", store_url)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 2, err
    assert out == "appended 0, duplicate 0, rejected 0\n"
    assert err.splitlines() == [
        f"Error: {why}; no line answered (appended 0, duplicate 0, rejected 0); nothing after it was written; "
        "fix the input, then re-run it (stored lines are answered duplicate)"
    ]
