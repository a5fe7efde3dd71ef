"""The test run's own PostgreSQL: real, and each test's database is its own."""

import psycopg


def test_databases_from_the_throwaway_server_are_isolated(pg_server):
    first, second = pg_server.create_database("iso_a"), pg_server.create_database("iso_b")
    with psycopg.connect(first, autocommit=True) as con:
        con.execute("CREATE TABLE t (x int)")
        con.execute("INSERT INTO t VALUES (1)")
    with psycopg.connect(second, autocommit=True) as con:
        exists = con.execute("SELECT to_regclass('public.t')").fetchone()[0]
    assert exists is None
    with psycopg.connect(first) as con:
        assert con.execute("SHOW server_version").fetchone()[0].startswith(("15", "16", "17"))
