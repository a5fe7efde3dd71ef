"""An iterator's next item fetched on a thread while the caller works on the current one.

A reader that alternates between waiting on the database and computing in Python leaves the
database's core idle while it computes and its own idle while it waits; reading one item ahead
lets the two overlap (the wait releases the GIL). One item ahead bounds the memory to two items.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar, cast

T = TypeVar("T")
_DONE = object()
_POLL_SECONDS = 0.1  # how often a blocked reader looks whether its consumer has gone


class _Failed:
    def __init__(self, error: BaseException):
        self.error = error


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """``items`` in order, each produced on a worker thread while the previous one is consumed.

    An exception in ``items`` is raised here, at the item it stopped at. When the consumer stops
    early (closes this generator), the worker stops after at most the item it is producing and
    ``items`` is closed on the worker's thread (releasing its connection there).
    """
    handoff: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(handoff, item, stop):
                    return
            _put(handoff, _DONE, stop)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, who raises it
            _put(handoff, _Failed(e), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield cast(T, item)
    finally:
        stop.set()
        worker.join()


def _put(handoff: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            handoff.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False
