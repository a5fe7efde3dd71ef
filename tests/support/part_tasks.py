"""Tasks for the tests of eventstore.parts.run_parts: module-level, so a spawned part can import them."""

from __future__ import annotations

import os


def answer(value: str) -> str:
    return value


def refuse(why: str) -> str:
    raise ValueError(why)


def die() -> str:
    os._exit(3)  # as a part killed by the operating system: no answer, no exception
