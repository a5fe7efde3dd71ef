"""Token checks of concurrent requests share one lookup, and never answer from a lookup older than the request."""

from __future__ import annotations

import asyncio

from api.services import Coalesced


def test_concurrent_checks_share_one_lookup_and_each_gets_its_own_answer():
    calls: list[list[str]] = []

    async def lookup(keys: list[str]) -> dict[str, str]:
        calls.append(sorted(keys))
        return {k: k.upper() for k in keys if k != "unknown"}

    async def main():
        checks = Coalesced(lookup)
        return await asyncio.gather(*(checks.get(k) for k in ["a", "b", "a", "unknown", "a"]))

    assert asyncio.run(main()) == ["A", "B", "A", None, "A"]
    assert calls == [["a", "b", "unknown"]]  # one lookup, each key once


def test_a_check_that_arrives_during_a_lookup_is_answered_by_a_later_one():
    """What makes sharing safe: a token revoked before a request arrived is never let in by an older read."""
    revoked = False

    async def main():
        started = asyncio.Event()
        release = asyncio.Event()

        async def lookup(keys: list[str]) -> dict[str, str]:
            state = "revoked" if revoked else "valid"
            started.set()
            await release.wait()
            return {k: state for k in keys}

        checks = Coalesced(lookup)
        first = asyncio.ensure_future(checks.get("t"))
        await started.wait()  # the first lookup has read the token: valid
        nonlocal revoked
        revoked = True  # revoked now, while that lookup is still in flight
        second = asyncio.ensure_future(checks.get("t"))  # a request arriving after the revocation
        await asyncio.sleep(0)
        release.set()
        return await first, await second

    assert asyncio.run(main()) == ("valid", "revoked")


def test_a_failed_lookup_fails_every_check_waiting_on_it_and_the_next_one_runs():
    attempts = 0

    async def lookup(keys: list[str]) -> dict[str, str]:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("store unavailable")
        return {k: "ok" for k in keys}

    async def main():
        checks = Coalesced(lookup)
        results = await asyncio.gather(checks.get("a"), checks.get("b"), return_exceptions=True)
        return results, await checks.get("a")

    results, after = asyncio.run(main())
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert after == "ok"


def test_one_lookup_answers_at_most_its_cap_of_keys():
    waiting = 300
    sizes: list[int] = []

    async def lookup(keys: list[str]) -> dict[str, str]:
        sizes.append(len(keys))
        return {k: k for k in keys}

    async def main():
        checks = Coalesced(lookup)
        return await asyncio.gather(*(checks.get(f"k{i}") for i in range(waiting)))

    assert asyncio.run(main()) == [f"k{i}" for i in range(waiting)]
    assert sizes == [256, 44]
