"""The dataset's reader fetches its next chunk on a thread while rows are built from the current one."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from projections.read_ahead import read_ahead

WAIT = 10.0  # seconds: generous, only a broken read-ahead ever waits this long


def workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_items_come_in_order_and_all_of_them():
    assert list(read_ahead(iter(range(1000)))) == list(range(1000))
    assert list(read_ahead(iter([]))) == []
    assert not workers()


def test_the_next_item_is_produced_while_the_consumer_still_holds_the_current_one():
    second_started = threading.Event()

    def source() -> Iterator[int]:
        yield 1
        second_started.set()
        yield 2

    reader = read_ahead(source())
    assert next(reader) == 1
    # Nothing has asked for item 2 yet: only a reader working ahead has started on it.
    assert second_started.wait(WAIT)
    assert list(reader) == [2]


def test_a_failure_is_raised_to_the_consumer_after_the_items_before_it():
    def source() -> Iterator[int]:
        yield 1
        yield 2
        raise LookupError("chunk 3: the store went away")

    got = []
    with pytest.raises(LookupError, match="chunk 3: the store went away"):
        for item in read_ahead(source()):
            got.append(item)
    assert got == [1, 2]
    assert not workers()


def test_a_consumer_that_stops_early_stops_the_reader_and_closes_the_source_on_its_thread():
    closed_on: list[str] = []
    produced: list[int] = []

    def source() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                produced.append(i)
                yield i
        finally:  # where the source's connection would be given back
            closed_on.append(threading.current_thread().name)

    reader = read_ahead(source())
    assert next(reader) == 0
    reader.close()
    assert closed_on == ["read-ahead"]
    assert len(produced) <= 3  # the one handed over, at most one waiting, one being made
    assert not workers()
