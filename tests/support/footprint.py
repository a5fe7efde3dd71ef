"""What a store holds, table by table: to prove a refused command wrote nothing anywhere."""

from __future__ import annotations

from eventsourcing.postgres import PostgresDatastore


def table_rows(app) -> dict[str, int]:
    """Row count of every table of the store (events, keys, personal data, views, ...)."""
    datastore = app.recorder.datastore
    counts: dict[str, int] = {}
    with datastore.transaction(commit=False) as c:
        if isinstance(datastore, PostgresDatastore):
            c.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = %s AND table_type = 'BASE TABLE'",
                (datastore.schema,),
            )
            names = [r["table_name"] for r in c.fetchall()]
            for name in names:
                c.execute(f'SELECT count(*) AS n FROM "{datastore.schema}"."{name}"')
                counts[name] = c.fetchone()["n"]
        else:
            c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            names = [r[0] for r in c.fetchall()]
            for name in names:
                c.execute(f'SELECT count(*) FROM "{name}"')
                counts[name] = c.fetchone()[0]
    return counts


def events_table(app) -> str:
    return app.recorder.events_table_name
