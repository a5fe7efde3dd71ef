"""The write path stays lean (issue 29): what an append and a single API request cost beyond their work."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import threading
import time

import psycopg
from fastapi.routing import APIRoute
from support.commands import domain_example

from api import ui
from api.app import ROUTERS
from domain.loan import loan_uuid
from ledger.app import Ledger
from ledger.commands import command_from_dict
from ledger.config import Settings


def _dependencies(dependant):
    for dep in dependant.dependencies:
        yield dep.call
        yield from _dependencies(dep)


def test_no_route_dependency_costs_a_worker_thread_hop():
    """FastAPI runs a plain ``def`` dependency in a worker thread: a hop on every request for work that
    never blocks (checking the query string, the bearer token's scope). Every dependency is ``async``."""
    routes = [r for router in [*ROUTERS, ui.router] for r in router.routes if isinstance(r, APIRoute)]
    assert any(r.path == "/v1/commands" for r in routes)
    found = [(r.path, call) for r in routes for call in _dependencies(r.dependant) if call is not None]
    assert len(found) >= len(routes), "every route checks at least its query string: the walk is broken"
    sync = sorted({f"{path}: {call.__qualname__}" for path, call in found if not inspect.iscoroutinefunction(call)})
    assert sync == []


def test_the_append_routes_solve_one_dependency():
    """A single command's request is the API's hot path: its query-string check, token check and scope
    check are one dependency, not three for FastAPI to solve one by one (issue 29: solving them was the
    largest part of the event loop's own work on a single request)."""
    routes = {r.path: r for r in ROUTERS[0].routes if isinstance(r, APIRoute)}
    for path in ("/v1/commands", "/v1/commands/batch"):
        calls = [dep.call for dep in routes[path].dependant.dependencies]
        assert [c.__qualname__ for c in calls] == ["appender"], path
        assert routes[path].dependant.dependencies[0].dependencies == []


def test_a_single_command_skips_fastapis_routing_and_the_batch_does_not(tmp_path, monkeypatch):
    """POST /v1/commands goes from the request log straight to its endpoint (api/routes/commands.py
    DirectSingle): FastAPI solves no dependency for it. Every other route, the batch's included, is
    FastAPI's as before; tests/test_api.py holds both ways to the same answers."""
    import fastapi.routing
    from fastapi.testclient import TestClient

    from api.app import create_app
    from ledger.tokens import create_token

    solved: list[str] = []
    real = fastapi.routing.solve_dependencies

    async def counted(**kwargs):
        solved.append(kwargs["request"].url.path)
        return await real(**kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path}/ledger.db"))
    headers = {"Authorization": f"Bearer {create_token(app.state.ledger, 'rw', ['append', 'read'])}"}
    single = domain_example()[0]
    with TestClient(app) as client:
        assert client.post("/v1/commands", json=single, headers=headers).status_code == 201
        assert solved == []
        assert client.post("/v1/commands/batch", json={"commands": [single]}, headers=headers).status_code == 200
        assert client.get("/v1/loans/L1", headers=headers).status_code == 200
    assert solved == ["/v1/commands/batch", "/v1/loans/L1"]


def _spy_reads(ledger, monkeypatch) -> tuple[list[str], list[list]]:
    """The store's reads an append makes (by name), read transactions included, and the loans each
    combined key-and-loan read asked for."""
    recorder, datastore = ledger.recorder, ledger.recorder.datastore
    calls: list[str] = []
    asked: list[list] = []
    real = {name: getattr(recorder, name) for name in ("find_keys", "select_events_of", "find_keys_then_events")}
    real_transaction = datastore.transaction

    def spy(name):
        def call(*args):
            calls.append(name)
            if name == "find_keys_then_events":
                keys, ids_for = args
                return real[name](keys, lambda found: asked.append(list(ids_for(found))) or asked[-1])
            return real[name](*args)

        return call

    def transaction(*, commit):
        calls.append("commit transaction" if commit else "read transaction")
        return real_transaction(commit=commit)

    for name in real:
        monkeypatch.setattr(recorder, name, spy(name))
    monkeypatch.setattr(datastore, "transaction", transaction)
    return calls, asked


def test_an_append_reads_its_keys_and_its_loans_in_one_pass(ledger, store_url, monkeypatch):
    """A batch on a loan that exists reads the keys stored and then the loans the other commands stage
    on in one pass: one transaction on SQLite, none on PostgreSQL (two autocommitted queries on one
    connection), and the write's transaction (issue 29)."""
    example = [command_from_dict(c) for c in domain_example()]
    ledger.append(example[:2])  # L1 applied and scored
    calls, asked = _spy_reads(ledger, monkeypatch)
    outcomes = ledger.append(example[2:3])  # L1 funded: a command on a stored loan
    monkeypatch.undo()
    assert [o.status for o in outcomes] == ["appended"]
    assert asked == [[loan_uuid("L1")]]
    reads = ["find_keys_then_events", *(["read transaction"] if store_url.startswith("sqlite") else [])]
    assert [c for c in calls if c != "commit transaction"] == reads


def test_a_batch_already_stored_reads_no_loan(ledger, monkeypatch):
    """A file sent again (every line a duplicate) reads the keys and no loan's events."""
    example = [command_from_dict(c) for c in domain_example()[:3]]
    ledger.append(example)
    calls, asked = _spy_reads(ledger, monkeypatch)
    outcomes = ledger.append(example)
    monkeypatch.undo()
    assert [o.status for o in outcomes] == ["duplicate"] * 3
    assert asked == [[]]
    assert "select_events_of" not in calls


def test_an_append_on_postgres_waits_for_the_table_lock_and_notifies_subscribers(pg_server):
    """The lock timeout, the EXCLUSIVE table lock (notification ids in commit order) and the NOTIFY that
    the library's subscribers wait for go to PostgreSQL as one query (issue 29): all three still act.
    A reader holding a lock that EXCLUSIVE conflicts with makes the append wait, visibly, and the
    append goes through once it lets go; a listener hears of it."""
    url = pg_server.create_database(f"w{os.getpid()}_lock_notify")
    app = Ledger(Settings(db_url=url))
    done: list[list] = []
    with psycopg.connect(url, autocommit=True) as listener, psycopg.connect(url) as holder:
        listener.execute('LISTEN "ledger_events"')
        holder.execute("LOCK TABLE ledger_events IN ROW SHARE MODE")  # open until holder.commit()
        writer = threading.Thread(target=lambda: done.append(app.append([command_from_dict(domain_example()[0])])))
        writer.start()
        deadline = time.monotonic() + 30
        while not _waits_for_exclusive_lock(listener):
            if time.monotonic() > deadline or not writer.is_alive():
                raise AssertionError(f"the append never waited for the table lock (done: {done})")
            time.sleep(0.01)
        assert done == []
        holder.commit()
        writer.join(timeout=30)
        assert [o.status for o in done[0]] == ["appended"]
        assert [n.channel for n in listener.notifies(timeout=10, stop_after=1)] == ["ledger_events"]
    app.close()


def _waits_for_exclusive_lock(conn) -> bool:
    return bool(
        conn.execute(
            "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "WHERE c.relname = 'ledger_events' AND l.mode = 'ExclusiveLock' AND NOT l.granted"
        ).fetchall()
    )


def test_a_served_process_leaves_its_startup_heap_out_of_full_collections(tmp_path):
    """A full collection stops the event loop for as long as it walks the heap: before the startup's
    objects were set aside it walked about 90,000 of them for nothing, 45-55 ms a time, a few times in
    every 4,000 requests (issue 29's p99). The app `ledger serve` builds sets them aside (frozen), and
    collects the youngest generation less often than Python's default."""
    script = (
        "import gc, json\n"
        "from api.transport import YOUNG_COLLECTION_THRESHOLD, create_served_app\n"
        "create_served_app()\n"
        "print(json.dumps({'frozen': gc.get_freeze_count(), 'walked': len(gc.get_objects()),"
        " 'young': gc.get_threshold()[0], 'wanted': YOUNG_COLLECTION_THRESHOLD, 'on': gc.isenabled()}))\n"
    )
    env = {**os.environ, "LEDGER_DB": f"sqlite:///{tmp_path}/ledger.db"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], cwd=root, env=env, capture_output=True, text=True, check=True)
    heap = json.loads(out.stdout.strip().splitlines()[-1])
    assert heap["on"], "cycles are still collected"
    assert heap["frozen"] > 20_000, heap
    assert heap["walked"] < heap["frozen"] / 4, heap  # what a full collection walks now
    assert heap["young"] == heap["wanted"] > 700
