"""The ledger application: append commands exactly once, read loans bitemporally.

Appending a batch:
1. keys already stored are answered at once: same content is a duplicate,
   other content a conflict;
2. the rest are applied, loan by loan and in input order, to the loans' current
   state; a command that breaks a rule is rejected alone;
3. every accepted event and its idempotency key go in ONE transaction, the
   events in the order of the commands that produced them (so the log's order
   is the input's, however the input was cut into batches; each loan's own
   events stay in version order, as its hash chain needs);
4. if that transaction loses a race (another writer changed one of the loans,
   or stored one of the keys), nothing of it was written, and each loan is
   retried alone against its new state, a bounded number of times.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Notification, Recording, StoredEvent
from eventsourcing.utils import Environment, EnvType, get_topic

from domain.errors import (
    BrokenInvariant,
    CostCapExceeded,
    DamagedStream,
    IdempotencyConflict,
    IllegalTransition,
    InvalidAmount,
    InvalidCommand,
    LedgerError,
    RuleViolation,
)
from domain.loan import Loan, loan_uuid
from eventstore import library
from eventstore.audit_store import stream_id
from eventstore.retry import retrying
from eventstore.store import DateAsISO, KeyRecord, LedgerRecorder, LoanMapper
from eventstore.streams import DAMAGE, damage_named, loan_event
from ledger.commands import Applied, _Command
from ledger.config import Settings, store_env
from ledger.handlers import handle

APPENDED, DUPLICATE, REJECTED = "appended", "duplicate", "rejected"

# Why a command was rejected (Outcome.code): what a caller acts on without reading the message.
INVALID_COMMAND = "invalid_command"  # not a valid command: a field, a limit, the JSON itself
ILLEGAL_TRANSITION = "illegal_transition"  # not in this state (an unknown loan, funding twice, ...)
RULE_VIOLATION = "rule_violation"  # legal in this state but breaks a business rule (cost cap, amounts)
IDEMPOTENCY_CONFLICT = "idempotency_conflict"  # the key was used before with other content
CONTENTION = "contention"  # the loan kept changing under concurrent writers: nothing appended, retry later
DAMAGED_STREAM = "damaged_stream"  # the loan's stored events are damaged: `ledger verify`
REASON_CODES = (INVALID_COMMAND, ILLEGAL_TRANSITION, RULE_VIOLATION, IDEMPOTENCY_CONFLICT, CONTENTION, DAMAGED_STREAM)


@dataclass(frozen=True)
class Outcome:
    status: str
    loan_id: str | None
    error: str | None = None
    code: str | None = None  # one of REASON_CODES when rejected
    field: str | None = None  # the command's field at fault, when one is


def reason_of(error: LedgerError) -> tuple[str, str | None]:
    """The reason code and field of a rule's error (what ``Outcome`` carries)."""
    if isinstance(error, InvalidCommand):
        return INVALID_COMMAND, error.field
    if isinstance(error, InvalidAmount):
        return INVALID_COMMAND, error.field
    if isinstance(error, IllegalTransition):
        return ILLEGAL_TRANSITION, None
    if isinstance(error, IdempotencyConflict):
        return IDEMPOTENCY_CONFLICT, "idempotency_key"
    if isinstance(error, DamagedStream):
        return DAMAGED_STREAM, None
    if isinstance(error, (RuleViolation, CostCapExceeded)):
        return RULE_VIOLATION, None
    return RULE_VIOLATION, None


class Ledger(Application[UUID]):
    """One event stream per loan; table ``ledger_events`` on PostgreSQL."""

    name = "Ledger"
    recorder: LedgerRecorder  # store_env names one of these as APPLICATION_RECORDER_TOPIC

    def __init__(self, settings: Settings):
        self.settings = settings
        self._calls = threading.local()
        env = store_env(settings.db_url)
        if not settings.setup_store:
            env["CREATE_TABLE"] = "no"  # the library's switch; only the ledger's own setting sets it
        super().__init__(env=env)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Only the settings the ledger passed: the library would merge os.environ, where a stray
        ``LEDGER_SQLITE_DBNAME`` or ``POSTGRES_DBNAME`` overrides ``--db`` and sends every write
        elsewhere (or to memory), and ``POSTGRES_ENABLE_DB_FUNCTIONS`` skips our own tables."""
        return Environment(name, dict(env or {}))

    def __del__(self) -> None:
        """The library closes a collected application; one whose opening failed half-way has a pool that
        cannot be closed from its own thread, and printed "Exception ignored in Application.__del__"."""
        with suppress(Exception):
            super().__del__()

    def construct_mapper(self) -> Mapper[UUID]:
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=LoanMapper)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    # ---- writing ----------------------------------------------------------------
    def append(
        self,
        commands: Sequence[_Command],
        *,
        loans: dict[str, Loan | None] | None = None,
        saved: dict[str, Loan] | None = None,
    ) -> list[Outcome]:
        """Append a batch; one Outcome per command, in order.

        A lost connection is retried for up to ``settings.retry_seconds`` (then StoreUnavailable).
        Keys make the retry safe; a line this call committed before the loss is still answered
        appended, because the call remembers the keys of every transaction it saw commit.

        ``loans``: the current state of some of the batch's loans, as ``get_loans`` returned it to
        the caller just now (the end of day has read them to decide its commands): the first
        attempt stages on them instead of reading them again. They are taken over (staging moves
        them on) and used once: a lost race or a retry after a lost connection reads afresh, so a
        state that went stale since the caller read it costs a retry, never a wrong answer.

        ``saved``: filled with each loan this call committed, by loan id, in the state it committed
        (what its stored events replay to, whichever path saved it: a lost race stages again on a
        fresh read). A caller that needs the loans after the append (the settlement's statement)
        reads only the others: a loan given in ``loans`` and missing from ``saved`` may hold staged
        events that were never stored.
        """
        self._calls.committed = committed = set[str]()  # per thread: one Ledger may serve several
        self._calls.saved = saved
        preloaded = [dict(loans or {})]  # emptied by the first attempt that reads loans

        def attempt() -> list[Outcome]:
            given, preloaded[0] = preloaded[0], {}
            return self._append(commands, given)

        try:
            outcomes = retrying(self.settings.retry_seconds, "append", attempt)
        finally:
            self._calls.saved = None
        for i, (cmd, outcome) in enumerate(zip(commands, outcomes, strict=True)):
            if outcome.status == DUPLICATE and cmd.idempotency_key in committed:
                outcomes[i] = Outcome(APPENDED, cmd.loan_id)
            if outcomes[i].status == APPENDED:
                committed.discard(cmd.idempotency_key)  # a repeat later in the batch stays a duplicate
        return outcomes

    def _append(self, commands: Sequence[_Command], preloaded: dict[str, Loan | None]) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(commands)
        unread: dict[UUID, str] = {}

        def loans_to_read(stored: dict[str, KeyRecord]) -> list[UUID]:
            """The loans that the commands not stored yet stage on, less those the caller handed over."""
            for cmd in commands:
                if cmd.idempotency_key not in stored and cmd.loan_id not in preloaded:
                    unread.setdefault(loan_uuid(cmd.loan_id), cmd.loan_id)
            return list(unread)

        # the keys and then the loans in one read transaction (issue 29: a round trip pair saved per batch)
        stored, events = self.recorder.find_keys_then_events(
            sorted({cmd.idempotency_key for cmd in commands}), loans_to_read
        )
        read = self._loans_from(events, list(unread), unread)
        at_hand = {**preloaded, **{unread[uuid]: loan for uuid, loan in read.items()}}
        by_loan: dict[str, list[int]] = defaultdict(list)
        first_in_batch: dict[str, int] = {}
        repeats: list[tuple[int, int]] = []  # (index, index of the first command with its key)
        for i, cmd in enumerate(commands):
            record = stored.get(cmd.idempotency_key)
            if record is not None:
                outcomes[i] = _repeat(cmd, record.content_hash, record.loan_id)
            elif cmd.idempotency_key in first_in_batch:
                repeats.append((i, first_in_batch[cmd.idempotency_key]))
            else:
                first_in_batch[cmd.idempotency_key] = i
                by_loan[cmd.loan_id].append(i)

        for loan_id, loan_outcomes in self._apply(commands, by_loan, at_hand).items():
            for i, outcome in zip(by_loan[loan_id], loan_outcomes, strict=True):
                outcomes[i] = outcome
        self._recheck_rejections(commands, outcomes)
        for i, first_i in repeats:
            # a repeat is a duplicate only of something that was stored
            first, first_outcome = commands[first_i], outcomes[first_i]
            if first_outcome is None:
                raise BrokenInvariant(f"loan {first.loan_id}: command {first_i + 1} of the batch has no outcome")
            if first_outcome.status == REJECTED:
                outcomes[i] = Outcome(
                    REJECTED,
                    commands[i].loan_id,
                    f"idempotency_key {first.idempotency_key!r} was used earlier in this batch "
                    f"by a command that was rejected: {first_outcome.error}",
                    first_outcome.code,
                    first_outcome.field,
                )
            else:
                outcomes[i] = _repeat(commands[i], first.content_hash, first.loan_id)
        answered = [o for o in outcomes if o is not None]
        if len(answered) != len(outcomes):
            raise BrokenInvariant(f"{len(outcomes) - len(answered)} of {len(outcomes)} commands have no outcome")
        return answered

    def _apply(
        self, commands: Sequence[_Command], by_loan: dict[str, list[int]], preloaded: dict[str, Loan | None]
    ) -> dict[str, list[Outcome]]:
        """Every loan's commands in one transaction; when it loses a race, only the loans that
        another writer changed (or whose keys it stored) fall back to one loan at a time."""
        answers: dict[str, list[Outcome]] = {}
        pending = {loan_id: [commands[i] for i in idx] for loan_id, idx in by_loan.items()}
        loans = {loan_id: preloaded[loan_id] for loan_id in pending if loan_id in preloaded}
        if wrong := [loan_id for loan_id, loan in loans.items() if loan is not None and loan.loan_id != loan_id]:
            raise BrokenInvariant(f"preloaded loans keyed by the wrong loan id: {wrong[:5]}")
        if unread := [loan_id for loan_id in pending if loan_id not in loans]:
            loans.update(self.get_loans(unread))
        conflicted: list[str] = []
        for _ in range(self.settings.max_retries):
            if not pending:
                break
            read_at = {loan_id: _version(loans[loan_id]) for loan_id in pending}  # staging moves it on
            staged = {loan_id: self._stage(loan_id, cmds, loans[loan_id]) for loan_id, cmds in pending.items()}
            for loan_id, s in staged.items():
                s.order = by_loan[loan_id]  # each command's place in the batch: the log keeps it
            try:
                self._save([s for s in staged.values() if s.loan is not None])
            except IntegrityError:
                fresh = self.get_loans(list(pending))
                taken = self.recorder.find_keys(sorted({c.idempotency_key for cmds in pending.values() for c in cmds}))
                changed = [
                    loan_id
                    for loan_id, cmds in pending.items()
                    if _version(fresh[loan_id]) != read_at[loan_id] or any(c.idempotency_key in taken for c in cmds)
                ]
                for loan_id in changed or list(pending):  # none seen changed: take no chances
                    conflicted.append(loan_id)
                    del pending[loan_id]
                loans = fresh
                continue
            answers.update({loan_id: s.outcomes for loan_id, s in staged.items()})
            pending = {}
        for loan_id in [*conflicted, *pending]:
            answers[loan_id] = self._append_one_loan(loan_id, [commands[i] for i in by_loan[loan_id]])
        return answers

    def _recheck_rejections(self, commands: Sequence[_Command], outcomes: list[Outcome | None]) -> None:
        """A rule rejection may be a race: another writer stored the same line between our key
        lookup and our read of the loan, so the loan already holds it. Such a line is a
        duplicate (or, with other content, a key conflict), never "cannot apply"."""
        suspects = [i for i, o in enumerate(outcomes) if o is not None and o.status == REJECTED]
        if not suspects:
            return
        stored = self.recorder.find_keys(sorted({commands[i].idempotency_key for i in suspects}))
        for i in suspects:
            record = stored.get(commands[i].idempotency_key)
            if record is not None:
                outcomes[i] = _repeat(commands[i], record.content_hash, record.loan_id)

    def _append_one_loan(self, loan_id: str, cmds: list[_Command]) -> list[Outcome]:
        """The fallback: this loan alone, against its freshest state.

        Writers that fell back on the same loan queue on a per-loan lock, so only a
        writer still on the optimistic path can beat this one; the retries, bounded in
        time (``settings.contention_seconds``), are for that case. Sixteen API clients
        on one loan beat five quick retries about once in a few hundred requests.
        """
        attempt = 0
        with self.recorder.loan_lock(loan_id):
            deadline = time.monotonic() + self.settings.contention_seconds  # from first in the queue
            while attempt < self.settings.max_retries or time.monotonic() < deadline:
                if attempt:
                    # jittered backoff, capped: writers that collided should not collide again in
                    # lockstep, and a long sleep only widens the window for the next optimistic writer
                    time.sleep(random.uniform(0, min(0.005 * 2**attempt, 0.05)))
                attempt += 1
                stored = self.recorder.find_keys([cmd.idempotency_key for cmd in cmds])
                fresh = [cmd for cmd in cmds if cmd.idempotency_key not in stored]
                staged = self._stage(loan_id, fresh, self.get_loan(loan_id))
                try:
                    self._save([staged] if staged.loan is not None else [])
                except IntegrityError:
                    continue
                answers = dict(zip((cmd.idempotency_key for cmd in fresh), staged.outcomes, strict=True))
                return [
                    answers.get(cmd.idempotency_key)
                    or _repeat(cmd, stored[cmd.idempotency_key].content_hash, stored[cmd.idempotency_key].loan_id)
                    for cmd in cmds
                ]
        error = (
            f"loan {loan_id} kept changing under concurrent writers "
            f"({attempt} attempts in {self.settings.contention_seconds:g} s); nothing appended, retry later"
        )
        return [Outcome(REJECTED, loan_id, error, CONTENTION) for _ in cmds]

    def _stage(self, loan_id: str, cmds: list[_Command], loan: Loan | None) -> _Staged:
        outcomes: list[Outcome] = []
        keys: list[KeyRecord] = []
        borrowers: dict[str, dict[str, Any]] = {}
        counts: list[int] = []  # events each command added (a rejected one adds none)
        for cmd in cmds:
            before = 0 if loan is None else len(loan.pending_events)
            try:
                loan = handle(loan, cmd, self.settings)
            except LedgerError as e:
                outcomes.append(Outcome(REJECTED, loan_id, str(e), *reason_of(e)))
                counts.append(0 if loan is None else len(loan.pending_events) - before)
                continue
            counts.append(len(loan.pending_events) - before)
            outcomes.append(Outcome(APPENDED, loan_id))
            keys.append(KeyRecord(cmd.idempotency_key, loan_id, cmd.content_hash, cmd.type))
            if isinstance(cmd, Applied) and cmd.borrower:
                borrowers[cmd.borrower_id] = cmd.borrower
        return _Staged(loan if keys else None, outcomes, keys, borrowers, counts)

    def _save(self, staged: list[_Staged]) -> None:
        if not staged:
            return
        keys = [k for s in staged for k in s.keys]
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.events.extend(_in_command_order(staged))
        processing_event.aggregates.update({s.loan.id: s.loan for s in staged if s.loan is not None})
        self._commit(
            processing_event, idempotency=keys, borrowers={b: d for s in staged for b, d in s.borrowers.items()}
        )
        getattr(self._calls, "committed", set[str]()).update(k.key for k in keys)
        if (saved := getattr(self._calls, "saved", None)) is not None:
            saved.update({s.loan.loan_id: s.loan for s in staged if s.loan is not None})

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's save (eventsourcing 9.5.6), less its runtime Protocol checks for Loans.

        ``ProcessingEvent.collect_events`` asks ``isinstance`` of two runtime-checkable Protocols
        for every aggregate, which on Python 3.11 inspects each class attribute: about a twentieth
        of a batch's time. A Loan is known to be an aggregate, so its events are taken directly;
        anything else goes the library's way.
        """
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for obj in objs:
            if type(obj) is Loan:
                processing_event.events.extend(obj.collect_events())
                processing_event.aggregates[obj.id] = obj
            else:
                processing_event.collect_events(obj)
        return self._commit(processing_event, **kwargs)

    def _commit(self, processing_event: ProcessingEvent[UUID], **kwargs: Any) -> list[Recording[UUID]]:
        """The library's save from its collected events on (through eventstore/library.py, where
        every use of the library's internals is listed and pinned)."""
        return library.commit(self, processing_event, **kwargs)

    # ---- reading ----------------------------------------------------------------
    def get_loan(self, loan_id: str, known_at: datetime | None = None) -> Loan | None:
        """The loan as the ledger knew it at ``known_at`` (now when None)."""
        with damage_named(loan_id):
            if known_at is None:
                try:
                    found: object = self.repository.get(loan_uuid(loan_id))
                except AggregateNotFoundError:
                    return None
                # a bank's settlements live on a stream named like a loan's (ledger/settle.py): no loan
                return found if isinstance(found, Loan) else None
            loan: Loan | None = None
            for e in self.loan_events(loan_id, known_at):
                loan = e.mutate(loan)
            return loan

    def get_loans(self, loan_ids: list[str]) -> dict[str, Loan | None]:
        """Current state of several loans from one query: a batch's worth of round trips saved."""
        by_uuid = {loan_uuid(loan_id): loan_id for loan_id in loan_ids}
        found = self.get_loans_by_uuid(list(by_uuid), names=by_uuid)
        return {by_uuid[uuid]: loan for uuid, loan in found.items()}

    def get_loans_by_uuid(self, uuids: list[UUID], names: dict[UUID, str] | None = None) -> dict[UUID, Loan | None]:
        """As ``get_loans``, for callers that hold store ids (the end of day's candidates)."""
        return self._loans_from(self.recorder.select_events_of(uuids), uuids, names)

    def _loans_from(
        self, events: list[StoredEvent], uuids: list[UUID], names: dict[UUID, str] | None
    ) -> dict[UUID, Loan | None]:
        """The loans ``uuids`` from their stored events (every event of each, in version order)."""
        loans: dict[UUID, Loan | None] = dict.fromkeys(uuids)
        decode = self.mapper.to_domain_event
        for stored in events:
            uuid = stream_id(stored)
            loan = loans[uuid]
            try:
                loans[uuid] = loan_event(decode(stored)).mutate(loan)
            except DAMAGE:  # named here, not per event: a context manager an event cost as much as its decoding
                with damage_named(loan.loan_id if loan is not None else (names or {}).get(uuid, str(uuid))):
                    raise
        return loans

    def notifications(self, *event_classes: type, page: int = 5000) -> Iterator[Notification]:
        """The store's log in order, only events of these classes (every event when none given):
        the one paging loop every reader of the whole log uses."""
        topics = [get_topic(cls) for cls in event_classes]
        start = 1
        while notes := self.recorder.select_notifications(start, page, topics=topics):
            yield from notes
            start = notes[-1].id + 1

    def loan_with_events(self, loan_id: str, known_at: datetime | None = None) -> tuple[Loan | None, list[Loan.Event]]:
        """The loan and its events from ONE read of its stream (with ``known_at``, as recorded by then).

        ``loan show`` and the API's loan reads take both from here: reading the events and then the
        loan again would let a write between the two reads mix two versions in one answer.
        """
        events = self.loan_events(loan_id, known_at)
        loan: Loan | None = None
        with damage_named(loan_id):
            for e in events:
                loan = e.mutate(loan)
        return loan, events

    def loan_events(self, loan_id: str, known_at: datetime | None = None) -> list[Loan.Event]:
        """The loan's events in order; with ``known_at``, the prefix recorded by then."""
        with damage_named(loan_id):
            stored = list(self.events.get(loan_uuid(loan_id)))
            if stored and not isinstance(stored[0], Loan.Event):
                return []  # a bank's settlements (a stream named like a loan's, ledger/settle.py): no loan
            events = [loan_event(e) for e in stored]
        if known_at is None:
            return events
        known: list[Loan.Event] = []
        for e in events:
            if e.timestamp > known_at:
                break
            known.append(e)
        return known


@dataclass
class _Staged:
    loan: Loan | None
    outcomes: list[Outcome]
    keys: list[KeyRecord]
    borrowers: dict[str, dict[str, Any]]
    counts: list[int]  # events each staged command added, in the loan's command order
    order: list[int] | None = None  # each command's index in the batch (None: one loan alone)


def _in_command_order(staged: list[_Staged]) -> list[Loan.Event]:
    """The pending events of the staged loans, in the order of the commands that produced them.

    A batch's commands interleave loans (a borrower's second application between the first
    loan's callbacks); storing the events grouped by loan would make the log's order depend
    on how the input was cut into transactions, and with it every reader that asks "what came
    before this application" (projections/dataset.py). Sorting by command index keeps each loan's
    own events in version order (its commands are in batch order), which its hash chain needs.
    """
    tagged: list[tuple[int, Loan.Event]] = []
    for s in staged:
        if s.loan is None:  # nothing staged on it
            continue
        events = [loan_event(e) for e in s.loan.collect_events()]
        order = s.order if s.order is not None else [0] * len(s.counts)
        places = [place for place, n in zip(order, s.counts, strict=True) for _ in range(n)]
        if len(places) != len(events):
            raise RuntimeError(
                f"loan {s.loan.loan_id}: {len(events)} pending events for {len(places)} staged ones; nothing saved"
            )
        tagged.extend(zip(places, events, strict=True))
    tagged.sort(key=lambda t: t[0])  # stable: one command's events, and one loan's, keep their order
    return [e for _, e in tagged]


def _version(loan: Loan | None) -> int | None:
    return None if loan is None else loan.version


def _repeat(cmd: _Command, stored_hash: str, stored_loan_id: str) -> Outcome:
    if stored_hash == cmd.content_hash and stored_loan_id == cmd.loan_id:
        return Outcome(DUPLICATE, cmd.loan_id)
    error = IdempotencyConflict(cmd.idempotency_key, stored_loan_id)
    return Outcome(REJECTED, cmd.loan_id, str(error), *reason_of(error))


_T = TypeVar("_T")


def chunks(items: Iterable[_T], size: int) -> Iterable[list[_T]]:
    batch: list[_T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
