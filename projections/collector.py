"""Python's cyclic garbage collector, held off while a projection works through the log.

A catch-up allocates and frees hundreds of thousands of objects a page, and reference counting
frees all of them: nothing on that path leaves a reference cycle (tests/test_book_page.py checks).
The collector's passes would only re-walk the thousands of loans a runner caches, again and again
(a tenth to a quarter of a rebuild, measured). So it is held off for the call and put back as it
was; a full pass every EVENTS_PER_PASS events keeps memory bounded should a rare path (an error's
traceback) leave a cycle after all.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable
from typing import Any, TypeVar

EVENTS_PER_PASS = 200_000

F = TypeVar("F", bound=Callable[..., Any])
_lock = threading.Lock()
_holders = 0  # calls (of any thread) holding it off now
_was_enabled = False  # as the first of them found it
_since_pass = 0


def held(fn: F) -> F:
    """Run ``fn`` with the collector held off (nested and concurrent calls share one hold)."""

    @functools.wraps(fn)
    def holding(*args: Any, **kwargs: Any) -> Any:
        global _holders, _was_enabled
        with _lock:
            if _holders == 0:
                _was_enabled = gc.isenabled()
                gc.disable()
            _holders += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with _lock:
                _holders -= 1
                if _holders == 0 and _was_enabled:
                    gc.enable()

    return holding  # type: ignore[return-value]


def worked(events: int) -> None:
    """Count events worked under a hold; a full pass when enough have gone by."""
    global _since_pass
    with _lock:
        if not (_holders and _was_enabled):
            return  # not ours to run: the process keeps the collector off itself
        _since_pass += events
        if _since_pass < EVENTS_PER_PASS:
            return
        _since_pass = 0
    gc.collect()
