"""The worker processes a command spawned, found through /proc (Linux), to check they end with it."""

from __future__ import annotations

import time
from pathlib import Path


def parts_of(pid: int) -> list[int]:
    """The pool processes `--workers N` spawned (not multiprocessing's resource tracker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return []
    found = []
    for child in map(int, children):
        try:
            command = Path(f"/proc/{child}/cmdline").read_text()
        except FileNotFoundError:
            continue
        if "spawn_main" in command and "resource_tracker" not in command:
            found.append(child)
    return found


def all_gone(pids: list[int], within: float = 0.0) -> bool:
    """Whether every one of ``pids`` has exited, waiting up to ``within`` seconds for it."""
    deadline = time.monotonic() + within
    while any(Path(f"/proc/{p}").exists() for p in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
