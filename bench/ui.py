"""The auditor's web view on a big book: how long a loan's page and the book's page take, beside the
API's answer for the same figures in the same run.

    python bench/ui.py --db sqlite:////tmp/book100k.db [--loans 50] [--books 5] [--as-of 2026-03-20]

Starts `ledger serve` on the store (on a free loopback port), creates a read token, logs in through
the form, then times, one request at a time, ``--loans`` loan pages (loans drawn from the book's
first pages, seeded) and ``--books`` book pages for each grouping (bank, channel, agency, bucket),
each beside its API twin (``GET /v1/loans/{id}``, ``GET /v1/balances``). Prints p50, p95 and the
worst in ms. The aim (issue 27): a loan page within 200 ms, the book within 1 s, on 100k loans.
The store is only read (a token is added); build it once (`ledger simulate`, bench/dataset.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def timed(client: httpx.Client, path: str, **params: str) -> float:
    start = time.perf_counter()
    answer = client.get(path, params=params)
    took = (time.perf_counter() - start) * 1000
    if answer.status_code != 200:
        raise SystemExit(f"{path} {params}: {answer.status_code} {answer.text[:300]}")
    return took


def summary(name: str, times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    p50 = statistics.median(ordered)
    return f"{name:<32} n={len(ordered):<4} p50 {p50:7.1f} ms  p95 {p95:7.1f}  max {ordered[-1]:7.1f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--loans", type=int, default=50)
    parser.add_argument("--books", type=int, default=5)
    parser.add_argument("--as-of", default="2026-03-20")
    args = parser.parse_args()
    ledger = [sys.executable, "-m", "cli.main"]
    name = f"bench-ui-{os.getpid()}-{int(time.time())}"
    created = subprocess.run(
        [*ledger, "token", "create", name, "--scope", "read", "--json", "--db", args.db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    token = json.loads(created.stdout)["token"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    server = subprocess.Popen(
        [*ledger, "serve", "--port", str(port), "--db", args.db],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("ledger serve did not start")
            time.sleep(0.2)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        web = httpx.Client(base_url=base, timeout=120, follow_redirects=True)
        login = web.post("/ui/login", data={"token": token})
        if login.status_code != 200 or "Book as of" not in login.text:
            raise SystemExit(f"login failed: {login.status_code}")
        ids: list[str] = []
        cursor = None
        while len(ids) < 5000:
            page = api.get(
                "/v1/loans", params={"as_of": args.as_of, "limit": 1000, **({"cursor": cursor} if cursor else {})}
            )
            body = page.json()
            ids += [row["loan_id"] for row in body["loans"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        picks = random.Random(27).sample(ids, min(args.loans, len(ids)))
        for loan_id in picks[:3]:  # warm: the first reads fill caches and catch the views up
            timed(web, f"/ui/loans/{loan_id}", as_of=args.as_of)
        timed(web, "/ui/loans", as_of=args.as_of)  # (not the book: its first view of each grouping is timed)
        results: dict[str, list[float]] = {}
        for loan_id in picks:
            results.setdefault("loan page /ui/loans/{id}", []).append(
                timed(web, f"/ui/loans/{loan_id}", as_of=args.as_of)
            )
            results.setdefault("API GET /v1/loans/{id}", []).append(
                timed(api, f"/v1/loans/{loan_id}", as_of=args.as_of)
            )
        for by in ("bank", "channel", "agency", "bucket"):
            for n in range(args.books):  # the first asks the views; the others, at the same position, memory
                label = f"book page by {by}" + (" (first)" if n == 0 else " (again)")
                results.setdefault(label, []).append(timed(web, "/ui/", as_of=args.as_of, by=by))
                results.setdefault(f"API /v1/balances by {by}", []).append(
                    timed(api, "/v1/balances", as_of=args.as_of, by=by)
                )
        results["loan list page /ui/loans"] = [timed(web, "/ui/loans", as_of=args.as_of) for _ in range(args.books)]
        load = " ".join(f"{v:.1f}" for v in os.getloadavg())
        print(f"store {args.db.split('@')[-1]}, {len(ids)}+ loans listed, as of {args.as_of}; load average {load}")
        for key, times in results.items():
            print(summary(key, times))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        subprocess.run([*ledger, "token", "revoke", name, "--db", args.db], cwd=ROOT, capture_output=True)


if __name__ == "__main__":
    main()
