"""The library's own recorder tests, run against the ledger's recorders on both stores.

Our recorders replace the library's insert (PostgreSQL) and add tables written in
the same transaction; these tests hold them to everything the library promises:
ordering, gaps, conflicts raising IntegrityError, and notification ids of
concurrent writers that never interleave.
"""

from __future__ import annotations

import itertools
import os
import threading

import pytest
from eventsourcing.persistence import InfrastructureFactory
from eventsourcing.tests.persistence import ApplicationRecorderTestCase, NonInterleavingNotificationIDsBaseCase
from eventsourcing.utils import Environment

from eventstore.store import LedgerPostgresRecorder, LedgerSQLiteRecorder
from ledger.config import store_env

_numbers = itertools.count()


class _LedgerRecorder:
    """create_recorder(): the ledger's recorder on a store of its own (the tests count ids from 1)."""

    store = ""

    @pytest.fixture(autouse=True)
    def _stores(self, request, tmp_path):
        self._request, self._tmp, self._factories = request, tmp_path, []
        before = set(threading.enumerate())
        yield
        # The library's concurrency test signals its reader threads to stop but does not join them;
        # closing a SQLite connection one of them is still reading through crashes the interpreter.
        # (Only theirs: the connection pool's own threads are daemons that live until it closes.)
        for thread in set(threading.enumerate()) - before:
            if not thread.daemon:
                thread.join(timeout=10)
        for factory in self._factories:
            factory.close()

    def create_recorder(self):
        n = next(_numbers)
        if self.store == "sqlite":
            url = f"sqlite:///{self._tmp}/conformance{n}.db"
        else:
            url = self._request.getfixturevalue("pg_server").create_database(f"conformance_{os.getpid()}_{n}")
        factory = InfrastructureFactory.construct(Environment("Ledger", store_env(url)))
        self._factories.append(factory)
        recorder = factory.application_recorder()
        assert isinstance(recorder, LedgerSQLiteRecorder if self.store == "sqlite" else LedgerPostgresRecorder)
        return recorder


class TestLedgerSQLiteRecorder(_LedgerRecorder, ApplicationRecorderTestCase):
    store = "sqlite"


class TestLedgerPostgresRecorder(_LedgerRecorder, ApplicationRecorderTestCase):
    store = "postgres"


class TestLedgerSQLiteNonInterleaving(_LedgerRecorder, NonInterleavingNotificationIDsBaseCase):
    store = "sqlite"


class TestLedgerPostgresNonInterleaving(_LedgerRecorder, NonInterleavingNotificationIDsBaseCase):
    store = "postgres"
