"""What the read side needs from the store, and nothing more: the log, the way to decode it, and
the deployment's settings. ``ledger.app.Ledger`` provides it; a projection never needs to append."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from eventsourcing.persistence import Mapper

if TYPE_CHECKING:
    from eventstore.store import LedgerRecorder
    from ledger.config import Settings


class EventLog(Protocol):
    recorder: LedgerRecorder  # notifications in order, a batch of streams, and the views' own database
    mapper: Mapper[UUID]  # stored events to domain events
    settings: Settings  # how long to ride through a lost connection
