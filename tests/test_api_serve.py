"""`ledger serve` as a real process on a free loopback port, on SQLite and PostgreSQL.

If the server cannot start, these tests fail (with its stderr), they do not skip.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from support.commands import applied, domain_example, repaid

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 60


def ledger_cli(*args: str) -> str:
    """`ledger ARGS` run in this process, for a server's setup: what is proven is the server, its own
    process; a process for each setup command only added its start (two a server, each test)."""
    from click.testing import CliRunner

    from cli.main import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, db_url: str, log_path: Path, workers: int = 1, extra: tuple[str, ...] = ()):
        self.db_url = db_url
        ledger_cli("init", "--db", db_url)  # serve, like every command but init/demo/simulate, needs a store
        created = ledger_cli("token", "create", "svc", "--scope", "append", "--scope", "read", "--json", "--db", db_url)
        self.token = json.loads(created)["token"]
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "w")  # noqa: SIM115 (kept open while the server runs)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(self.port), "--workers", str(workers)]
            + ["--db", db_url, *extra],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"ledger serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"ledger serve did not answer /healthz within {START_TIMEOUT_S} s:\n{self.log()}")
            time.sleep(0.1)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=60)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=60)
        finally:
            self._log.close()


@pytest.fixture
def serve(store_url, tmp_path):
    servers: list[Server] = []

    def start(workers: int = 1) -> Server:
        server = Server(store_url, tmp_path / f"serve{len(servers)}.log", workers)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def test_serve_appends_and_reads_over_http_logs_json_and_exits_0_on_sigterm(serve):
    server = serve()
    with server.client() as client:
        for cmd in domain_example("L1"):
            assert client.post("/v1/commands", json=cmd).status_code == 201
        assert client.post("/v1/commands", json=domain_example("L1")[0]).status_code == 200
        view = client.get("/v1/loans/L1", params={"as_of": "2026-03-08"}).json()
        assert (view["state"], view["balances"]["total"]) == ("funded", "1006.90")  # the fee up to the ceiling
        assert httpx.get(f"{server.base}/v1/loans/L1").status_code == 401
    assert server.stop() == 0
    requests = [json.loads(line) for line in server.log().splitlines() if line.startswith('{"request_id"')]
    assert [(r["method"], r["status"], r["token"]) for r in requests[-3:]] == [
        ("POST", 200, "svc"),
        ("GET", 200, "svc"),
        ("GET", 401, None),
    ]
    assert server.token not in server.log()


def test_sigterm_lets_an_in_flight_batch_finish(serve):
    server = serve()
    batch = [cmd for i in range(3333) for cmd in domain_example(f"G{i}")]
    body = json.dumps({"commands": batch}).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(
            b"POST /v1/commands/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {server.token}\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Expect: 100-continue\r\n\r\n"
        )
        # "100 Continue" comes once the handler asks for the body: the request is in flight, observably
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue")
        server.proc.send_signal(signal.SIGTERM)
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert server.proc.wait(timeout=60) == 0
    head, _, content = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert json.loads(content)["appended"] == 9999


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_clients_lose_no_update_and_append_a_shared_key_once(serve, workers):
    server = serve(workers)
    clients, moves = 16, 5
    with server.client() as client:
        for cmd in domain_example("HOT"):
            assert client.post("/v1/commands", json=cmd).status_code == 201
    statuses: dict[str, Counter] = {"shared": Counter(), "own": Counter(), "hot": Counter()}
    lock, barrier = threading.Lock(), threading.Barrier(clients)

    def work(n: int) -> None:
        with server.client() as client:
            barrier.wait()
            results = [("shared", client.post("/v1/commands", json=applied("SHARED")).status_code)]
            for j in range(moves):
                hot = repaid("HOT", ref=f"HOT-R{n}-{j}", amount="1.00")
                results.append(("hot", client.post("/v1/commands", json=hot).status_code))
            results += [("own", client.post("/v1/commands", json=cmd).status_code) for cmd in domain_example(f"C{n}")]
            batch = {"commands": [repaid("HOT", ref=f"HOT-B{n}", amount="1.00"), applied("SHARED")]}
            out = client.post("/v1/commands/batch", json=batch)
            results.append(("hot", 201 if out.json()["results"][0]["status"] == "appended" else out.status_code))
        with lock:
            for kind, status in results:
                statuses[kind][status] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert statuses["shared"] == Counter({201: 1, 200: clients - 1})
    assert statuses["hot"] == Counter({201: clients * (moves + 1)})
    assert statuses["own"] == Counter({201: clients * 3})
    with server.client() as client:
        hot = client.get("/v1/loans/HOT", params={"as_of": "2026-03-08"}).json()
        assert len(hot["events"]) == 3 + clients * (moves + 1)
        assert hot["balances"]["total"] == f"{1006.90 - clients * (moves + 1):.2f}"  # the fee up to the ceiling
        assert all(
            client.get(f"/v1/loans/C{n}", params={"as_of": "2026-03-08"}).json()["state"] == "funded"
            for n in range(clients)
        )
    assert server.stop() == 0
    assert not [line for line in server.log().splitlines() if '"status": 5' in line]
