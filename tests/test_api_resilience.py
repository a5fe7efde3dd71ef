"""Issue 23's API items: a damaged loan is a named answer, not a 500; the token check rides through a
PostgreSQL restart; a client leaving mid-body is a logged disconnect; a large batch is decoded off the
event loop."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import httpx
import pytest
from fastapi.testclient import TestClient
from pgserver import ThrowawayPostgres
from support.asgi import post_scope
from support.commands import applied, approved, domain_example, repaid
from test_damage import remove_event

from api.app import create_app
from ledger.commands import command_from_dict
from ledger.config import Settings
from ledger.tokens import create_token


def client_for(url: str) -> tuple[TestClient, dict[str, str], object]:
    app = create_app(Settings(db_url=url, retry_seconds=60))
    token = create_token(app.state.ledger, "rw", ["append", "read"])
    return TestClient(app, raise_server_exceptions=False), {"Authorization": f"Bearer {token}"}, app


def test_a_damaged_loan_is_a_named_409_pointing_to_verify_never_a_500(ledger):
    """Reproduction: GET /v1/loans/ID, a POST to it and /v1/balances answered 500."""
    ledger.append([command_from_dict(c) for c in [*domain_example(), repaid(), *domain_example("L2")]])
    remove_event(ledger.settings.db_url, "L1", 2)
    client, auth, _ = client_for(ledger.settings.db_url)
    with client:
        answers = [
            client.get("/v1/loans/L1", headers=auth),
            client.get("/v1/loans/L1/events", headers=auth),
            client.post("/v1/commands", json=repaid("L1", ref="R2"), headers=auth),
            client.get("/v1/balances", params={"as_of": "2026-03-10"}, headers=auth),
        ]
        for response in answers:
            assert response.status_code == 409, response.text
            error = response.json()["error"]
            assert error["code"] == "damaged_stream"
            assert "loan L1" in error["message"] and "ledger verify" in error["message"]
        batch = client.post(
            "/v1/commands/batch", json={"commands": [repaid("L1", ref="R3"), applied("L3")]}, headers=auth
        ).json()
        assert [(r["status"], (r.get("error") or {}).get("code")) for r in batch["results"]] == [
            ("rejected", "damaged_stream"),
            ("appended", None),  # the damaged loan holds no one else up
        ]
        assert client.get("/v1/loans/L2", headers=auth).status_code == 200


def test_the_token_check_rides_through_a_postgresql_restart(tmp_path):
    """Reproduction: 10 of 1,546 requests got a 500 while the server restarted."""
    with ThrowawayPostgres() as server:
        url = server.create_database("restart")
        client, auth, app = client_for(url)
        lost = threading.Event()

        class Watch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "lost the store" in record.getMessage():
                    lost.set()

        watch = Watch()
        logging.getLogger("ledger").addHandler(watch)
        try:
            with client:
                for cmd in domain_example():
                    assert client.post("/v1/commands", json=cmd, headers=auth).status_code == 201
                server.stop()
                answer: dict[str, httpx.Response] = {}
                reader = threading.Thread(target=lambda: answer.update(r=client.get("/v1/loans/L1", headers=auth)))
                reader.start()
                assert lost.wait(60)  # the check met the outage and is retrying
                server.start()
                reader.join(120)
                assert answer["r"].status_code == 200, answer["r"].text
                assert answer["r"].json()["state"] == "funded" or answer["r"].json()["loan_id"] == "L1"
        finally:
            logging.getLogger("ledger").removeHandler(watch)


def test_a_client_leaving_mid_body_is_logged_as_a_disconnect_without_a_traceback(store_url, capsys):
    app = create_app(Settings(db_url=store_url))
    token = create_token(app.state.ledger, "rw", ["append", "read"])
    sent: list[dict] = []

    async def main() -> None:
        messages = [
            {"type": "http.request", "body": b'{"commands": [' + b" " * 1000, "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        headers = [(b"authorization", f"Bearer {token}".encode()), (b"content-length", b"100000")]
        scope = post_scope("/v1/commands/batch", headers)
        await app(scope, receive, send)

    capsys.readouterr()
    asyncio.run(main())
    err = capsys.readouterr().err
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [(e["status"], e.get("event")) for e in logged] == [(499, "disconnect")], err
    assert "Traceback" not in err and "traceback" not in err
    assert not [m for m in sent if m["type"] == "http.response.start" and m["status"] >= 500]
    app.state.ledger.close()


def test_a_large_batch_is_decoded_off_the_event_loop(store_url, monkeypatch):
    """Reproduction: /healthz waited behind a 9 MB batch being parsed on the event loop. Judged by the
    order the two answers complete in, not by a time: /healthz is sent once the batch's decoding has
    begun, and answers first only if that decoding leaves the event loop free."""
    import api.routes.commands as routes

    app = create_app(Settings(db_url=store_url))
    token = create_token(app.state.ledger, "rw", ["append", "read"])
    decoding = threading.Event()
    real = routes.decode_batch

    def watched(*args):
        decoding.set()
        return real(*args)

    monkeypatch.setattr(routes, "decode_batch", watched)
    personal = {f"k{i:02d}": "v" * 22 for i in range(19)}
    item = approved("L1", term_days=99, borrower=personal)  # valid JSON, refused only by validation
    body = json.dumps({"commands": [{**item, "loan_id": f"L{i}"} for i in range(10_000)]}).encode()
    assert len(body) > 9_000_000

    async def main() -> list[str]:
        done: list[str] = []
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api", timeout=120) as client:

            async def batch() -> None:
                response = await client.post(
                    "/v1/commands/batch", content=body, headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 200 and response.json()["rejected"] == 10_000
                done.append("batch")

            async def health() -> None:
                await asyncio.to_thread(decoding.wait, 60)
                assert (await client.get("/healthz")).status_code == 200
                done.append("healthz")

            await asyncio.gather(batch(), health())
        return done

    assert asyncio.run(main()) == ["healthz", "batch"]
    app.state.ledger.close()


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
