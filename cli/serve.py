"""`ledger serve`: the HTTP API on uvicorn, until SIGTERM or Ctrl-C.

The transport (header and body timeouts, the connection cap, answering a client that sends its
whole body first) is api/transport.py, handed to uvicorn as its protocol and around the app.
"""

from __future__ import annotations

import math
import os
import resource
import secrets
import signal

import click

from api.transport import BODY_TIMEOUT_ENV, HEADER_TIMEOUT_ENV, MAX_CONNECTIONS_ENV
from cli.common import open_ledger, store_options

FILES_BESIDE_CONNECTIONS = 256  # the store's pool, the listening socket, logs, the interpreter's own


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True, help="Server processes (PostgreSQL scales)."
)
@click.option(
    "--max-connections",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Connections held at once (shared out among the workers). At the cap, the connection that has "
    "waited longest for a request's headers is closed to make room; 503 only when every one is busy.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0.1, 3600),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="A connection that has not sent a request's headers within this is dropped.",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(0.1, 3600),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="A request whose body has not all arrived this long after its headers is dropped.",
)
@store_options
def serve(
    host: str,
    port: int,
    workers: int,
    max_connections: int,
    header_timeout: float,
    body_timeout: float,
    db_url: str | None,
    as_json: bool,
) -> None:
    """Serve the HTTP API (docs/api.md). SIGTERM or Ctrl-C: in-flight requests finish, then exit 0."""
    import uvicorn

    per_worker = math.ceil(max_connections / workers)
    _allow_open_files(per_worker + FILES_BESIDE_CONNECTIONS)
    app = open_ledger(db_url)  # a bad or unreachable store is a usage error now, not in every worker
    url = app.settings.db_url
    app.close()
    # each worker process builds its app and its transport from the environment: hand them what was chosen here
    os.environ["LEDGER_DB"] = url
    os.environ[MAX_CONNECTIONS_ENV] = str(per_worker)
    os.environ[HEADER_TIMEOUT_ENV] = str(header_timeout)
    os.environ[BODY_TIMEOUT_ENV] = str(body_timeout)
    from api.ui import SESSION_KEY_ENV

    # the web view's sessions are signed with one key that every worker shares (api/ui.py): the operator's,
    # or a fresh one for this run (then a restart asks for the token again)
    given = os.environ.get(SESSION_KEY_ENV)
    if given is not None and len(given) < 32:
        raise click.UsageError(f"{SESSION_KEY_ENV} must be at least 32 characters (or unset: a key per run)")
    os.environ[SESSION_KEY_ENV] = given or secrets.token_hex(32)
    # After a graceful shutdown uvicorn restores the handlers it found and raises the signal again,
    # so the process would die "by SIGTERM"; finding no-op handlers, it returns and we exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(
        "api.transport:create_served_app",
        factory=True,
        http="api.transport:GuardedHttpTools",
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # api.app logs one JSON line per request instead
        log_level="info",
        timeout_graceful_shutdown=30,
        # uvicorn kills a worker that does not answer its ping within this; its default (5 s) killed every
        # worker still importing the application on a loaded machine, for good (seen under CI load)
        timeout_worker_healthcheck=60,
    )


def _allow_open_files(needed: int) -> None:
    """Raise this process's open-file limit to ``needed`` if the hard limit allows; else say so."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise click.UsageError(
                f"--max-connections needs {needed} open files a server process, and the limit is {hard} "
                "(`ulimit -Hn`): lower --max-connections or raise the limit"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
