"""/healthz answers within its limit when the store does not answer at all."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from api.app import create_app
from api.routes import ops
from ledger.config import Settings


def test_healthz_is_503_within_its_limit_while_the_store_hangs(tmp_path, monkeypatch):
    """Reproduction: /healthz waited for the store as long as the store took (and retried a lost
    connection for the reads' 30 s), though it promised 5 s. Here the store answers only once the
    test has its responses, or after 30 s: before, each request waited for it, and got 200 then.
    The recorder is replaced, so one store kind proves it."""
    monkeypatch.setattr(ops, "HEALTH_SECONDS", 0.5)
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path}/ledger.db", retry_seconds=60.0))
    release = threading.Event()
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        monkeypatch.setattr(app.state.ledger.recorder, "max_notification_id", lambda: release.wait(30))
        try:
            answers = [client.get("/healthz") for _ in range(3)]  # more than the probes' two threads
        finally:
            release.set()
        assert [(a.status_code, a.json()) for a in answers] == [(503, {"status": "unavailable"})] * 3
