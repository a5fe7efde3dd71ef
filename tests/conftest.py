"""One suite, every store: fixtures parametrised over SQLite and a real PostgreSQL server.

The PostgreSQL server is started by the test run itself (tests/pgserver.py);
if it cannot start, the run fails: nothing here skips.
"""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).parent))

from ledger.app import Ledger  # noqa: E402
from ledger.config import Settings  # noqa: E402

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

STORES = ["sqlite", "postgres"]
_db_numbers = itertools.count()


# The modules whose tests take longest start first: the two workers then end together on the many short
# tests instead of one finishing a 40 s test while the other idles (xdist hands tests out in this order).
LONGEST_FIRST = (
    "test_eod_workers.py",
    "test_projections.py",
    "test_dataset.py",
    "test_spark_dataset.py",
    "test_restart.py",
    "test_model_report.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def pg_server():
    from pgserver import ThrowawayPostgres

    with ThrowawayPostgres() as server:
        yield server


@pytest.fixture(params=STORES)
def store_url(request, tmp_path):
    """An empty store, its tables created as `ledger init` creates them (commands other than init,
    demo and simulate refuse a SQLite file that does not exist)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/ledger.db"
        Ledger(Settings(db_url=url)).close()
        return url
    server = request.getfixturevalue("pg_server")
    return server.create_database(f"t{os.getpid()}_{next(_db_numbers)}")


@pytest.fixture
def ledger(store_url) -> Ledger:
    app = Ledger(Settings(db_url=store_url))
    yield app
    app.close()


@pytest.fixture(params=STORES)
def new_store(request, tmp_path_factory):
    """A factory of empty stores of one kind: for hypothesis, whose examples share fixtures.
    The PostgreSQL server is asked for only by the PostgreSQL case: a SQLite run never starts it."""
    server = request.getfixturevalue("pg_server") if request.param == "postgres" else None

    def make() -> str:
        n = next(_db_numbers)
        if server is None:
            return f"sqlite:///{tmp_path_factory.mktemp('store')}/ledger{n}.db"
        return server.create_database(f"t{os.getpid()}_{n}")

    return make


@pytest.fixture(scope="session")
def books(tmp_path_factory):
    """Books built once per test process and store kind, each test given a copy of its own:
    ``books.copy(name, store_url, build)`` (tests/support/stores.py)."""
    from support.stores import Books

    return Books(tmp_path_factory.mktemp("books"))


@pytest.fixture
def simulated_book(ledger):
    """The simulator as a fixture: ``simulated_book(seed, loans, ...)`` fills this test's ledger."""
    from support.simulation import simulated_ledger

    def fill(seed: int, loans: int, **options):
        return simulated_ledger(ledger, seed, loans, **options)

    return fill
