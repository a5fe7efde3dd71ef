"""Stored events decoded into the library's own event objects, without its per-dict JSON hook.

The library's ``Mapper.to_domain_event`` (9.5.6) parses a stored state with Python's ``json`` and a
Python ``object_hook`` called on every JSON object, turns each ``{"_type_": NAME, "_data_": TEXT}``
into its value with the transcoding registered under NAME, then sets the originator's id and
version, upcasts by ``class_version`` and builds the event with ``object.__new__``. This does the
same in one pass: msgspec's parser (integers exact, no hook), then one walk over the parsed state,
each value converted by the same constructor the library's transcoding calls, the event class
resolved once per topic, amounts and dates converted once per distinct text. It takes 5-6 us an
event where the library's path takes 9-10 (docs/scaling.md, "Where the time goes").

It decides only what it can decide the same way: anything unusual (not bytes, not JSON as it
reads it, a float, a wrapper whose name it does not know or whose data is not text, a topic that
does not resolve, a conversion that raises) answers ``None``, and the caller asks the library's own
path, which decodes it or refuses it with its own error. So it never accepts what the library
refuses, and what it accepts is the library's result: tests/test_fast_decode.py compares both on
every stored event of a simulated book and on awkward states.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    StoredEvent,
    Transcoding,
    UUIDAsHex,
    find_id_convertor,
)
from eventsourcing.utils import TopicError, resolve_topic

# The library's transcodings whose ``decode(text)`` is exactly one call of a constructor (the
# asserts in two of them only check the text is a str, which the walk checks before calling).
LIBRARY_CONSTRUCTORS: dict[type[Transcoding], Callable[[str], Any]] = {
    UUIDAsHex: UUID,
    DecimalAsStr: Decimal,
    DatetimeAsISO: datetime.fromisoformat,
}
MAX_CLASSES = 1_024  # event classes remembered by topic: a store holds a few dozen; a damaged one is not cached
# Amounts, rates and value dates recur across a book's events: each text is converted once and the
# value (immutable) shared, up to this many per name, then the memory starts again.
MAX_MEMO = 4_096
_MEMOISED = (Decimal, date.fromisoformat)  # constructors of immutable values worth remembering


class _Decline(Exception):
    """This state is left to the library's own path (which decodes or refuses it)."""


class FastDecoder:
    """``event(stored)``: the library's event object for ``stored``, or ``None`` where only the library decides."""

    def __init__(self, transcoder: JSONTranscoder, constructors: Mapping[type[Transcoding], Callable[[str], Any]]):
        known = {**LIBRARY_CONSTRUCTORS, **constructors}
        # Each name the transcoder decodes, with what its transcoding's decode calls on a str; a
        # transcoding not listed keeps its own decode (bound method: the same call, a little slower).
        self._by_name: dict[str, tuple[Callable[[str], Any], dict[str, Any] | None]] = {}
        for name, transcoding in transcoder.names.items():
            convert = known.get(type(transcoding), transcoding.decode)
            self._by_name[name] = (convert, {} if convert in _MEMOISED else None)
        self._json = msgspec.json.Decoder()
        self._classes: dict[tuple[str, type], tuple[type, Callable[[Any], Any], int]] = {}

    def event(self, stored: StoredEvent) -> DomainEventProtocol[Any] | None:
        try:
            return self._event(stored)
        except Exception:  # noqa: BLE001 - whatever went wrong, the library's path decodes or refuses it
            return None

    def state(self, data: Any) -> dict[str, Any] | None:
        """What the transcoder's ``decode(data)`` gives for a stored state (a dict, every wrapped value
        converted), or ``None`` where only the transcoder decides (the dataset's rows read states
        without building events)."""
        try:
            return self._state(data)
        except Exception:  # noqa: BLE001 - whatever went wrong, the transcoder decodes or refuses it
            return None

    def _state(self, data: Any) -> dict[str, Any]:
        if type(data) is not bytes:  # the library calls bytes.decode: anything else it refuses its own way
            raise _Decline
        parsed = self._json.decode(data)
        if type(parsed) is not dict:
            raise _Decline
        self._walk(parsed)
        if _is_wrapper(parsed):  # the library's hook would turn the whole state into one value
            raise _Decline
        return parsed

    def _event(self, stored: StoredEvent) -> DomainEventProtocol[Any]:
        parsed = self._state(stored.state)
        topic = stored.topic
        oid = stored.originator_id
        found = self._classes.get((topic, type(oid)))
        if found is None:
            found = self._class_of(topic, type(oid))
        cls, convert, class_version = found
        parsed["originator_id"] = convert(oid)
        parsed["originator_version"] = stored.originator_version
        from_version = parsed.pop("class_version", 1)
        while from_version < class_version:  # the library's upcasting, step by step
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(parsed)
            from_version += 1
        event: DomainEventProtocol[Any] = object.__new__(cls)
        object.__setattr__(event, "__dict__", parsed)
        return event

    def _class_of(self, topic: str, id_type: type) -> tuple[type, Callable[[Any], Any], int]:
        try:
            cls = resolve_topic(topic)
        except TopicError:
            raise _Decline from None
        if not isinstance(cls, type):
            raise _Decline
        found = (cls, find_id_convertor(cls, id_type), getattr(cls, "class_version", 1))
        if len(self._classes) < MAX_CLASSES:
            self._classes[topic, id_type] = found
        return found

    def _walk(self, obj: dict[str, Any]) -> None:
        """Every wrapper inside ``obj`` replaced by its value, innermost first, as the library's hook does."""
        for key, value in obj.items():
            kind = type(value)
            if kind is dict:
                if (
                    len(value) == 2
                    and type(data := value.get("_data_")) is str
                    and type(name := value.get("_type_")) is str
                ):
                    convert, memo = self._by_name[name]  # KeyError for a name not registered: declined
                    if memo is None:
                        obj[key] = convert(data)
                    elif (known := memo.get(data)) is not None:
                        obj[key] = known
                    else:
                        obj[key] = known = convert(data)
                        if type(known) is not Decimal or known.is_finite():  # NaN: as the Decimal context says
                            if len(memo) >= MAX_MEMO:
                                memo.clear()
                            memo[data] = known
                else:
                    self._walk(value)
                    if _is_wrapper(value):
                        raise _Decline
            elif kind is list:
                self._walk_list(value)
            elif kind is float:  # never stored by the ledger; the library's float parsing is the judge
                raise _Decline

    def _walk_list(self, items: list[Any]) -> None:
        for i, value in enumerate(items):
            kind = type(value)
            if kind is dict:
                holder = {"": value}
                self._walk(holder)
                items[i] = holder[""]
            elif kind is list:
                self._walk_list(value)
            elif kind is float:
                raise _Decline


def _is_wrapper(obj: dict[str, Any]) -> bool:
    """What the library's hook converts: exactly the two keys ``_type_`` and ``_data_``."""
    return len(obj) == 2 and "_type_" in obj and "_data_" in obj
