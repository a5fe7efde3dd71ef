"""`ledger serve`: the HTTP API on uvicorn, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import os
import signal

import click

from cli.common import open_ledger, store_options


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes (PostgreSQL scales)."
)
@store_options
def serve(host: str, port: int, workers: int, db_url: str | None, as_json: bool) -> None:
    """Serve the HTTP API (docs/api.md). SIGTERM or Ctrl-C: in-flight requests finish, then exit 0."""
    import uvicorn

    app = open_ledger(db_url)  # a bad or unreachable store is a usage error now, not in every worker
    url = app.settings.db_url
    app.close()
    # each worker process builds its app from the environment: hand it the store chosen here
    os.environ["LEDGER_DB"] = url
    # After a graceful shutdown uvicorn restores the handlers it found and raises the signal again,
    # so the process would die "by SIGTERM"; finding no-op handlers, it returns and we exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(
        "api.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # api.app logs one JSON line per request instead
        log_level="info",
        timeout_graceful_shutdown=30,
    )
