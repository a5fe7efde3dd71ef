"""The write lane gathers a transaction (api/writer.py): requests already on their way join it, and the
answers are each request's own, whichever transaction carried it (issue 29)."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

from api.writer import WriteLane
from ledger.app import APPENDED, Outcome


class CountingLedger:
    """A ledger that appends nothing: it answers each command appended and keeps each call's loans."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(batch_size=500)
        self.calls: list[list[str]] = []
        self.lock = threading.Lock()

    def append(self, commands):
        with self.lock:
            self.calls.append([c.loan_id for c in commands])
        return [Outcome(APPENDED, c.loan_id) for c in commands]


def cmd(loan_id: str):
    return SimpleNamespace(loan_id=loan_id)


async def _request(lane: WriteLane, loan_id: str, announced, checking_s: float):
    """A single: announced on arrival, then its token and body checked (``checking_s``), then appended."""
    await asyncio.sleep(checking_s)
    return await lane.append([cmd(loan_id)], announced)


def test_requests_on_their_way_join_the_transaction_they_would_have_missed():
    """One request is queued alone while two are still being checked: they go in one transaction, not two,
    and each is answered as its own."""
    ledger = CountingLedger()
    lane = WriteLane(ledger, gather_seconds=30)  # bounded by the requests' arrival, not by this

    async def main():
        on_the_way = [lane.announce() for _ in range(3)]
        started = time.monotonic()
        answers = await asyncio.gather(
            _request(lane, "A", on_the_way[0], 0),
            *(_request(lane, x, a, 0.05) for x, a in zip("BC", on_the_way[1:], strict=True)),
        )
        return answers, time.monotonic() - started

    answers, took = asyncio.run(main())
    assert [[o.loan_id for o in a] for a in answers] == [["A"], ["B"], ["C"]]
    assert all(o.status == APPENDED for a in answers for o in a)
    assert ledger.calls == [["A", "B", "C"]]
    assert took < 10


def test_without_requests_on_their_way_a_transaction_starts_at_once():
    ledger = CountingLedger()
    lane = WriteLane(ledger, gather_seconds=30)

    async def main():
        started = time.monotonic()
        await lane.append([cmd("A")])
        return time.monotonic() - started

    assert asyncio.run(main()) < 10
    assert ledger.calls == [["A"]]


def test_a_request_refused_on_its_way_is_not_waited_for():
    """A request that is answered 401 or 422 before it appends withdraws: the transaction waiting for it
    goes at once, not after the gathering bound."""
    ledger = CountingLedger()
    lane = WriteLane(ledger, gather_seconds=30)

    async def main():
        refused = lane.announce()
        started = time.monotonic()

        async def refuse_later():
            await asyncio.sleep(0.05)
            refused.withdraw()

        answer, _ = await asyncio.gather(lane.append([cmd("A")]), refuse_later())
        return answer, time.monotonic() - started

    answer, took = asyncio.run(main())
    assert [o.loan_id for o in answer] == ["A"] and took < 10
    assert ledger.calls == [["A"]]


def test_a_transaction_does_not_wait_for_requests_announced_after_it_started():
    """A steady stream of newcomers cannot hold a transaction: it waits only for those on their way when it
    started, and a newcomer goes in the next one."""
    ledger = CountingLedger()
    lane = WriteLane(ledger, gather_seconds=30)

    async def main():
        early = lane.announce()
        started = time.monotonic()
        first = asyncio.ensure_future(lane.append([cmd("A")]))
        while not lane._on_the_way or lane._queue is None or not lane._queue.empty() or lane._announced != 1:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)  # the lane has taken A and waits for the early one
        late = lane.announce()
        await lane.append([cmd("B")], early)
        await first
        took = time.monotonic() - started
        await lane.append([cmd("C")], late)
        return took

    assert asyncio.run(main()) < 10
    assert ledger.calls == [["A", "B"], ["C"]]


def test_the_wait_is_bounded_when_a_request_never_arrives():
    ledger = CountingLedger()
    lane = WriteLane(ledger, gather_seconds=0.2)

    async def main():
        stuck = lane.announce()  # its token check hangs: the transaction goes after gather_seconds
        started = time.monotonic()
        await lane.append([cmd("A")])
        took = time.monotonic() - started
        stuck.withdraw()
        return took

    took = asyncio.run(main())
    assert 0.15 < took < 10
    assert ledger.calls == [["A"]]
