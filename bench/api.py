"""HTTP API load on loopback, beside `ledger append` of the same commands, in one run.

    python bench/api.py [--singles 20000] [--batched 100000] [--clients 16] [--workers 1]

On a throwaway PostgreSQL server (as in the tests): starts `ledger serve` on a free
loopback port, then
1. 16 clients post single commands (each client owns its loans and posts their
   commands in order: applied, scored, funded, two repayments);
2. 16 clients post batches of 500 commands (whole loans) until all are sent;
3. `ledger append` of the batch phase's commands into a fresh database: as a
   process (startup included) and as `append_lines` in a process of its own.
4. the baseline, the transport's limit: bench/measure.py's plain ASGI app on uvicorn
   (one process, httptools, no access log, answering with as many bytes as the
   ledger's answer to a single) takes the singles phase's bodies from the same
   clients.
It prints requests/s, commands/s and p50/p99 request latency, the singles beside
the baseline (ratio, each server's peak memory, the load average), then stops.
Everything is bounded: fixed command counts, and a deadline per phase.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from append import command_lines, run_ledger  # noqa: E402
from measure import PLAIN_BODY_ENV, Stores, compare, in_child, load_average, peak_tree_mb  # noqa: E402

PHASE_DEADLINE_S = 600


def commands(n: int, prefix: str) -> list[str]:
    """bench/append.py's stream (5 commands a loan), under loan ids of our own."""
    return [line.replace("B0", f"{prefix}0") for line in command_lines(n)]


def by_loan(lines: list[str]) -> list[list[str]]:
    loans: dict[str, list[str]] = {}
    for line in lines:
        loans.setdefault(json.loads(line)["loan_id"], []).append(line)
    return list(loans.values())


class Server:
    def __init__(self, db_url: str, workers: int, log: Path):
        self.db_url = db_url
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", "token", "create", "bench", "--scope", "append", "--json"]
            + ["--db", db_url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        self.token = json.loads(out.stdout)["token"]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(log, "w")  # noqa: SIM115 (open while the server runs)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "--port", str(self.port), "--workers", str(workers)]
            + ["--db", db_url],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"ledger serve did not start; see {log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.1)

    @classmethod
    def plain(cls, body_bytes: int, log: Path) -> Server:
        """The baseline: bench/measure.py's plain ASGI app on uvicorn, one process, httptools, no access log."""
        self = cls.__new__(cls)
        self.token = "-"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(log, "w")  # noqa: SIM115 (open while the server runs)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "measure:plain_app", "--app-dir", str(ROOT / "bench")]
            + ["--port", str(self.port), "--http", "httptools", "--no-access-log", "--lifespan", "off"],
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, PLAIN_BODY_ENV: str(body_bytes)},
        )
        self._wait(log, "/")
        return self

    def _wait(self, log: Path, path: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server did not start; see {log}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", path)
                conn.getresponse().read()
                return
            except OSError:
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


def load(server: Server, path: str, work: list[list[bytes]], clients: int) -> tuple[float, list[float], int, int]:
    """Each client posts its list of bodies in order; (elapsed s, latencies s, 5xx count, an answer's bytes)."""
    latencies: list[float] = []
    answer_bytes: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients + 1)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}

    server_cpu, client_cpu = tree_cpu_seconds(server.proc.pid), time.process_time()

    def client(bodies: list[bytes]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=PHASE_DEADLINE_S)
        mine: list[float] = []
        barrier.wait()
        for body in bodies:
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            mine.append(time.perf_counter() - t0)
            if not answer_bytes:
                answer_bytes.append(len(payload))
            if response.status not in (200, 201) or b'"rejected":0' not in payload and path.endswith("batch"):
                failures.append(f"{response.status} {payload[:200]!r}")
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(bodies,), daemon=True) for bodies in work]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join(timeout=PHASE_DEADLINE_S)
    elapsed = time.perf_counter() - started
    server_cpu = tree_cpu_seconds(server.proc.pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    print(
        f"  (CPU per request: server {server_cpu / len(latencies) * 1000:.2f} ms, "
        f"load generator {client_cpu / len(latencies) * 1000:.2f} ms; {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f})"
    )
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[:3]}")
    return elapsed, latencies, len(failures), answer_bytes[0]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its children that exited, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """A server and its live worker processes."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += tree_cpu_seconds(int(child))
    return total


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] * 1000


def report(label: str, requests: int, commands: int, elapsed: float, latencies: list[float]) -> None:
    print(
        f"{label:<28} {requests / elapsed:>10,.0f} {commands / elapsed:>10,.0f} "
        f"{pct(latencies, 50):>8.1f} {pct(latencies, 99):>8.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--singles", type=int, default=20_000, help="commands posted one per request")
    parser.add_argument("--batched", type=int, default=100_000, help="commands posted 500 per request")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="ledger serve --workers")
    args = parser.parse_args()

    with Stores("bench-api-") as stores:
        url = stores.url("postgres", "bench_api")
        server = Server(url, args.workers, stores.dir / "serve.log")
        try:
            print(f"PostgreSQL, ledger serve --workers {args.workers}, {args.clients} clients on loopback")
            print(f"{'':<28} {'requests/s':>10} {'commands/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
            loans = by_loan(commands(args.singles, "S"))
            work = [[line.encode() for loan in loans[k :: args.clients] for line in loan] for k in range(args.clients)]
            load_at_start = load_average()
            elapsed, latencies, _, answer = load(server, "/v1/commands", work, args.clients)
            singles, work_singles = (len(latencies), elapsed, peak_tree_mb(server.proc.pid)), work
            report("POST /v1/commands (1)", len(latencies), args.singles, elapsed, latencies)

            batch_lines = commands(args.batched, "M")
            if batch_lines:  # --batched 0: the singles and their baseline only
                batches = [batch_lines[i : i + 500] for i in range(0, len(batch_lines), 500)]  # 100 whole loans each
                bodies = [f'{{"commands":[{",".join(b)}]}}'.encode() for b in batches]
                work = [bodies[k :: args.clients] for k in range(args.clients)]
                elapsed, latencies, _, _ = load(server, "/v1/commands/batch", work, args.clients)
                api_rate = args.batched / elapsed
                report("POST /v1/commands/batch (500)", len(latencies), args.batched, elapsed, latencies)
        finally:
            server.stop()

        # the baseline: the same single-command bodies, the same clients, against the transport alone
        plain = Server.plain(answer, stores.dir / "plain.log")
        try:
            elapsed, latencies, _, _ = load(plain, "/v1/commands", work_singles, args.clients)
            baseline = (len(latencies), elapsed, peak_tree_mb(plain.proc.pid))
            report(f"plain ASGI app ({answer} B answer)", len(latencies), len(latencies), elapsed, latencies)
        finally:
            plain.stop()
        print(compare(f"singles, {args.clients} clients", "req/s", singles, baseline, load_at_start))
        if not batch_lines:
            return

        path = stores.dir / "batched.jsonl"
        path.write_text("\n".join(batch_lines) + "\n")
        cli_url = stores.url("postgres", "bench_cli")
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "cli.main", "append", str(path), "--db", cli_url],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        cli_rate = args.batched / (time.perf_counter() - started)
        n, t_inproc, _, _ = in_child(run_ledger, stores.url("postgres", "bench_inproc"), str(path), True)
        inproc_rate = n / t_inproc
        print(f"{'ledger append (process)':<28} {'':>10} {cli_rate:>10,.0f}")
        print(f"{'append_lines (in process)':<28} {'':>10} {inproc_rate:>10,.0f}")
        print(
            f"batches / ledger append: {api_rate / cli_rate:.2f}x; "
            f"batches / append_lines: {api_rate / inproc_rate:.2f}x"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
